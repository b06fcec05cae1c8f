"""Fixtures and helpers shared by the ai server tests (test_ai_server.py, test_ai_compat.py).

A hub is served in-process on a UNIX socket (learnhub.server.app.serving) and reached with real
clients: redis-py (RESP2 or RESP3, retries off so a dropped connection is seen, not hidden) and
redis-cli. A test module uses a fixture by binding it to a module-level name
(``ai_server = ai_fixtures.ai_server``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import learnhub
from conftest import wait_for
from learnhub.server.app import serving

REDIS_CLI = shutil.which("redis-cli")
TIMEOUT = 60  # seconds any single socket read or process run may take before the test fails


def connect(socket_path: Path, protocol: int = 2) -> redis.Redis:
    """A redis-py client on the socket; no retries, so a dropped connection is an error."""
    return redis.Redis(
        unix_socket_path=str(socket_path),
        protocol=protocol,
        socket_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass
class AIServer:
    """A hub served on ``socket_path``; ``redis()`` and ``cli()`` talk to it."""

    hub: learnhub.Hub
    socket_path: Path
    _clients: list[redis.Redis] = field(default_factory=list)

    def redis(self, protocol: int = 2) -> redis.Redis:
        client = connect(self.socket_path, protocol)
        self._clients.append(client)
        return client

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        """Run redis-cli on the socket (non-interactive: raw output, one item a line)."""
        if REDIS_CLI is None:
            pytest.skip("redis-cli is not installed")
        return subprocess.run(
            [REDIS_CLI, "-s", str(self.socket_path), *args],
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )

    def close(self) -> None:
        for client in self._clients:
            client.close()


@contextlib.contextmanager
def served(hub: learnhub.Hub, socket_path: Path) -> Iterator[AIServer]:
    with serving(hub, socket_path):
        server = AIServer(hub, socket_path)
        try:
            yield server
        finally:
            server.close()


@pytest.fixture
def ai_server(hub: learnhub.Hub, sock_dir: Path) -> Iterator[AIServer]:
    """A served hub on each store backend (SQLite and PostgreSQL, via conftest's store_url)."""
    with served(hub, sock_dir / "hub.sock") as server:
        yield server


@pytest.fixture
def sqlite_server(tmp_path: Path, sock_dir: Path) -> Iterator[AIServer]:
    """A served hub on SQLite only: for tests whose subject is not the store."""
    with (
        learnhub.open(f"sqlite:///{tmp_path / 'ai.db'}") as hub,
        served(hub, sock_dir / "hub.sock") as server,
    ):
        yield server


def error_of(client: redis.Redis, *args: Any) -> str:
    """The error message a command gets (redis-py drops the leading "ERR ")."""
    with pytest.raises(redis.ResponseError) as info:
        client.execute_command(*args)
    return str(info.value)


def next_message(pubsub: redis.client.PubSub, timeout: float = 20.0) -> dict[str, Any]:
    """The next pub/sub message, waiting at most ``timeout`` seconds for it."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            found.append(message)
        return bool(found)

    wait_for(arrived, timeout=timeout, what="a pub/sub message")
    return found[0]


def keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.keys("*"))


def wait_until(condition: Callable[[], object], what: str) -> object:
    return wait_for(condition, timeout=TIMEOUT, what=what)
