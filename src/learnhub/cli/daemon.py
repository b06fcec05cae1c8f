"""Long-running commands: serve (in the foreground, or detached with a pid file), stop, and the
demo that runs a server for a moment."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import platformdirs

from learnhub import config as config_module
from learnhub.cli.base import cli, common_options, name_values, open_hub, out
from learnhub.cli.jobs import app_hub, app_option
from learnhub.errors import AlreadyRunning, ConfigError, InvalidInput, ServerError
from learnhub.hub import BUILTIN_QUEUE
from learnhub.learning.policies import LearningConfig

if TYPE_CHECKING:
    from learnhub.hub import Hub
    from learnhub.jobs import Worker

log = logging.getLogger("learnhub.server")
# How long `serve --detach` waits for the hub to come up, and `stop` for it to go.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0  # the server lets running commands finish for up to 30 s


# --- the pid file --------------------------------------------------------------------------


class PidFile:
    """A pid file held under an exclusive lock for the life of the hub.

    The lock, not the file, says whether the hub runs: a hub killed with -9 leaves the file,
    but its lock is gone, so the file is known stale and a recycled pid is never signalled.
    """

    def __init__(self, path: Path, socket_path: Path) -> None:
        self.path = path
        self.socket_path = socket_path  # what the hub serves, for messages
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self.path.parent.is_dir():
            raise ServerError(
                f"cannot write pid file {self.path}: directory {self.path.parent} does not exist; "
                "create it or choose another path with --pid-file"
            )
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(already_serving(owner, self.socket_path, self.path)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # while still locked: no one can take it half-removed
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def owner(path: Path) -> int | None:
        """The pid of the live hub holding ``path``, or None (no file, or a stale one)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # held: the hub runs
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def already_serving(pid: object, socket_path: Path, pid_path: Path) -> str:
    return (
        f"another learnhub (pid {pid}) is already serving on {socket_path} (pid file "
        f"{pid_path}); stop it with `learnhub stop` first or choose another path with --socket"
    )


def default_pid_file(socket_path: Path) -> Path:
    """Next to the socket: one pid file per served socket (learnhub.sock → learnhub.pid)."""
    return socket_path.with_suffix(".pid")


def default_log_file() -> Path:
    return Path(platformdirs.user_log_dir("learnhub")) / "learnhub.log"


# --- socket access for a shared hub ------------------------------------------------------------


def parse_socket_mode(text: str | None) -> int | None:
    """An octal socket mode for a shared hub: the owner keeps rw, others get nothing."""
    if text is None:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise InvalidInput(f"--socket-mode {text!r} must be octal permission bits such as 0660")
    if mode & 0o600 != 0o600:
        raise InvalidInput(
            f"--socket-mode {text!r} must keep read and write for the owner (0600), "
            "or the hub's own user could not use it"
        )
    if mode & 0o007:
        raise InvalidInput(
            f"--socket-mode {text!r} opens the socket to every user on the machine, which no "
            "token protects; share it with a group instead: --socket-mode 0660 --socket-group G"
        )
    return mode


def parse_socket_group(name: str | None) -> int | None:
    """The gid of ``name`` (a group name or number), which this process must be able to use."""
    if name is None:
        return None
    try:
        gid = grp.getgrgid(int(name)).gr_gid if name.isdigit() else grp.getgrnam(name).gr_gid
    except (KeyError, OverflowError):
        raise InvalidInput(
            f"--socket-group {name!r}: no such group on this machine (see /etc/group); "
            "create it with groupadd, or name an existing one"
        ) from None
    if os.geteuid() != 0 and gid not in (os.getegid(), *os.getgroups()):
        raise InvalidInput(
            f"--socket-group {name!r}: this user is not a member, so it cannot give the socket "
            "to that group; add the user to it (usermod -aG) or run the hub as that group"
        )
    return gid


def apply_socket_access(path: Path, mode: int | None, gid: int | None) -> None:
    """Give the served socket its group and mode (it is born 0600, owner only)."""
    if gid is not None:
        os.chown(path, -1, gid)
    if mode is not None:
        os.chmod(path, mode)
    if mode is not None and mode & 0o070:
        parent = path.parent.stat()
        if not parent.st_mode & (stat.S_IXGRP | stat.S_IXOTH):
            log.warning(
                "the socket is group-accessible but its directory %s is not (mode %o): "
                "the group's users cannot reach it; chmod g+x the directory",
                path.parent,
                stat.S_IMODE(parent.st_mode),
            )
    if mode is not None or gid is not None:
        st = path.stat()
        log.info(
            "socket %s: mode %04o, group %s", path, stat.S_IMODE(st.st_mode), _group(st.st_gid)
        )


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --- learning options -------------------------------------------------------------------------


def learning_overrides(
    policies: tuple[str, ...], upstream: str | None, lookup_timeout: str | None
) -> dict[str, Any] | None:
    """The ``[learning]`` settings given as flags (None: none given), checked."""
    if not policies and upstream is None and lookup_timeout is None:
        return None
    values: dict[str, Any] = {"policies": name_values(policies, "--policy")}
    if upstream is not None:
        values["upstream"] = upstream
    if lookup_timeout is not None:
        values["lookup_timeout"] = lookup_timeout
    try:
        LearningConfig(**values)
    except ConfigError as exc:
        raise InvalidInput(str(exc)) from None
    return values


def with_overrides(base: LearningConfig, flags: dict[str, Any]) -> LearningConfig:
    """The configured ``[learning]`` with the flags on top: flag patterns are checked first;
    an upstream or budget given as a flag replaces the configured one."""
    policies = dict(flags["policies"])
    policies.update((p, v) for p, v in base.policies.items() if p not in policies)
    return LearningConfig(
        policies=policies,
        upstream=flags.get("upstream", base.upstream),
        lookup_timeout=flags.get("lookup_timeout", base.lookup_timeout),
    )


# --- serve ---------------------------------------------------------------------------------------


@cli.command()
@common_options
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="UNIX socket to serve on [default: learnhub.sock in the user runtime dir].",
)
@click.option("--listen", metavar="HOST:PORT", help="Also serve on TCP (needs --token).")
@click.option("--token", metavar="T", help="Token TCP clients must send with AUTH.")
@app_option
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Jobs run at once in this process (0: none). Without --app, only learnhub's own.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Run in the background: returns once the hub serves; logs go to --log-file.",
)
@click.option("--stop", "stop_it", is_flag=True, help="Stop the hub of --pid-file (or --socket).")
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pid file, locked while the hub runs [default: the socket's path with .pid].",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where a detached hub logs [default: learnhub.log in the user log dir].",
)
@click.option(
    "--socket-mode",
    metavar="MODE",
    help="Octal mode of the socket for a shared hub, e.g. 0660 [default: 0600].",
)
@click.option("--socket-group", metavar="GROUP", help="Group that owns the socket (shared hub).")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="PATTERN=POLICY",
    help="Combination policy for keys matching PATTERN: best, newest, smallest, largest, "
    "merge:module:function (repeatable; first match wins) [config: learning.policies].",
)
@click.option(
    "--upstream",
    metavar="URL",
    help="Hub asked on a lookup miss, e.g. unix:///run/learnhub/hub.sock "
    "[config: learning.upstream].",
)
@click.option(
    "--lookup-timeout",
    metavar="DURATION",
    help='How long a miss may wait for the upstream, e.g. "500ms" [default: 500ms].',
)
@click.option(
    "--peers/--no-peers",
    "with_peers",
    default=None,
    help="Run the peer link to other hubs [default: on when [peers] is configured].",
)
def serve(
    db: str | None,
    socket_path: str | None,
    listen: str | None,
    token: str | None,
    app: str | None,
    workers: int,
    detach: bool,
    stop_it: bool,
    pid_file: Path | None,
    log_file: Path | None,
    socket_mode: str | None,
    socket_group: str | None,
    policies: tuple[str, ...],
    upstream: str | None,
    lookup_timeout: str | None,
    with_peers: bool | None,
) -> None:
    """Run the hub daemon: the Redis protocol on a UNIX socket (mode 0600; a shared hub:
    --socket-mode 0660 --socket-group G), and optionally on TCP, with job workers in-process.
    Stops cleanly on SIGTERM or Ctrl-C, or with `learnhub stop`."""
    from learnhub.server.app import Server

    config = config_module.load(
        {
            "db": db,
            "server.socket": socket_path,
            "server.listen": listen,
            "server.token": token,
            "jobs.app": app,
        }
    )
    sock = config.socket_path.absolute()
    pid_path = (pid_file or default_pid_file(sock)).absolute()
    if stop_it:
        stop_hub(pid_path)
        return
    # Everything that can be wrong is checked before anything starts.
    mode = parse_socket_mode(socket_mode)
    gid = parse_socket_group(socket_group)
    learning = learning_overrides(policies, upstream, lookup_timeout)
    Server.check_listen(config.server.listen, config.server.token)
    if detach:
        args = ["--socket", str(sock), "--workers", str(workers), "--pid-file", str(pid_path)]
        for flag, value in (
            ("--db", db),
            ("--listen", listen),
            ("--app", app),
            ("--socket-mode", socket_mode),
            ("--socket-group", socket_group),
            ("--upstream", upstream),
            ("--lookup-timeout", lookup_timeout),
        ):
            if value is not None:
                args += [flag, value]
        for p in policies:
            args += ["--policy", p]
        if with_peers is not None:
            args.append("--peers" if with_peers else "--no-peers")
        env = dict(os.environ)
        if token:  # not on the command line, where ps shows it to everyone
            env["LEARNHUB_SERVER_TOKEN"] = token
        detach_hub(args, env, sock, pid_path, (log_file or default_log_file()).absolute())
        return
    pid = PidFile(pid_path, sock)
    pid.acquire()
    try:
        with app_hub(db, config.jobs.app) as hub:
            if learning is not None:
                hub.learning.configure(with_overrides(hub.learning.policies.config, learning))
            # Without the app's tasks, running its jobs would only fail them: keep to our own.
            queues = None if config.jobs.app else [BUILTIN_QUEUE]
            worker = hub.worker(queues, workers) if workers else None
            if with_peers or (with_peers is None and config.peers):
                hub.start_peers()
            run_server(hub, sock, config.server.listen, config.server.token, worker, mode, gid)
    finally:
        pid.release()


def run_server(
    hub: Hub,
    socket_path: Path,
    listen: str | None,
    token: str | None,
    worker: Worker | None,
    mode: int | None = None,
    gid: int | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT: the socket gets its access once bound, then the worker
    starts; on the way out the worker finishes its running jobs."""
    from learnhub.server.app import Server

    server = Server(hub, socket_path, listen, token)
    thread = threading.Thread(target=worker.run, name="learnhub-worker") if worker else None
    failed: list[BaseException] = []

    def started() -> None:
        try:
            apply_socket_access(socket_path, mode, gid)
        except OSError as exc:
            failed.append(
                ServerError(f"cannot set the access of socket {socket_path}: {exc.strerror}")
            )
            server.stop()
            return
        if thread:
            thread.start()

    try:
        asyncio.run(server.serve_forever(on_started=started))
    finally:
        if worker and thread and thread.is_alive():
            worker.stop()
            thread.join()
    if failed:
        raise failed[0]


def detach_hub(
    args: list[str], env: dict[str, str], sock: Path, pid_path: Path, log_path: Path
) -> None:
    """Start ``learnhub serve ARGS`` in its own session, logging to ``log_path``, and return once
    it serves (or fail with the end of its log)."""
    if (running := PidFile.owner(pid_path)) is not None:
        raise AlreadyRunning(already_serving(running, sock, pid_path))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "learnhub", "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=log_out,
            env=env,
            start_new_session=True,  # no terminal: a closed shell does not stop it
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerError(
                f"learnhub serve exited at once (code {code}): {_log_tail(log_path, offset)}"
            )
        if PidFile.owner(pid_path) == proc.pid and _accepts(sock):
            break
        if time.monotonic() > deadline:
            raise ServerError(
                f"learnhub serve (pid {proc.pid}) did not start serving on {sock} within "
                f"{START_TIMEOUT_S:.0f}s; see {log_path}"
            )
        time.sleep(0.05)
    out.print(
        f"learnhub serving on {sock} (pid {proc.pid}); logs: {log_path}; stop: learnhub stop",
        soft_wrap=True,
    )


def _log_tail(log: Path, offset: int) -> str:
    with open(log, "rb") as f:
        f.seek(offset)
        lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [f"nothing in {log}"])[-1].strip()


def _accepts(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
        return True
    except OSError:
        return False


def stop_hub(pid_path: Path, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the hub holding ``pid_path`` and wait until it is gone."""
    pid = PidFile.owner(pid_path)
    if pid is None:
        stale = " (a stale pid file is left by a killed hub)" if pid_path.exists() else ""
        raise ServerError(f"no learnhub is running with pid file {pid_path}{stale}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while PidFile.owner(pid_path) is not None:
        if time.monotonic() > deadline:
            raise ServerError(
                f"learnhub (pid {pid}) did not stop within {timeout:.0f}s of SIGTERM; it may "
                f"still be finishing commands; `kill -9 {pid}` stops it at once"
            )
        time.sleep(0.05)
    out.print(f"stopped learnhub (pid {pid})")


@cli.command()
@common_options
@click.option("--socket", "socket_path", metavar="PATH", help="The socket the hub serves on.")
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The hub's pid file [default: the socket's path with .pid].",
)
def stop(db: str | None, socket_path: str | None, pid_file: Path | None) -> None:
    """Stop a hub started with `learnhub serve` (e.g. --detach), by its pid file."""
    config = config_module.load({"db": db, "server.socket": socket_path})
    stop_hub((pid_file or default_pid_file(config.socket_path.absolute())).absolute())


@cli.command()
@common_options
def demo(db: str | None) -> None:
    """Start a hub, store and look up learning data through it, and show what happened."""
    from learnhub.demo import run

    with open_hub(db) as hub, tempfile.TemporaryDirectory(prefix="learnhub-demo-") as tmp:
        run(hub, Path(tmp) / "hub.sock", out)
