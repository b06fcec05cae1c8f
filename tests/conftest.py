"""Shared fixtures: an isolated environment per test, and stores on both real backends.

PostgreSQL tests use the server named by LEARNHUB_TEST_POSTGRES, each test in a schema of
its own. Without that variable they are skipped, except on CI (CI=true), where they must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import learnhub

PG_URL = os.environ.get("LEARNHUB_TEST_POSTGRES")
ON_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the user's config or data dirs, or inherits LEARNHUB_* settings."""
    for name in list(os.environ):
        if name.startswith("LEARNHUB_") and not name.startswith("LEARNHUB_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        (home / sub).mkdir(parents=True, mode=0o700)
        monkeypatch.setenv(var, str(home / sub))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _postgres_reachable(url: str) -> str | None:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        return str(exc)
    return None


def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema; the schema is dropped afterwards."""
    if not PG_URL:
        if ON_CI:
            pytest.fail("CI=true but LEARNHUB_TEST_POSTGRES is not set: PostgreSQL tests must run")
        pytest.skip("LEARNHUB_TEST_POSTGRES is not set")
    problem = _postgres_reachable(PG_URL)
    if problem:
        if ON_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable on CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def hub(store_url: str) -> Iterator[learnhub.Hub]:
    with learnhub.open(store_url) as h:
        yield h


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    """Poll until ``condition()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def can_connect(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
        return True
    except OSError:
        return False


class ServeProcess:
    """A real ``learnhub serve`` in its own process."""

    def __init__(self, db: str, socket_path: Path, *extra: str) -> None:
        self.socket_path = socket_path
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "learnhub",
                "serve",
                "--db",
                db,
                "--socket",
                str(socket_path),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self) -> ServeProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"learnhub serve exited: {self.proc.stderr.read().decode()}")
            return can_connect(self.socket_path)

        wait_for(ready, what=f"learnhub serve on {self.socket_path}")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for UNIX sockets (their paths are limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="lh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``learnhub serve`` processes; all are stopped at the end of the test."""
    started: list[ServeProcess] = []

    def start(db: str, socket_path: Path | None = None, *extra: str, ready: bool = True):
        proc = ServeProcess(db, socket_path or sock_dir / "hub.sock", *extra)
        started.append(proc)
        return proc.wait_ready() if ready else proc

    yield start
    for proc in started:
        proc.stop()
