"""What the benchmark scripts share."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import learnhub
from learnhub.store.base import redact

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def add_postgres_options(parser: argparse.ArgumentParser, no_postgres_help: str) -> None:
    """--postgres URL (default $LEARNHUB_TEST_POSTGRES, else the local test database) and
    --no-postgres."""
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("LEARNHUB_TEST_POSTGRES", DEFAULT_POSTGRES),
        help="PostgreSQL URL [$LEARNHUB_TEST_POSTGRES or %(default)s]",
    )
    parser.add_argument("--no-postgres", action="store_true", help=no_postgres_help)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGINT (also when inherited as ignored), SIGTERM and SIGHUP become KeyboardInterrupt,
    so the benchmark's finally blocks stop its servers, drop its schemas, remove its temp dir."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def learnhub_commit() -> str | None:
    """The commit of the learnhub source measured, + "-dirty" if src/ has uncommitted changes."""
    root = Path(learnhub.__file__).resolve().parents[2]

    def git(*argv: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *argv], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=7", "HEAD")
    if not commit:
        return None
    return commit + ("-dirty" if git("status", "--porcelain", "--", "src") else "")


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


class Rounds:
    """``for r in Rounds(...)``: up to ``rounds`` rounds, stopped with a note in ``notes``
    when another would end past ``budget`` s after ``started``. The projection uses the
    fastest round so far: one slowed by a noisy neighbour should not cost the run its median."""

    def __init__(self, rounds: int, budget: float, started: float, notes: list[str]) -> None:
        self.rounds = rounds
        self.budget = budget
        self.started = started
        self.notes = notes
        self.done = 0

    def __iter__(self) -> Iterator[int]:
        fastest = float("inf")
        for r in range(self.rounds):
            round_start = time.perf_counter()
            yield r
            self.done += 1
            now = time.perf_counter()
            fastest = min(fastest, now - round_start)
            if r + 1 < self.rounds and now - self.started + fastest > self.budget:
                self.notes.append(
                    f"stopped after {self.done} of {self.rounds} rounds: another would pass "
                    f"--budget {self.budget:g}s"
                )
                Console(stderr=True).print(f"[yellow]{self.notes[-1]}[/]")
                return


class PgSchemas:
    """Schemas a benchmark makes in one PostgreSQL database, each seen alone through the URL
    ``url(name)`` returns, all dropped by ``close()``."""

    def __init__(self, url: str, prefix: str) -> None:
        import psycopg

        self.base_url = url
        self.prefix = f"{prefix}_{os.getpid()}"
        self.admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
        self.made: set[str] = set()

    def schema(self, name: str) -> str:
        """A fresh schema ``name``; its full name, for drivers that take a search_path."""
        schema = f"{self.prefix}_{name}"
        self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.admin.execute(f'CREATE SCHEMA "{schema}"')
        self.made.add(schema)
        return schema

    def url(self, name: str) -> str:
        """A fresh schema ``name`` and a URL whose connections see only it."""
        schema = self.schema(name)
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options=-csearch_path%3D{schema}"

    def drop(self, *names: str) -> None:
        """Drop those of ``names`` that were made (a name may also tag a SQLite run)."""
        for name in names:
            schema = f"{self.prefix}_{name}"
            if schema in self.made:
                self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                self.made.discard(schema)

    def close(self) -> None:
        if self.made:
            import psycopg

            # The admin connection may have been interrupted mid-query: use a fresh one.
            with psycopg.connect(self.base_url, autocommit=True, connect_timeout=5) as conn:
                for schema in list(self.made):
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    self.made.discard(schema)
        self.admin.close()


def postgres_schemas(url: str, prefix: str, skip: bool, notes: list[str]) -> PgSchemas | None:
    """Schemas on the server at ``url`` for the PostgreSQL rows, or None and a note in
    ``notes`` that says why they are left out (``skip``: --no-postgres; or the server cannot
    be reached, which is also printed at once, as the run goes on without it)."""
    if skip:
        notes.append("PostgreSQL skipped (--no-postgres)")
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        why = "psycopg is not installed (pip install 'learnhub[postgres]')"
    else:
        try:
            return PgSchemas(url, prefix)
        except Exception as exc:  # unreachable, auth, no such database ...
            why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    notes.append(f"PostgreSQL skipped: cannot connect to {redact(url)} ({why})")
    Console(stderr=True).print(f"[yellow]{notes[-1]}[/]")
    return None


def accepts(sock: Path) -> bool:
    """Whether a server accepts connections on the UNIX socket ``sock`` yet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


def terminate(popen: subprocess.Popen[bytes], name: str, timeout: float) -> int:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code (learnhub exits 0)."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{name} ignored SIGTERM for {timeout:.0f}s; killing", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            popen.wait()
    return popen.returncode


@dataclass
class Server:
    """A server process a benchmark started, its log, and its exit code once stopped."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = None

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_server(name: str, argv: list[str], sock: Path, workdir: Path, timeout: float) -> Server:
    """Start ``argv`` in ``workdir`` (output to ``<name>.log`` there), in its own session
    (so a Ctrl-C reaches only the benchmark, which stops it in order), and wait up to
    ``timeout`` s until ``sock`` accepts connections."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    server = Server(name, popen, log)
    deadline = time.monotonic() + timeout
    while True:
        if popen.poll() is not None:
            raise RuntimeError(
                f"{name} exited with code {popen.returncode} before accepting connections:\n"
                + server.tail()
            )
        if accepts(sock):
            return server
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"{name} did not accept on {sock} within {timeout:.0f}s")
        time.sleep(0.05)


def stop_server(server: Server, timeout: float = 15.0) -> None:
    """terminate() it, keeping the exit code to report (learnhub should exit 0 on SIGTERM)."""
    server.exit_code = terminate(server.popen, server.name, timeout)
