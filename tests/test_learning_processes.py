"""Learning data between real hub processes: a personal hub asking a shared hub on a miss,
and concurrent STOREs from many clients against one base."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import learnhub
from conftest import ServeProcess, wait_for
from learnhub.learning import LearningConfig


@pytest.fixture
def dbs(tmp_path: Path) -> Callable[[str], str]:
    return lambda name: f"sqlite:///{tmp_path / (name + '.db')}"


@pytest.fixture
def shared(serve: Callable[..., ServeProcess], sock_dir: Path, dbs) -> ServeProcess:
    """The machine's shared hub, holding one key."""
    hub = serve(dbs("shared"), sock_dir / "shared.sock")
    with learnhub.connect(socket=hub.socket_path) as client:
        client.store("asc/prog", {"a.net": b"NET", "a.train": b"1 1\n2 4"}, 0.25, {"mode": "x"})
    return hub


@contextlib.contextmanager
def stopped(proc: ServeProcess) -> Iterator[None]:
    """The process frozen (it accepts connections, as the kernel queues them, but never
    answers) for the duration of the block."""
    os.kill(proc.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.proc.pid, signal.SIGCONT)


def test_a_personal_hub_gets_a_miss_from_the_shared_hub_and_keeps_it(
    serve: Callable[..., ServeProcess], sock_dir: Path, dbs, shared: ServeProcess
) -> None:
    personal = serve(
        dbs("personal"), sock_dir / "me.sock", "--upstream", f"unix://{shared.socket_path}"
    )
    with learnhub.connect(socket=personal.socket_path) as client:
        got = client.lookup("asc/prog")
        assert got is not None and got.files == {"a.net": b"NET", "a.train": b"1 1\n2 4"}
        assert got.metric == 0.25 and got.attrs == {"mode": "x"}
        assert client.lookup("asc/never-stored") is None  # a miss there too
    with learnhub.open(dbs("shared")) as hub:
        shared_node, shared_version = hub.node_id, hub.learning.best("asc/prog").version
    with learnhub.open(dbs("personal")) as hub:
        kept = hub.learning.lookup("asc/prog", local=True)
        assert kept.version == got.version == shared_version  # same content, same version
        assert kept.origin == shared_node
        assert hub.learning.lookup("asc/never-stored", local=True) is None


def test_lookup_local_never_asks(sock_dir: Path, dbs, shared: ServeProcess, tmp_path: Path) -> None:
    with learnhub.open(dbs("personal")) as hub:
        hub.learning.configure(LearningConfig(upstream=f"unix://{shared.socket_path}"))
        assert hub.learning.lookup("asc/prog", local=True) is None
        assert hub.learning.versions("asc/prog") == []
        assert hub.learning.lookup("asc/prog").metric == 0.25
        hub.learning.close()


def test_an_upstream_that_is_down_is_a_miss(serve, sock_dir: Path, dbs) -> None:
    personal = serve(
        dbs("personal"), sock_dir / "me.sock", "--upstream", f"unix://{sock_dir}/none.sock"
    )
    with learnhub.connect(socket=personal.socket_path) as client:
        assert client.lookup("asc/prog") is None
        client.store("asc/prog", {"f": b"mine"}, 0.5)
        assert client.lookup("asc/prog").files == {"f": b"mine"}


def test_an_upstream_that_never_answers_costs_the_budget_and_a_late_answer_is_kept(
    serve: Callable[..., ServeProcess], sock_dir: Path, dbs, shared: ServeProcess
) -> None:
    personal = serve(
        dbs("personal"),
        sock_dir / "me.sock",
        "--upstream",
        f"unix://{shared.socket_path}",
        "--lookup-timeout",
        "200ms",
    )
    with learnhub.connect(socket=personal.socket_path) as client:
        client.ping()
        with stopped(shared):
            assert client.lookup("asc/prog") is None  # the budget ran out: a miss, in time
            assert client.ping()  # and the hub still answers
        # Woken up, the shared hub answers the question it was asked; the personal hub keeps
        # the answer for the next lookup.
        with learnhub.open(dbs("personal")) as hub:
            found = wait_for(
                lambda: hub.learning.lookup("asc/prog", local=True), what="the late answer"
            )
        assert found.metric == 0.25


def test_bad_upstream_flags_are_clear_errors(sock_dir: Path, dbs) -> None:
    from test_daemon import fails

    line = fails("serve", "--db", dbs("p"), "--socket", str(sock_dir / "p.sock"), "--upstream", "x")
    assert "must be unix:///path/to/hub.sock" in line
    line = fails(
        "serve", "--db", dbs("p"), "--socket", str(sock_dir / "p.sock"), "--lookup-timeout", "-1"
    )
    assert "'learning.lookup_timeout' must be a positive duration" in line
    line = fails(
        "serve", "--db", dbs("p"), "--socket", str(sock_dir / "p.sock"), "--policy", "*=biggest"
    )
    assert "unknown learning policy 'biggest'" in line
    assert not (sock_dir / "p.sock").exists()


# --- 8 clients, one base, over RESP ------------------------------------------------------------


@pytest.mark.parametrize("policy", ["smallest", "newest"])
def test_eight_resp_clients_storing_against_one_base_follow_the_policy(
    serve: Callable[..., ServeProcess], sock_dir: Path, store_url: str, policy: str
) -> None:
    hub_proc = serve(store_url, sock_dir / "hub.sock", "--policy", f"race*={policy}")
    with learnhub.connect(socket=hub_proc.socket_path) as client:
        client.store("race", {"f": b"base" * 50}, 0.5)
        token = client.lookup("race").version
    clients = [redis.Redis(unix_socket_path=str(hub_proc.socket_path)) for _ in range(8)]
    barrier = threading.Barrier(8)
    replies: list = [None] * 8
    sizes = [(i * 3) % 8 * 7 + 1 for i in range(8)]  # distinct, shuffled

    def store(i: int) -> None:
        barrier.wait()
        replies[i] = clients[i].execute_command(
            "STORE", "race", "0.5", "BASE", token, "FILE", "f", bytes([65 + i]) * sizes[i]
        )

    threads = [threading.Thread(target=store, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    with learnhub.open(store_url) as hub:
        # Every process on a store must read it under the same policies (config does that).
        hub.learning.configure(LearningConfig(policies={"race*": policy}))
        versions = {v.version: v for v in hub.learning.versions("race")}
        combos = list(reversed(hub.learning.combinations("race")))
        current = hub.learning.lookup("race", local=True)
    assert len(versions) == 9  # the base and all 8: none lost
    assert len(combos) == 7  # one store replaced the base; the 7 others found it moved on
    for before, after in zip(combos, combos[1:], strict=False):
        assert after.current == before.result
    assert current.version == combos[-1].result
    if policy == "smallest":
        smallest = min(set(versions) - {token}, key=lambda v: sum(versions[v].sizes.values()))
        assert current.version == smallest
    else:
        assert combos[-1].result == combos[-1].incoming


# --- once the lead has wired [learning] and LOOKUP_LOCAL (see the issue 8 report) ---------------


def _lookup_local_is_wired() -> bool:
    import inspect

    from learnhub.server import commands

    return "local" in inspect.signature(commands._lookup).parameters


def _config_has_learning() -> bool:
    import dataclasses

    from learnhub.config import Config

    return "learning" in {f.name for f in dataclasses.fields(Config)}


@pytest.mark.skipif(not _lookup_local_is_wired(), reason="LOOKUP_LOCAL does not ask local=True")
def test_lookup_local_over_resp_never_asks(
    serve: Callable[..., ServeProcess], sock_dir: Path, dbs, shared: ServeProcess
) -> None:
    personal = serve(
        dbs("personal"), sock_dir / "me.sock", "--upstream", f"unix://{shared.socket_path}"
    )
    with learnhub.connect(socket=personal.socket_path) as client:
        assert client.lookup("asc/prog", local=True) is None
        assert client.lookup("asc/prog").metric == 0.25
        assert client.lookup("asc/prog", local=True).metric == 0.25  # kept


@pytest.mark.skipif(not _config_has_learning(), reason="Config has no [learning] section yet")
def test_the_learning_section_of_the_config_file(
    serve: Callable[..., ServeProcess], sock_dir: Path, dbs, shared: ServeProcess
) -> None:
    Path("learnhub.toml").write_text(
        "[learning]\n"
        f'upstream = "unix://{shared.socket_path}"\n'
        'lookup_timeout = "2s"\n'
        "[learning.policies]\n"
        '"asc/*" = "newest"\n'
    )
    personal = serve(dbs("personal"), sock_dir / "me.sock")
    with learnhub.connect(socket=personal.socket_path) as client:
        got = client.lookup("asc/prog")  # from the shared hub
        worse = client.store("asc/prog", {"f": b"w"}, 0.9, base=got.version)
        assert client.lookup("asc/prog").version == worse  # newest, not best
    with learnhub.open(dbs("personal")) as hub:
        assert hub.learning.policies.rule_for("asc/x").policy == "newest"
        assert hub.learning.elsewhere.timeout == 2.0
