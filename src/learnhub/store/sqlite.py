"""SQLite backend: the embedded default; WAL, a connection per thread, safe across processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from learnhub.errors import StoreError
from learnhub.store.base import Tx

# Long enough that a burst of writers from several processes queues instead of failing.
BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16_384
# FULL: a commit is on disk before it returns, even if the machine then loses power. NORMAL
# (in WAL mode): the commit is in the OS's cache; a crash of this process (kill -9) keeps it.
_FULL = "PRAGMA synchronous = FULL"
_NORMAL = "PRAGMA synchronous = NORMAL"


class SQLiteConnector:
    dialect = "sqlite"
    notifies = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connect()  # fail now, with the path in the message, rather than on first use

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Takes effect when the file is new. Samples and models are large blobs: 16 KiB
            # pages write them ~1.6x faster than the default 4 KiB (small commits ~5% slower).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")
            # Between transactions a connection is NORMAL, what unsynced commits want (tensors,
            # at inference rates: no PRAGMA round trip on the hot path); a synced commit turns
            # it FULL for its transaction, so it is on disk before we acknowledge it.
            conn.execute(_NORMAL)
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def transaction(self, readonly: bool = False, synced: bool = True) -> Iterator[Tx]:
        conn = self._connect()
        full = synced and not readonly  # a read-only transaction commits nothing to sync
        if full:
            conn.execute(_FULL)
        try:
            # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
            conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                yield Tx(conn, self.dialect)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if full:
                conn.execute(_NORMAL)

    def read(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        # In autocommit mode a lone SELECT is a read transaction of its own.
        return [dict(r) for r in self._connect().execute(sql, params).fetchall()]

    def write(self, sql: str, rows: Sequence[Mapping[str, Any]], synced: bool = True) -> None:
        # The thread's own connection, not one kept for unsynced writes: its page cache stays
        # valid for the reads that follow (a commit by another connection would reset it).
        conn = self._connect()
        if not synced:
            _commit(conn, sql, rows)
            return
        conn.execute(_FULL)
        try:
            _commit(conn, sql, rows)
        finally:
            conn.execute(_NORMAL)

    def run_script(self, tx: Tx, sql: str) -> None:
        statement = ""
        for line in sql.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                tx.conn.execute(statement)
                statement = ""

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """SQLite has no notifications: other processes' changes are found by polling."""

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()


def _commit(conn: sqlite3.Connection, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``sql`` once per row of parameters, in one transaction."""
    if len(rows) == 1:
        # A lone statement in autocommit mode is a transaction of its own, with the write lock
        # (and the busy timeout) taken up front as BEGIN IMMEDIATE does: two statements fewer.
        conn.execute(sql, rows[0])
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
