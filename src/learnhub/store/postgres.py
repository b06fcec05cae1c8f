"""PostgreSQL backend: many hubs and workers on many machines share one database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from learnhub.errors import StoreError
from learnhub.store.base import Tx, redact

try:
    import psycopg
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # the postgres extra is optional
    raise StoreError(
        "PostgreSQL support is not installed: pip install 'learnhub[postgres]'"
    ) from exc

CONNECT_TIMEOUT_S = 10.0


class PostgresConnector:
    dialect = "postgres"
    notifies = True

    def __init__(self, url: str, max_size: int = 10) -> None:
        self._url = url
        self._closed = threading.Event()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            open=False,
            timeout=CONNECT_TIMEOUT_S,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL at {redact(url)} within {CONNECT_TIMEOUT_S:.0f}s; "
                "check that the server is up and the URL is right"
            ) from exc

    @contextmanager
    def transaction(self, readonly: bool = False, synced: bool = True) -> Iterator[Tx]:
        # The pool commits when the block ends normally and rolls back on an exception.
        with self._pool.connection() as conn:
            # Unsynced: acknowledged before the WAL flush; a crash of our process loses nothing.
            if not synced:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield Tx(conn, self.dialect)

    def read(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def write(self, sql: str, rows: Sequence[Mapping[str, Any]], synced: bool = True) -> None:
        with self._pool.connection() as conn:
            if not synced:
                conn.execute("SET LOCAL synchronous_commit = off")
            with conn.cursor() as cur:
                cur.executemany(sql, rows)

    def run_script(self, tx: Tx, sql: str) -> None:
        tx.conn.execute(sql)

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every NOTIFY on ``channel``, from a thread with its own
        connection that reconnects after a failure, until the store is closed."""

        def run() -> None:
            while not self._closed.is_set():
                try:
                    with psycopg.connect(self._url, autocommit=True) as conn:
                        conn.execute(f"LISTEN {channel}")
                        while not self._closed.is_set():
                            for _ in conn.notifies(timeout=1.0):
                                callback()
                except psycopg.Error:
                    self._closed.wait(1.0)

        threading.Thread(target=run, name=f"learnhub-listen-{channel}", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._pool.close()
