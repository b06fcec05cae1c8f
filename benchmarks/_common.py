"""What the benchmark scripts share."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import learnhub


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


class PgSchemas:
    """Schemas a benchmark makes in one PostgreSQL database, each seen alone through the URL
    ``url(name)`` returns, all dropped by ``close()``."""

    def __init__(self, url: str, prefix: str) -> None:
        import psycopg

        self.base_url = url
        self.prefix = f"{prefix}_{os.getpid()}"
        self.admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
        self.made: set[str] = set()

    def url(self, name: str) -> str:
        """A fresh schema ``name`` and a URL whose connections see only it."""
        schema = f"{self.prefix}_{name}"
        self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.admin.execute(f'CREATE SCHEMA "{schema}"')
        self.made.add(schema)
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options=-csearch_path%3D{schema}"

    def drop(self, *names: str) -> None:
        for name in names:
            schema = f"{self.prefix}_{name}"
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


def pg_schemas(url: str, prefix: str) -> tuple[PgSchemas | None, str | None]:
    """Schemas on the server at ``url``, or None and why not (a note for the output)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (pip install 'learnhub[postgres]')"
    try:
        return PgSchemas(url, prefix), None
    except Exception as exc:  # unreachable, auth, no such database ...
        return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


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
