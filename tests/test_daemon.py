"""The hub as a daemon, run as real processes: serve --detach with a pid file, stop, a shared
socket's mode and group, the systemd user unit, and the node id."""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import learnhub
from conftest import can_connect, wait_for

TIMEOUT = 90


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
    )


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str) -> str:
    """A command that must fail with one clear line on stderr; that line."""
    result = run(*args)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of ours that exited stays a zombie until reaped; detached hubs are not ours.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


@pytest.fixture(autouse=True)
def own_log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A detached hub's default log goes under XDG_STATE_HOME: keep it in the test's dir."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def hubs(sock_dir: Path) -> Iterator[list[Path]]:
    """Pid files of detached hubs this test started: any still running are killed at the end."""
    pid_files: list[Path] = []
    yield pid_files
    for path in pid_files:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(path.read_text())
            os.kill(pid, signal.SIGKILL)


def pid_of(path: Path) -> int:
    return int(path.read_text().strip())


def test_detach_writes_a_pid_file_and_logs_then_stop_stops_it(
    db: str, sock_dir: Path, tmp_path: Path, hubs: list[Path]
) -> None:
    sock, pid_file, log = sock_dir / "hub.sock", sock_dir / "hub.pid", tmp_path / "hub.log"
    hubs.append(pid_file)
    text = ok("serve", "--detach", "--db", db, "--socket", str(sock), "--log-file", str(log))
    assert "serving on" in text and str(sock) in text.replace("\n", "")
    pid = pid_of(pid_file)
    assert pid != os.getpid() and alive(pid)
    assert can_connect(sock)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # private unless asked otherwise
    with learnhub.connect(socket=sock) as client:
        version = client.store("k", {"f": b"x"}, 0.5)
        assert client.lookup("k").version == version
    assert "serving" in log.read_text()

    # A second hub on the same pid file, or the same socket, is refused and changes nothing.
    line = fails("serve", "--detach", "--db", db, "--socket", str(sock), "--log-file", str(log))
    assert f"(pid {pid}) is already serving on {sock}" in line and "learnhub stop" in line
    other_pid = sock_dir / "other.pid"
    line = fails("serve", "--db", db, "--socket", str(sock), "--pid-file", str(other_pid))
    assert "already serving on" in line
    assert pid_of(pid_file) == pid and alive(pid)

    assert f"stopped learnhub (pid {pid})" in ok("stop", "--socket", str(sock))
    assert not pid_file.exists() and not sock.exists()
    wait_for(lambda: not alive(pid), what="the hub process to exit")
    assert "learnhub stopped" in log.read_text()
    line = fails("stop", "--socket", str(sock))
    assert f"no learnhub is running with pid file {pid_file}" in line


def test_serve_stop_and_an_explicit_pid_file(db: str, sock_dir: Path, hubs: list[Path]) -> None:
    sock, pid_file = sock_dir / "a.sock", sock_dir / "run" / "a.pid"
    hubs.append(pid_file)
    args = ("--db", db, "--socket", str(sock), "--pid-file", str(pid_file))
    line = fails("serve", "--detach", *args)
    assert f"directory {pid_file.parent} does not exist" in line
    assert not sock.exists()
    pid_file.parent.mkdir()
    ok("serve", "--detach", *args)
    pid = pid_of(pid_file)
    ok("serve", "--stop", "--pid-file", str(pid_file))
    assert not pid_file.exists()
    wait_for(lambda: not alive(pid), what="the hub process to exit")


def test_a_killed_hub_leaves_a_stale_pid_file_that_is_not_trusted(
    db: str, sock_dir: Path, tmp_path: Path, hubs: list[Path]
) -> None:
    sock, pid_file = sock_dir / "hub.sock", sock_dir / "hub.pid"
    hubs.append(pid_file)
    ok("serve", "--detach", "--db", db, "--socket", str(sock))
    default_log = tmp_path / "home" / "state" / "learnhub" / "log" / "learnhub.log"
    assert "serving" in default_log.read_text()
    pid = pid_of(pid_file)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the killed hub to be gone")
    assert pid_file.exists()
    assert "stale pid file" in fails("stop", "--socket", str(sock))
    ok("serve", "--detach", "--db", db, "--socket", str(sock))  # starts again
    assert pid_of(pid_file) != pid
    ok("stop", "--socket", str(sock))


def test_detached_start_failure_reports_the_reason(
    db: str, sock_dir: Path, tmp_path: Path, hubs: list[Path]
) -> None:
    # The socket's directory is missing: the child fails, and the parent says why.
    sock, log = sock_dir / "missing" / "hub.sock", tmp_path / "hub.log"
    pid_file = sock_dir / "hub.pid"
    hubs.append(pid_file)
    line = fails(
        "serve", "--detach", "--db", db, "--socket", str(sock), "--pid-file", str(pid_file),
        "--log-file", str(log),
    )  # fmt: skip
    assert "exited at once" in line and "does not exist" in line
    assert not pid_file.exists()


def _other_group() -> grp.struct_group:
    """A group this process may give the socket to, other than its own primary group."""
    mine = os.getegid()
    allowed = None if os.geteuid() == 0 else set(os.getgroups())
    for g in grp.getgrall():
        if g.gr_gid != mine and (allowed is None or g.gr_gid in allowed):
            return g
    pytest.skip("no second group this user may use")


def test_shared_socket_gets_its_mode_and_group(db: str, sock_dir: Path, hubs: list[Path]) -> None:
    group = _other_group()
    sock, pid_file = sock_dir / "shared.sock", sock_dir / "shared.pid"
    hubs.append(pid_file)
    ok(
        "serve", "--detach", "--db", db, "--socket", str(sock),
        "--socket-mode", "0660", "--socket-group", group.gr_name,
    )  # fmt: skip
    st = sock.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == group.gr_gid
    with learnhub.connect(socket=sock) as client:
        assert client.ping()
    ok("stop", "--socket", str(sock))


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("999", "must be octal permission bits"),
        ("rw", "must be octal permission bits"),
        ("01777", "must be octal permission bits"),
        ("0440", "must keep read and write for the owner"),
        ("0666", "opens the socket to every user"),
    ],
)
def test_bad_socket_mode_is_refused_before_anything_starts(
    db: str, sock_dir: Path, tmp_path: Path, mode: str, message: str
) -> None:
    sock = sock_dir / "hub.sock"
    line = fails("serve", "--detach", "--db", db, "--socket", str(sock), "--socket-mode", mode)
    assert message in line
    assert not sock.exists() and not (sock_dir / "hub.pid").exists()
    assert not (tmp_path / "hub.db").exists()  # the store was not even opened


def test_unknown_socket_group_is_refused(db: str, sock_dir: Path) -> None:
    sock = sock_dir / "hub.sock"
    line = fails("serve", "--db", db, "--socket", str(sock), "--socket-group", "no-such-grp-x")
    assert "--socket-group 'no-such-grp-x': no such group" in line
    assert not sock.exists() and not (sock_dir / "hub.pid").exists()


def test_service_unit_runs_this_learnhub_in_the_foreground(isolated_env: Path) -> None:
    text = ok("service", "unit", "--db", "sqlite:////var/lib/lh/hub.db", "--", "--workers", "2")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start == (
        f"ExecStart={sys.executable} -m learnhub serve --db sqlite:////var/lib/lh/hub.db "
        "--workers 2"
    )
    assert "--detach" not in exec_start
    assert "[Install]" in text and "WantedBy=default.target" in text
    assert "--detach" in fails("service", "unit", "--", "--detach")
    if shutil.which("systemd-analyze"):
        unit = isolated_env / "learnhub.service"
        unit.write_text(text)
        # As a system unit: --user needs a user manager, which a test machine may lack.
        check = subprocess.run(
            ["systemd-analyze", "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if "Failed to initialize manager" not in check.stderr:
            assert check.returncode == 0, check.stderr
            assert "learnhub.service:" not in check.stderr, check.stderr  # no complaint


def test_service_install_writes_the_user_unit(isolated_env: Path) -> None:
    target = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "learnhub.service"
    assert "only --user units" in fails("service", "install")
    assert not target.exists()
    out = ok("service", "install", "--user")
    assert str(target) in out.replace("\n", "") and "systemctl --user" in out
    assert target.read_text() == ok("service", "unit")
    ok("service", "install", "--user")  # the same unit again: fine
    before = target.read_text()
    line = fails("service", "install", "--user", "--socket", "/tmp/other.sock")
    assert "exists and differs; pass --force" in line
    assert target.read_text() == before
    ok("service", "install", "--user", "--force", "--socket", "/tmp/other.sock")
    assert "--socket /tmp/other.sock" in target.read_text()


def test_node_id_is_the_stores(db: str) -> None:
    printed = ok("node", "id", "--db", db).strip()
    with learnhub.open(db) as hub:
        assert hub.node_id == printed
    assert ok("node", "id", "--db", db).strip() == printed
