"""The ``learnhub`` command, run as a real process: ``python -m learnhub ...``.

Each test runs in its own working directory with its own config and data dirs (conftest's
``isolated_env``), so a ``learnhub.toml`` written here is the one the command reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import learnhub
from conftest import ServeProcess

TIMEOUT = 60


def learnhub_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
    )


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = learnhub_cmd(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail with exactly one clear line on stderr; return that line."""
    result = learnhub_cmd(*args, env=env)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir()
    model = src / "model.bin"
    model.write_bytes(bytes(range(256)) * 8 + b"\x00\r\n")
    notes = src / "notes.txt"
    notes.write_bytes(b"trained on pairs.train\n")
    return [model, notes]


def test_version() -> None:
    assert ok("version").strip() == learnhub.__version__
    assert learnhub.__version__ in ok("--version")


def test_store_then_lookup_writes_the_files(db: str, files: list[Path], tmp_path: Path) -> None:
    stored = json.loads(
        ok(
            "store",
            "solver/fft",
            *map(str, files),
            "--metric",
            "0.25",
            "--attr",
            "mode=fast",
            "-a",
            "period=10",
            "--db",
            db,
            "--json",
        )
    )
    assert stored["key"] == "solver/fft"
    assert stored["best"] == stored["version"]
    assert len(stored["version"]) == 32

    out = tmp_path / "out" / "nested"
    shown = ok("lookup", "solver/fft", "--out", str(out), "--db", db, env={"COLUMNS": "200"})
    assert stored["version"][:12] in shown
    assert f"wrote 2 file(s) to {out}" in shown
    for path in files:
        assert (out / path.name).read_bytes() == path.read_bytes()

    found = json.loads(ok("lookup", "solver/fft", "--db", db, "--json"))
    assert found["version"] == stored["version"]
    assert found["metric"] == 0.25
    assert found["attrs"] == {"mode": "fast", "period": "10"}
    assert found["files"] == {p.name: p.stat().st_size for p in files}
    assert found["base"] is None


def test_best_version_where_and_history(db: str, files: list[Path], tmp_path: Path) -> None:
    first = json.loads(
        ok("store", "k", str(files[0]), "-m", "0.5", "-a", "mode=fast", "--db", db, "--json")
    )["version"]
    worse = tmp_path / "worse.bin"
    worse.write_bytes(b"worse")
    text = ok(
        "store", "k", str(worse), "-m", "0.9", "-a", "mode=exact", "--base", first, "--db", db
    )
    assert f"best stays {first}" in text.replace("\n", "")
    assert json.loads(ok("lookup", "k", "--db", db, "--json"))["version"] == first
    exact = json.loads(ok("lookup", "k", "-w", "mode=exact", "--db", db, "--json"))
    assert exact["files"] == {"worse.bin": 5}
    assert exact["base"] == first

    history = json.loads(ok("versions", "k", "--db", db, "--json"))
    assert [v["metric"] for v in history] == [0.9, 0.5]  # newest first
    assert history[1]["version"] == first
    assert "versions of k" in ok("versions", "k", "--db", db)


def test_ls(db: str, files: list[Path]) -> None:
    ok("store", "alpha/one", str(files[0]), "-m", "2", "--db", db)
    ok("store", "alpha/one", str(files[1]), "-m", "1", "--db", db)
    ok("store", "beta", str(files[1]), "-m", "3", "--db", db)
    listed = json.loads(ok("ls", "--db", db, "--json"))
    by_key = {k["key"]: k for k in listed}
    assert set(by_key) == {"alpha/one", "beta"}
    assert by_key["alpha/one"]["versions"] == 2
    assert by_key["alpha/one"]["best_metric"] == 1.0
    assert [k["key"] for k in json.loads(ok("ls", "alpha", "--db", db, "--json"))] == ["alpha/one"]
    assert json.loads(ok("ls", "alpha_", "--db", db, "--json")) == []  # _ is no wildcard
    table = ok("ls", "--db", db)
    assert "alpha/one" in table and "beta" in table


def test_info_without_a_server(db: str, files: list[Path]) -> None:
    ok("store", "k", str(files[0]), "-m", "1", "--db", db)
    data = json.loads(ok("info", "--db", db, "--json"))
    assert data["serving"] is False
    assert data["dialect"] == "sqlite"
    assert data["version"] == learnhub.__version__
    assert data["learning_keys"] == 1 and data["learning_versions"] == 1
    assert "cli.db" in data["store"]


def test_info_with_a_server(serve: Callable[..., ServeProcess], sock_dir: Path, db: str) -> None:
    server = serve(db)
    data = json.loads(
        ok("info", "--db", db, "--json", env={"LEARNHUB_SERVER_SOCKET": str(server.socket_path)})
    )
    assert data["serving"] is True
    assert data["socket"] == str(server.socket_path)


def test_demo(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    out = ok("demo", "--db", db)
    assert "PING → True" in out
    assert "LOOKUP demo/fft-solver →" in out
    assert "LOOKUP demo/fft-solver WHERE mode exact →" in out
    with learnhub.open(db) as hub:
        best = hub.learning.lookup("demo/fft-solver")
        assert best is not None and best.metric == 0.17
        assert len(hub.learning.versions("demo/fft-solver")) == 3
    ok("demo", "--db", db)  # again: same content, same versions
    with learnhub.open(db) as hub:
        assert len(hub.learning.versions("demo/fft-solver")) == 3


# --- errors ----------------------------------------------------------------------------------


def test_non_numeric_metric(db: str, files: list[Path]) -> None:
    line = fails("store", "k", str(files[0]), "--metric", "abc", "--db", db)
    assert "--metric" in line and "'abc'" in line
    line = fails("store", "k", str(files[0]), "--metric", "nan", "--db", db)
    assert "finite" in line
    assert json.loads(ok("ls", "--db", db, "--json")) == []


def test_bad_store_arguments(db: str, files: list[Path], tmp_path: Path) -> None:
    assert "NAME=VALUE" in fails(
        "store", "k", str(files[0]), "-m", "1", "-a", "novalue", "--db", db
    )
    assert "does not exist" in fails(
        "store", "k", str(tmp_path / "nope.bin"), "-m", "1", "--db", db
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / files[0].name).write_bytes(b"same name")
    assert "same name" in fails(
        "store", "k", str(files[0]), str(other / files[0].name), "-m", "1", "--db", db
    )
    assert "base version 'nope'" in fails(
        "store", "k", str(files[0]), "-m", "1", "--base", "nope", "--db", db
    )
    assert "FILES" in fails("store", "k", "-m", "1", "--db", db)
    assert json.loads(ok("ls", "--db", db, "--json")) == []


def test_lookup_missing_key(db: str, files: list[Path]) -> None:
    assert "no learning data for 'nope'" in fails("lookup", "nope", "--db", db)
    ok("store", "k", str(files[0]), "-m", "1", "-a", "mode=fast", "--db", db)
    assert "matching --where" in fails("lookup", "k", "-w", "mode=slow", "--db", db)
    assert "unknown attribute 'colour'" in fails("lookup", "k", "-w", "colour=red", "--db", db)


def test_unknown_store_scheme() -> None:
    line = fails("info", "--db", "mysql://x")
    assert "unknown store URL scheme 'mysql'" in line
    assert "sqlite:///" in line  # says what would work


def test_config_typo_names_the_key() -> None:
    Path("learnhub.toml").write_text('dbb = "x"\n')
    line = fails("info")
    assert "unknown key 'dbb'" in line and "learnhub.toml" in line
    Path("learnhub.toml").write_text('[server]\nsockt = "/tmp/x.sock"\n')
    assert "unknown key 'server.sockt'" in fails("info")


def test_config_wrong_type_names_the_key() -> None:
    Path("learnhub.toml").write_text("db = 5\n")
    line = fails("info")
    assert "'db'" in line and "must be a str" in line
    Path("learnhub.toml").write_text("server = 5\n")
    assert "[server] must be a table" in fails("info")
    Path("learnhub.toml").write_text("[server]\nlisten = 7433\n")
    assert "'server.listen'" in fails("info")
    Path("learnhub.toml").write_text("db = \n")
    assert "not valid TOML" in fails("info")


def test_config_precedence(tmp_path: Path, files: list[Path]) -> None:
    """learnhub.toml < LEARNHUB_DB < --db."""
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("file", "env", "flag")}
    Path("learnhub.toml").write_text(f'db = "{urls["file"]}"\n')
    env = {"LEARNHUB_DB": urls["env"]}
    ok("store", "from-flag", str(files[0]), "-m", "1", "--db", urls["flag"], env=env)
    ok("store", "from-env", str(files[0]), "-m", "1", env=env)
    ok("store", "from-file", str(files[0]), "-m", "1")
    for name, url in urls.items():
        with learnhub.open(url) as hub:
            assert hub.learning.counts()["keys"] == 1
            assert hub.learning.lookup(f"from-{name}") is not None


def test_debug_shows_the_traceback(db: str) -> None:
    result = learnhub_cmd("lookup", "nope", "--db", db, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "InvalidInput: no learning data for 'nope'" in result.stderr
    result = learnhub_cmd("info", "--db", "mysql://x", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "StoreError" in result.stderr


def test_serve_errors_are_one_line(sock_dir: Path, db: str) -> None:
    line = fails("serve", "--db", db, "--socket", str(sock_dir / "missing" / "hub.sock"))
    assert "does not exist" in line
    line = fails(
        "serve", "--db", db, "--socket", str(sock_dir / "h.sock"), "--listen", "127.0.0.1:7433"
    )
    assert "without a token" in line
