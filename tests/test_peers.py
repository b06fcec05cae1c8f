"""Hubs exchanging learning data over the peer link: every hub a separate process on
127.0.0.1 (``python -m learnhub.peers``, with its RESP door on a UNIX socket)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import postgres_schema_url, wait_for
from learnhub.errors import InvalidInput
from learnhub.peers.table import PeerTable
from peers_procs import SECRET, HubProc, RawPeer, open_store

FILES = {"prog.net": b"N" * 5000, "prog.train": b"T" * 20000, "prog.excite": b"\x01\x02"}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def stores(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Fresh store URLs, one per hub, on the test's backend."""
    with contextlib.ExitStack() as stack:
        count = iter(range(1000))

        def make() -> str:
            if backend == "sqlite":
                return f"sqlite:///{tmp_path / f'hub{next(count)}.db'}"
            return stack.enter_context(contextlib.contextmanager(postgres_schema_url)())

        yield make


@pytest.fixture
def secret_file(sock_dir: Path) -> Path:
    path = sock_dir / "cluster.secret"
    path.write_text(SECRET)
    return path


@pytest.fixture
def hubs(sock_dir: Path, secret_file: Path) -> Iterator[Callable[..., HubProc]]:
    """Start hub processes (ready, with a socket and the cluster secret unless told)."""
    started: list[HubProc] = []

    def start(store: str, *, ready: bool = True, **options: Any) -> HubProc:
        options.setdefault("secret_file", secret_file)
        options.setdefault("socket", sock_dir / f"h{len(started)}.sock")
        options.setdefault("lookup_timeout", "3s")
        hub = HubProc(store, **options)
        started.append(hub)
        return hub.wait_ready() if ready else hub

    yield start
    for hub in started:
        hub.stop()


def versions_in(url: str, key: str) -> list[Any]:
    with open_store(url) as hub:
        return hub.learning.versions(key)


def local(url: str, key: str) -> Any:
    """What the hub on ``url`` holds of ``key`` (read from its store: never asks peers)."""
    with open_store(url) as hub:
        return hub.learning.lookup(key, local=True)


def announcements(url: str) -> list[Any]:
    """The hub's table of announcements, read from its store."""
    with open_store(url) as hub:
        return PeerTable(hub.store).announcements()


def known_peers(url: str) -> list[dict[str, Any]]:
    with open_store(url) as hub:
        return PeerTable(hub.store).peers()


# --- exchange ----------------------------------------------------------------------------


def test_store_on_one_lookup_on_another(stores, hubs) -> None:
    a = hubs(stores())
    b_store = stores()
    b = hubs(b_store, peers=[a.address])
    with a.client() as ca:
        version = ca.store("asc/ls", FILES, 0.25, {"mode": "fast"})
    with b.client() as cb:
        assert local(b_store, "asc/ls") is None
        found = cb.lookup("asc/ls")
        assert found is not None and found.version == version
        assert found.files == FILES and found.metric == 0.25 and found.attrs == {"mode": "fast"}
        assert found.origin == a.node_id
        # Stored: the next lookup is local.
        assert local(b_store, "asc/ls").version == version
        # A key no one has: a miss, not an error.
        assert cb.lookup("asc/nobody") is None
    assert [v.version for v in versions_in(b_store, "asc/ls")] == [version]


def test_offer_reaches_the_hubs_that_asked(stores, hubs) -> None:
    a = hubs(stores())
    asked = [hubs(stores(), peers=[a.address]) for _ in range(2)]
    silent = hubs(stores(), peers=[a.address])
    with a.client() as ca:
        ca.store("asc/cc1", FILES, 0.5)
    for hub in asked:
        with hub.client() as c:
            assert c.lookup("asc/cc1").metric == 0.5  # asks a, so a knows it wants the key
    better = {**FILES, "prog.net": b"better" * 100}
    with a.client() as ca:
        v2 = ca.store("asc/cc1", better, 0.1)
    for hub in asked:
        wait_for(
            lambda hub=hub: (f := local(hub.store, "asc/cc1")) and f.version == v2,
            what="the offered version",
        )
        assert local(hub.store, "asc/cc1").files == better
    assert local(silent.store, "asc/cc1") is None  # never asked: not offered


@pytest.mark.slow
def test_ten_hubs(tmp_path: Path, hubs) -> None:
    center = hubs(f"sqlite:///{tmp_path / 'c.db'}")
    others = [hubs(f"sqlite:///{tmp_path / f'o{i}.db'}", ready=False, peers=[center.address])
              for i in range(9)]  # fmt: skip
    for hub in others:
        hub.wait_ready()
    with center.client() as c:
        c.store("asc/gcc", FILES, 0.4)
    for hub in others:
        with hub.client() as c:
            assert c.lookup("asc/gcc").metric == 0.4
    better = {**FILES, "prog.train": b"more pairs" * 500}
    with center.client() as c:
        v2 = c.store("asc/gcc", better, 0.05)
    for hub in others:
        wait_for(lambda hub=hub: local(hub.store, "asc/gcc").version == v2, what="offer")


def test_digest_fetches_what_is_better_by_the_margin(stores, hubs) -> None:
    a = hubs(stores())
    with a.client() as ca:
        ca.store("asc/x", FILES, 0.50)
        ca.store("asc/y", {"f": b"y1"}, 0.30)
    b_store = stores()
    with open_store(b_store) as hub:
        hub.learning.store("asc/x", {"f": b"mine"}, 0.55)  # a's is better by 0.05
        hub.learning.store("asc/y", {"f": b"mine"}, 0.31)  # a's is better by 0.01
    b = hubs(b_store, peers=[a.address], config={"margin": 0.02, "digest_interval": "0.3s"})
    wait_for(lambda: local(b_store, "asc/x").metric == 0.50, what="digest fetch")
    # Both announcements are in the table, but y was not worth fetching.
    wait_for(lambda: len(announcements(b_store)) == 2, what="announcements")
    assert local(b_store, "asc/y").metric == 0.31
    assert b.proc.poll() is None


def test_have_announcements_reach_a_hub_with_a_worse_version(stores, hubs) -> None:
    a_store = stores()
    a = hubs(a_store, config={"digest_interval": "0.3s"})
    b_store = stores()
    with open_store(b_store) as hub:
        hub.learning.store("asc/h", {"f": b"b's own"}, 0.5)
    b = hubs(b_store, peers=[a.address], config={"digest_interval": "1h"})
    # a has connected back to b (its digest loop): it can announce to b.
    wait_for(
        lambda: any(
            p["node_id"] == b.node_id and p["last_exchange_ns"] for p in known_peers(a_store)
        ),
        what="a's link to b",
    )
    with a.client() as ca:
        better = ca.store("asc/h", {"f": b"a's better"}, 0.1)
    wait_for(lambda: local(b_store, "asc/h").version == better, what="b fetching on PEER.HAVE")
    assert {x.key for x in announcements(b_store)} >= {"asc/h"}


# --- policies ----------------------------------------------------------------------------


def test_wrong_secret_is_refused(tmp_path: Path, sock_dir: Path, hubs) -> None:
    a = hubs(f"sqlite:///{tmp_path / 'a.db'}")
    with a.client() as ca:
        ca.store("asc/s", FILES, 0.2)
    wrong = sock_dir / "wrong.secret"
    wrong.write_text("not-the-cluster-secret-at-all!!")
    b = hubs(f"sqlite:///{tmp_path / 'b.db'}", peers=[a.address], secret_file=wrong)
    with b.client() as cb:
        assert cb.lookup("asc/s") is None
    wait_for(lambda: "refused" in b.logs(), what="b's log of the refusal")
    assert "wrong cluster secret" in b.logs() or "wrong cluster secret" in a.logs()
    # By hand: a wrong secret, and a replayed proof, are refused with a clear error.
    raw = RawPeer(a.address)
    reply = raw.hello(b"not-the-cluster-secret-at-all!!")
    assert reply.startswith("NOAUTH") and "secret" in reply
    raw.close()
    good = RawPeer(a.address)
    assert good.hello(SECRET.encode()) == "OK"
    good.close()
    replay = RawPeer(a.address)
    replay.send_raw(b"".join(good.sent))  # the same bytes on a new connection
    replay.read()  # a fresh challenge: the recorded proof no longer fits it
    assert replay.read().startswith("NOAUTH")
    replay.close()
    # Unauthenticated: nothing but HELLO.
    anon = RawPeer(a.address)
    assert anon.call("PEER.FETCH", "asc/s", "0" * 32).startswith("NOAUTH")
    anon.close()


def test_trust_by_node_key_without_a_secret(tmp_path: Path, hubs) -> None:
    a = hubs(f"sqlite:///{tmp_path / 'a.db'}", secret_file=None)
    with a.client() as ca:
        ca.store("asc/t", FILES, 0.2)
    # b trusts a's key, but a does not trust b's yet: refused.
    b = hubs(f"sqlite:///{tmp_path / 'b.db'}", peers=[a.address], secret_file=None,
             config={"trust": [a.ident]})  # fmt: skip
    with b.client() as cb:
        assert cb.lookup("asc/t") is None
    b.stop()
    a.stop()
    a2 = hubs(a.store, secret_file=None, config={"trust": [b.ident]})
    b2 = hubs(b.store, peers=[a2.address], secret_file=None, config={"trust": [a2.ident]})
    with b2.client() as cb:
        assert cb.lookup("asc/t").metric == 0.2


def test_import_deny_never_lands(stores, hubs) -> None:
    bad = hubs(stores())
    good = hubs(stores())
    with bad.client() as c:
        c.store("asc/d", {"f": b"from the denied peer"}, 0.01)
        c.store("public/p", {"f": b"p"}, 0.1)
        c.store("secret/k", {"f": b"k"}, 0.1)
    with good.client() as c:
        c.store("asc/d", {"f": b"from the good peer"}, 0.5)
    b_store = stores()
    b = hubs(
        b_store,
        peers=[bad.address, good.address],
        config={"import": {"deny_nodes": [bad.node_id]}, "digest_interval": "0.2s"},
    )
    with b.client() as cb:
        found = cb.lookup("asc/d")
        assert found is not None and found.files == {"f": b"from the good peer"}
        assert cb.lookup("public/p") is None
    wait_for(lambda: "deny_nodes" in b.logs(), what="the refusal in the log")
    # A better version stored on the denied peer is offered and in digests, but never lands.
    heard = b.logs().count("announcement of 'asc/d'")
    with bad.client() as c:
        c.store("asc/d", {"f": b"even better"}, 0.001)
    wait_for(lambda: b.logs().count("announcement of 'asc/d'") > heard, what="a digest")
    origins = {v.origin for v in versions_in(b_store, "asc/d")}
    assert origins == {good.node_id}
    # Key patterns: only what the allow list names.
    c_store = stores()
    c = hubs(c_store, peers=[bad.address], config={"import": {"deny_keys": ["secret/*"]}})
    with c.client() as cc:
        assert cc.lookup("public/p").metric == 0.1
        assert cc.lookup("secret/k") is None
    assert versions_in(c_store, "secret/k") == []


def test_export_denied_keys_are_never_served(stores, hubs) -> None:
    a = hubs(stores(), config={"export": {"deny_keys": ["private/*"]}})
    with a.client() as ca:
        ca.store("private/p", FILES, 0.1)
        version = ca.store("shared/s", FILES, 0.1)
    b = hubs(stores(), peers=[a.address])
    with b.client() as cb:
        assert cb.lookup("private/p") is None
        assert cb.lookup("shared/s").version == version
    raw = RawPeer(a.address)
    assert raw.hello(SECRET.encode()) == "OK"
    private = versions_in(a.store, "private/p")[0].version
    reply = raw.call("PEER.FETCH", "private/p", private)
    assert reply.startswith("DENIED") and "private/*" in reply
    assert raw.call("PEER.WANT", "private/p").startswith("DENIED")
    _, digest = raw.call("PEER.DIGEST")
    assert b"shared/s" in digest and b"private/p" not in digest
    raw.close()
    wait_for(lambda: "refused PEER.FETCH" in a.logs(), what="the refusal in a's log")


# --- faults ------------------------------------------------------------------------------


def test_provider_killed_mid_transfer(tmp_path: Path, hubs) -> None:
    big = {"prog.net": bytes(range(256)) * 4096 * 6, "prog.train": b"t" * 100}  # 6 MiB
    dying = hubs(f"sqlite:///{tmp_path / 'd.db'}", fault="exit-after-chunks:2")
    steady = hubs(f"sqlite:///{tmp_path / 's.db'}")
    with dying.client() as c:
        version = c.store("asc/big", big, 0.1)  # the better metric: asked first
    with steady.client() as c:
        assert c.store("asc/big", big, 0.2) == version  # same content, same version
    b_store = f"sqlite:///{tmp_path / 'b.db'}"
    b = hubs(b_store, peers=[dying.address, steady.address], lookup_timeout="20s",
             config={"chunk_size": 1 << 20})  # fmt: skip
    with b.client() as cb:
        found = cb.lookup("asc/big")
        assert found is not None and found.version == version and found.files == big
    assert dying.proc.wait(timeout=30) == 17  # it did die mid-transfer
    assert "failed" in b.logs()
    [stored] = versions_in(b_store, "asc/big")
    assert stored.sizes == {n: len(d) for n, d in big.items()}


def test_corrupted_blob_is_rejected(tmp_path: Path, hubs) -> None:
    liar = hubs(f"sqlite:///{tmp_path / 'l.db'}", fault="corrupt")
    with liar.client() as c:
        c.store("asc/c", FILES, 0.1)
    b_store = f"sqlite:///{tmp_path / 'b.db'}"
    b = hubs(b_store, peers=[liar.address])
    with b.client() as cb:
        assert cb.lookup("asc/c") is None
    assert "does not match its hash" in b.logs()
    assert versions_in(b_store, "asc/c") == []
    # With an honest provider too, the lookup gets the honest copy.
    honest = hubs(f"sqlite:///{tmp_path / 'h.db'}")
    with honest.client() as c:
        c.store("asc/c", FILES, 0.3)
    b2 = hubs(f"sqlite:///{tmp_path / 'b2.db'}", peers=[liar.address, honest.address])
    with b2.client() as cb:
        found = cb.lookup("asc/c")
        assert found is not None and found.files == FILES


@contextlib.contextmanager
def hanging_peer() -> Iterator[str]:
    """A TCP listener that accepts and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


def test_a_peer_that_never_answers(tmp_path: Path, hubs) -> None:
    a = hubs(f"sqlite:///{tmp_path / 'a.db'}")
    with a.client() as ca:
        ca.store("asc/h", FILES, 0.2)
    with hanging_peer() as frozen:
        b = hubs(f"sqlite:///{tmp_path / 'b.db'}", peers=[frozen, a.address])
        with b.client() as cb:
            assert cb.lookup("asc/h").metric == 0.2
        c = hubs(f"sqlite:///{tmp_path / 'c.db'}", peers=[frozen], lookup_timeout="500ms")
        with c.client() as cc:
            assert cc.lookup("asc/h") is None  # returns (within the budget), a miss


def test_restarted_hub_restores_its_announcements(stores, hubs) -> None:
    a = hubs(stores())
    with a.client() as ca:
        ca.store("asc/r1", FILES, 0.2)
        ca.store("asc/r2", FILES, 0.3)
    b_store = stores()
    b = hubs(b_store, peers=[a.address], config={"digest_interval": "0.2s"})
    wait_for(lambda: len(announcements(b_store)) == 2, what="a's digest in b's table")
    b.stop()
    a.stop()
    b2 = hubs(b_store, peers=[a.address])  # a is down now
    restored = {(x.node_id, x.key, x.metric) for x in announcements(b_store)}
    assert restored == {(a.node_id, "asc/r1", 0.2), (a.node_id, "asc/r2", 0.3)}
    with b2.client() as cb:
        assert cb.lookup("asc/r1") is None  # a is down: a miss, not an error
    status = {p["address"]: p for p in known_peers(b_store)}
    assert status[a.address]["node_id"] == a.node_id


# --- bad input ---------------------------------------------------------------------------


def test_bad_input_on_the_link(tmp_path: Path, hubs) -> None:
    a = hubs(f"sqlite:///{tmp_path / 'a.db'}")
    with a.client() as ca:
        version = ca.store("asc/b", FILES, 0.2)
    raw = RawPeer(a.address)
    assert raw.hello(SECRET.encode()) == "OK"
    reply = raw.call("PEER.FROB", "x")
    assert reply.startswith("ERR unknown peer command") and "PEER.FETCH" in reply
    assert raw.call("GET", "x").startswith("ERR unknown peer command")
    # A FETCH of a version that does not exist, or is not a version.
    assert raw.call("PEER.FETCH", "asc/b", "f" * 32).startswith("NOTFOUND")
    assert raw.call("PEER.FETCH", "asc/b", "nope").startswith("ERR")
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", "0", str(64 << 20)).startswith(
        "ERR count"
    )
    assert raw.call("PEER.FETCH", "asc/b", version, "no.such", "0", "10").startswith("NOTFOUND")
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", "0", "0").startswith("ERR count")
    # Parts in any order (each out-of-order one starts a new read of the file); past the end.
    data = FILES["prog.net"]
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", "3", "4") == data[3:7]
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", "7", "4") == data[7:11]
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", "0", "3") == data[:3]
    assert raw.call("PEER.FETCH", "asc/b", version, "prog.net", str(len(data)), "9") == b""
    # Huge announcements: refused whole, nothing recorded.
    entry = ["asc/z", "a" * 32, "0.1", "1"]
    reply = raw.call("PEER.HAVE", *(entry * 1001))
    assert reply.startswith("ERR 1001 announcements") and "limit is 1000" in reply
    bad_entry = entry + ["asc/w", "a" * 32, "not-a-number", "1"]
    assert raw.call("PEER.HAVE", *bad_entry).startswith("ERR metric")
    assert announcements(a.store) == []
    assert raw.call("PEER.HAVE", *entry) == 1
    assert [x.key for x in announcements(a.store)] == ["asc/z"]
    # A key of 1 MB.
    huge = "k" * (1 << 20)
    reply = raw.call("PEER.WANT", huge)
    assert reply.startswith("ERR key is 1048576 bytes long")
    assert raw.call("PEER.OFFER", huge, "a" * 32, "0.1", "1", "n").startswith("ERR key is")
    assert raw.call("PEER.DIGEST", "", "0").startswith("ERR count")
    # The link still works after all that.
    assert raw.call("PEER.WANT", "asc/b")[0].decode() == version
    # A request over the size limit ends the connection with an error.
    raw.send_raw(b"*2\r\n$9\r\nPEER.WANT\r\n$99999999\r\n")
    assert raw.read().startswith("ERR Protocol error")
    with pytest.raises(ConnectionError):
        raw.read()
    raw.close()
    with a.client() as ca:  # and the hub serves on
        assert ca.lookup("asc/b").version == version


def test_a_file_is_read_from_the_store_in_parts(hub) -> None:
    data = bytes(range(256)) * 1000
    version = hub.learning.store("asc/parts", {"big": data, "small": b"s"}, 0.1)
    parts = list(hub.learning.iter_file("asc/parts", version, "big", 4096))
    assert [len(p) for p in parts[:-1]] == [4096] * (len(parts) - 1)
    assert b"".join(parts) == data
    assert b"".join(hub.learning.iter_file("asc/parts", version, "big", 1000, 777)) == data[777:]
    assert list(hub.learning.iter_file("asc/parts", version, "big", 10, len(data) + 1)) == []
    assert hub.learning.info("asc/parts", version).sizes == {"big": len(data), "small": 1}
    assert hub.learning.info("asc/parts", "0" * 32) is None
    with pytest.raises(InvalidInput, match="has no file 'nope'"):
        list(hub.learning.iter_file("asc/parts", version, "nope", 10))
    with pytest.raises(InvalidInput, match="part 0 must be positive"):
        list(hub.learning.iter_file("asc/parts", version, "big", 0))
