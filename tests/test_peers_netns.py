"""A link cut for real: one hub in a network namespace of its own, joined to the test's by a
veth pair that the test takes down and up again (``ip netns``; skipped where not allowed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_for
from peers_procs import SECRET, HubProc, open_store


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side interface, the namespace's address)."""
    tag = f"lh{os.getpid() % 100000}"
    ns, outside, inside = tag, f"{tag}o", f"{tag}i"
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    if ip("netns", "add", ns).returncode != 0:
        pytest.skip("ip netns is not available here (needs root)")
    try:
        steps = [
            ("link", "add", outside, "type", "veth", "peer", "name", inside),
            ("link", "set", inside, "netns", ns),
            ("addr", "add", f"{subnet}.1/24", "dev", outside),
            ("link", "set", outside, "up"),
            ("netns", "exec", ns, "ip", "addr", "add", f"{subnet}.2/24", "dev", inside),
            ("netns", "exec", ns, "ip", "link", "set", inside, "up"),
            ("netns", "exec", ns, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the veth pair: {done.stderr.strip()}")
        yield ns, outside, f"{subnet}.2"
    finally:
        ip("link", "del", outside)
        ip("netns", "del", ns)


def test_a_cut_link_degrades_to_later(namespace, tmp_path: Path, sock_dir: Path) -> None:
    ns, outside, inside_addr = namespace
    secret = sock_dir / "secret"
    secret.write_text(SECRET)
    a_store, b_store = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    a = HubProc(a_store, secret_file=secret, socket=sock_dir / "a.sock",
                listen=f"{inside_addr}:0", config={"digest_interval": "0.5s"},
                prefix=["ip", "netns", "exec", ns])  # fmt: skip
    b = None
    try:
        a.wait_ready()
        b = HubProc(b_store, secret_file=secret, socket=sock_dir / "b.sock",
                    peers=[f"{inside_addr}:{a.port}"], lookup_timeout="1s",
                    config={"digest_interval": "0.5s", "connect_timeout": "0.5s"})  # fmt: skip
        b.wait_ready()
        with a.client() as ca:  # its UNIX socket is a path: reachable from any namespace
            ca.store("asc/n", {"f": b"v1"}, 0.5)
            ca.store("asc/other", {"f": b"o"}, 0.5)
        with b.client() as cb:
            assert cb.lookup("asc/n").metric == 0.5
        assert ip("link", "set", outside, "down").returncode == 0  # the cable is pulled
        with a.client() as ca:
            better = ca.store("asc/n", {"f": b"v2"}, 0.1)  # its offer to b cannot arrive
        with b.client() as cb:
            assert cb.lookup("asc/other") is None  # returns (within its budget): a miss
        assert local_version(b_store, "asc/n") != better
        assert ip("link", "set", outside, "up").returncode == 0
        # Later, not lost: the digest exchange brings the better version over.
        wait_for(lambda: local_version(b_store, "asc/n") == better, timeout=60, what="catch-up")
        # The link that was cut mid-request answers the next one with the right reply.
        with a.client() as ca:
            third = ca.store("asc/third", {"f": b"3"}, 0.3)
        with b.client() as cb:
            assert cb.lookup("asc/third").version == third
    finally:
        if b is not None:
            b.stop()
        a.stop()


def local_version(url: str, key: str) -> str | None:
    with open_store(url) as hub:
        found = hub.learning.lookup(key, local=True)
    return found.version if found else None
