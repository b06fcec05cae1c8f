"""PostgreSQL backend: many hubs and workers on many machines share one database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

    def __init__(self, url: str, max_size: int = 10) -> None:
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
    def transaction(self, readonly: bool = False) -> Iterator[Tx]:
        # The pool commits when the block ends normally and rolls back on an exception.
        with self._pool.connection() as conn:
            yield Tx(conn, self.dialect)

    def run_script(self, tx: Tx, sql: str) -> None:
        tx.conn.execute(sql)

    def close(self) -> None:
        self._pool.close()
