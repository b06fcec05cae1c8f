"""Asking elsewhere on a lookup miss: the one hook an upstream hub (and later, peers) plug into.

A *source* answers ``fetch(key, where, timeout)`` with an ``Artifact`` or None. On a miss,
``Elsewhere.ask`` starts every source at once and waits for the first hit, at most
``timeout`` seconds (``lookup_timeout``) in all: a slow or dead source costs the lookup that
budget, never more. Every hit is handed to ``adopt`` (the hub stores it), also one that comes
in after the budget: the lookup that asked has given up, but the next one finds it local.
Concurrent misses on the same key and filter share one round of fetches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from learnhub.client import Client
    from learnhub.learning.artifacts import Artifact

log = logging.getLogger("learnhub.learning")
# A fetch may run on after its lookup gave up, so that a late answer is still stored; this
# bounds how long (and so how many threads a dead source can hold).
LATE_FETCH_S = 5.0


class Source(Protocol):
    """Somewhere a lookup miss can be asked."""

    name: str

    def fetch(self, key: str, where: Mapping[str, str], timeout: float) -> Artifact | None:
        """The current version of ``key`` matching ``where`` there, or None; may raise."""
        ...

    def close(self) -> None: ...


class Elsewhere:
    """The sources a lookup miss is asked, and its time budget."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.sources: list[Source] = []
        self._lock = threading.Lock()
        self._inflight: dict[tuple[str, tuple[tuple[str, str], ...]], Future[Artifact | None]] = {}

    def add(self, source: Source) -> None:
        self.sources.append(source)

    def remove(self, source: Source) -> None:
        self.sources.remove(source)

    def ask(
        self, key: str, where: Mapping[str, str], adopt: Callable[[Artifact], None]
    ) -> Artifact | None:
        """The first version found elsewhere within the budget (already adopted), or None."""
        sources = list(self.sources)
        if not sources:
            return None
        ident = (key, tuple(sorted(where.items())))
        with self._lock:
            pending = self._inflight.get(ident)
            if pending is None:
                pending = self._inflight[ident] = Future()
                self._start(ident, sources, key, dict(where), adopt, pending)
        try:
            return pending.result(timeout=self.timeout)
        except FutureTimeout:
            log.info("lookup of %r elsewhere found nothing within %.3fs", key, self.timeout)
            return None

    def _start(
        self,
        ident: tuple[str, tuple[tuple[str, str], ...]],
        sources: list[Source],
        key: str,
        where: dict[str, str],
        adopt: Callable[[Artifact], None],
        first: Future[Artifact | None],
    ) -> None:
        left = [len(sources)]
        lock = threading.Lock()

        def run(source: Source) -> None:
            found = None
            try:
                found = source.fetch(key, where, max(self.timeout, LATE_FETCH_S))
                if found is not None:
                    adopt(found)  # stored before anyone is told, so a re-lookup finds it
            except Exception as exc:  # a source that is down is a miss there, not an error
                log.warning("asking %s for %r failed: %s", source.name, key, exc)
                found = None
            with lock:  # the first hit, else the last source's miss, answers
                left[0] -= 1
                if not first.done() and (found is not None or left[0] == 0):
                    first.set_result(found)
                done = left[0] == 0
            if done:
                with self._lock:
                    self._inflight.pop(ident, None)

        for source in sources:
            threading.Thread(
                target=run, args=(source,), name=f"learnhub-ask-{source.name}", daemon=True
            ).start()

    def close(self) -> None:
        for source in self.sources:
            source.close()


class UpstreamHub:
    """Another hub (typically the machine's shared system hub) as a source.

    It is asked with LOOKUP_LOCAL: it answers from its own store, so two hubs that name
    each other as upstream cannot bounce a miss back and forth.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"upstream {url}"
        self._client: Client | None = None
        self._lock = threading.Lock()

    def _connect(self, timeout: float) -> Client:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from learnhub.client import Client

        with self._lock:
            if self._client is None:
                parts = urlsplit(self.url)
                options = {
                    "socket_timeout": timeout,
                    "socket_connect_timeout": timeout,
                    # No retries: the budget is one attempt; the next miss tries again.
                    "retry": Retry(NoBackoff(), 0),
                }
                if parts.scheme == "unix":
                    conn = redis.Redis(unix_socket_path=unquote(parts.path), **options)
                else:
                    conn = redis.Redis.from_url(self.url, **options)
                self._client = Client(conn)
            return self._client

    def fetch(self, key: str, where: Mapping[str, str], timeout: float) -> Artifact | None:
        return self._connect(timeout).lookup(key, where, local=True)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
