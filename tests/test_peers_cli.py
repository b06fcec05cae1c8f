"""``learnhub peers ...`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from learnhub.peers.table import Announcement, PeerTable
from peers_procs import open_store


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", "peers", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str) -> str:
    result = run(*args)
    assert result.returncode != 0 and result.stderr.startswith("error: "), result
    return result.stderr


def test_peers_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    ident = ok("id", "--db", db).strip()
    node, key = ident.split(":")
    assert len(key) == 64
    with open_store(db) as hub:
        assert hub.node_id == node
    assert "added peer 10.0.0.2:7433" in ok("add", "10.0.0.2", "--db", db)
    ok("add", "[::1]:7500", "--db", db)
    other = "f00d" * 4 + ":" + "ab" * 32
    assert "trusting node f00df00df00df00d" in ok("trust", other, "--db", db)
    listed = json.loads(ok("ls", "--json", "--db", db))
    assert [p["address"] for p in listed["peers"]] == ["10.0.0.2:7433", "[::1]:7500"]
    assert listed["trusted"] == {"f00d" * 4: "ab" * 32}
    # Bad input: clear errors, nothing changed.
    assert "HOST:PORT" in fails("add", "nowhere:port", "--db", db)
    assert "no peer 10.0.0.9:7433" in fails("rm", "10.0.0.9:7433", "--db", db)
    assert "NODE_ID:PUBLIC_KEY" in fails("trust", "junk", "--db", db)
    assert "is not trusted" in fails("trust", "--remove", "nobody", "--db", db)
    assert json.loads(ok("ls", "--json", "--db", db)) == listed
    ok("rm", "[::1]:7500", "--db", db)
    ok("trust", "--remove", "f00d" * 4, "--db", db)
    listed = json.loads(ok("ls", "--json", "--db", db))
    assert [p["address"] for p in listed["peers"]] == ["10.0.0.2:7433"]
    assert listed["trusted"] == {}


def test_status_shows_what_each_peer_announced(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    with open_store(db) as hub:
        table = PeerTable(hub.store)
        table.learn("127.0.0.1:7500", "peer0001")
        table.exchanged("127.0.0.1:7500")
        table.announce([Announcement("peer0001", k, "a" * 32, 0.1, 1, 2, "127.0.0.1:7500")
                        for k in ("a", "b", "c")])  # fmt: skip
        table.want("peer0001", "a")
    [row] = json.loads(ok("status", "--json", "--db", db))
    assert row["address"] == "127.0.0.1:7500" and row["node_id"] == "peer0001"
    assert row["reachable"] and row["keys"] == 3 and row["wants"] == 1
    assert row["last_exchange"] is not None
    assert "127.0.0.1:7500" in ok("status", "--db", db)


def test_asc_like_example_second_run_starts_from_the_first() -> None:
    example = Path(__file__).parent.parent / "examples" / "asc_like.py"
    result = subprocess.run(
        [sys.executable, str(example), "--demo"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert "started from scratch" in first
    assert "started from a previous run" in second


def test_lookup_timeout_keeps_the_configured_learning_policies(tmp_path: Path) -> None:
    """``python -m learnhub.peers --lookup-timeout`` changes the budget, not the policies."""
    from peers_procs import HubProc

    config = tmp_path / "learnhub.toml"
    config.write_text('[learning.policies]\n"asc/*" = "newest"\n')
    sock = tmp_path / "h.sock"
    hub = HubProc(
        f"sqlite:///{tmp_path / 'hub.db'}", socket=sock, lookup_timeout="2s",
        env={"LEARNHUB_CONFIG": str(config)},
    )  # fmt: skip
    try:
        hub.wait_ready()
        import learnhub

        with learnhub.connect(socket=sock) as client:
            client.store("asc/p", {"f": b"first"}, 0.1)
            client.store("asc/p", {"f": b"second"}, 0.9)
            # "newest": the later store wins though its metric is worse ("best" keeps 0.1).
            assert client.lookup("asc/p", local=True).files == {"f": b"second"}
    finally:
        hub.stop()
