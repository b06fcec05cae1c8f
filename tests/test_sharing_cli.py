"""``learnhub examples add|ls|search|rm`` and ``learnhub sharing sync|status``: in process
through click's CliRunner, and as a real process on a terminal for the progress bar. The
[sharing] config comes from ./learnhub.toml (each test runs in a fresh working directory)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from learnhub.cli import cli

TIMEOUT = 120


def configure(work: Path, shared: Path, me: str) -> None:
    (work / "learnhub.toml").write_text(
        "[sharing]\n"
        f'sources = ["{shared}/*/*.json"]\n'
        f'backup = "{shared / me}"\n'
        'model = "hashing"\n'
        'poll_interval = "1m"\n'
    )


def invoke(*args: str, db: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db])


def ok(*args: str, db: str) -> str:
    result = invoke(*args, db=db)
    assert result.exit_code == 0, f"{' '.join(args)}: {result.output}{result.exception!r}"
    return result.stdout


def ok_json(*args: str, db: str) -> dict:
    return json.loads(ok(*args, "--json", db=db))


def fails(*args: str, db: str) -> str:
    result = invoke(*args, db=db)
    assert result.exit_code != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_examples_commands_and_sync_between_two_users(
    store_url: str, isolated_env: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    configure(isolated_env, shared, "alice")
    added = ok_json("examples", "add", "how do I deploy", "make deploy", "--tag", "ops",
                    "--author", "alice", db=store_url)  # fmt: skip
    assert added["author"] == "alice" and added["tags"] == ["ops"] and added["local"]
    ok_json("examples", "add", "where are the logs", "in /var/log/app", db=store_url)
    listed = ok_json("examples", "ls", db=store_url)
    assert [e["input"] for e in listed["examples"]] == ["where are the logs", "how do I deploy"]
    assert listed["counts"] == {"total": 2, "local": 2, "backed_up": 0}
    assert "how do I deploy" in ok("examples", "ls", "--tag", "ops", db=store_url)
    found = ok_json("examples", "search", "deploy", "-k", "1", db=store_url)
    assert found["results"][0]["id"] == added["id"] and found["model"] == "hashing"
    report = ok_json("sharing", "sync", db=store_url)
    assert report["backed_up"] == 2 and report["errors"] == {}
    assert (shared / "alice" / f"{added['id']}.example.json").exists()
    status = ok_json("sharing", "status", db=store_url)
    roles = {r["role"]: r for r in status["locations"]}
    assert roles["backup"]["ok"] and roles["backup"]["backed_up"] == 2
    assert "backup" in ok("sharing", "status", db=store_url)

    # Bob, with his own store and config, loads Alice's examples
    bob_db = f"sqlite:///{tmp_path / 'bob.db'}"
    configure(isolated_env, shared, "bob")
    assert ok_json("sharing", "sync", db=bob_db)["loaded"] == 2
    found = ok_json("examples", "search", "how do I deploy", db=bob_db)
    assert found["results"][0]["id"] == added["id"] and not found["results"][0]["local"]
    assert ok_json("examples", "ls", "--shared", db=bob_db)["counts"]["local"] == 0
    assert "loaded" in ok("sharing", "sync", db=bob_db)

    # removal: Alice removes it, her backup drops the file, Bob's next poll drops the example
    configure(isolated_env, shared, "alice")
    assert ok_json("examples", "rm", added["id"], db=store_url) == {
        "id": added["id"],
        "removed": True,
    }
    # the removal is a job: a worker runs it (sync alone writes only what is due)
    ok("worker", "--burst", db=store_url)
    assert not (shared / "alice" / f"{added['id']}.example.json").exists()
    configure(isolated_env, shared, "bob")
    assert ok_json("sharing", "sync", db=bob_db)["dropped"] == 1
    assert ok_json("examples", "ls", db=bob_db)["counts"]["total"] == 1


def test_bad_input_is_one_clear_line(store_url: str, isolated_env: Path, tmp_path: Path) -> None:
    assert "no [sharing] sources or backup" in fails("sharing", "sync", db=store_url)
    assert "no examples" in ok("examples", "ls", db=store_url)
    assert "no [sharing] locations" in ok("sharing", "status", db=store_url)
    assert "input is empty" in fails("examples", "add", "", "out", db=store_url)
    assert "output is empty" in fails("examples", "add", "in", " ", db=store_url)
    assert "example id" in fails("examples", "add", "in", "out", "--id", "a/b", db=store_url)
    assert "QUERY is empty" in fails("examples", "search", " ", db=store_url)
    assert "no example 'nope'" in fails("examples", "rm", "nope", db=store_url)
    assert ok_json("examples", "ls", db=store_url)["counts"]["total"] == 0  # nothing written
    (isolated_env / "learnhub.toml").write_text('[sharing]\nsources = ["ftp://x/*.json"]\n')
    assert "unknown location scheme 'ftp'" in fails("examples", "ls", db=store_url)
    (isolated_env / "learnhub.toml").write_text('[sharing]\npoll_interval = "soon"\n')
    assert "poll_interval" in fails("sharing", "status", db=store_url)


def test_sync_exits_1_when_a_location_fails(isolated_env: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    configure(isolated_env, tmp_path / "missing", "me")
    (isolated_env / "learnhub.toml").write_text(
        f'[sharing]\nsources = ["{tmp_path}/missing/*.json"]\nmodel = "hashing"\n'
    )
    result = invoke("sharing", "sync", db=db)
    assert result.exit_code == 1
    assert "error:" in result.stderr and "not found" in result.stderr
    status = ok_json("sharing", "status", db=db)
    assert not status["locations"][0]["ok"] and status["locations"][0]["failures"] == 1


@pytest.mark.skipif(sys.platform == "win32", reason="pty")
def test_sync_progress_bar_on_a_terminal(isolated_env: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "team").mkdir(parents=True)
    for i in range(300):
        (shared / "team" / f"e{i}.example.json").write_text(
            json.dumps({"id": f"e{i}", "input": f"question {i}", "output": "a", "created_ns": 1})
        )
    configure(isolated_env, shared, "me")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    main, tty = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "learnhub", "sharing", "sync", "--json", "--db", db],
            stdout=subprocess.PIPE,
            stderr=tty,
            timeout=TIMEOUT,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
            cwd=isolated_env,
        )
        os.close(tty)
        tty = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if tty != -1:
            os.close(tty)
        os.close(main)
    assert proc.returncode == 0, shown.decode(errors="replace")
    assert json.loads(proc.stdout)["loaded"] == 300
    assert b"reading files" in shown or b"listing sources" in shown
