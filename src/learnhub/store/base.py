"""What every backend shares: named queries, the transaction handle, the Store facade."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, closing
from functools import cache
from importlib import resources
from typing import Any, Protocol

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def queries(dialect: str) -> dict[str, str]:
    """The named queries of a dialect: blocks that start with ``-- name: NAME``."""
    text = resources.files("learnhub.store").joinpath("queries", f"{dialect}.sql").read_text()
    parts = _NAME.split(text)[1:]
    return {name: sql.strip() for name, sql in zip(parts[::2], parts[1::2], strict=True)}


class Tx:
    """One open transaction: runs named queries, returns rows as dicts."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self._queries = queries(dialect)

    def execute(self, query: str, /, **params: Any) -> int:
        return self.conn.execute(self._queries[query], params).rowcount

    def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One query for many rows (PostgreSQL sends them in one pipeline)."""
        with closing(self.conn.cursor()) as cur:
            cur.executemany(self._queries[query], rows)

    def one(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        row = self.conn.execute(self._queries[query], params).fetchone()
        return None if row is None else dict(row)

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(self._queries[query], params).fetchall()]


class Connector(Protocol):
    """What a backend provides: transactions on its own connections, and a way to close them."""

    dialect: str
    notifies: bool  # whether listen() hears other processes' changes

    def transaction(
        self, readonly: bool = False, synced: bool = True
    ) -> AbstractContextManager[Tx]: ...

    def read(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def write(self, sql: str, rows: Sequence[Mapping[str, Any]], synced: bool = True) -> None: ...

    def run_script(self, tx: Tx, sql: str) -> None: ...

    def listen(self, channel: str, callback: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class Store:
    """An open, migrated database. Parts of the hub run their queries through ``transaction()``."""

    def __init__(self, connector: Connector, url: str) -> None:
        self.connector = connector
        self.url = url
        self._queries = queries(connector.dialect)

    @property
    def notifies(self) -> bool:
        """Whether ``listen`` hears other processes' changes (else they must be polled)."""
        return self.connector.notifies

    @property
    def dialect(self) -> str:
        return self.connector.dialect

    def transaction(
        self, readonly: bool = False, synced: bool = True
    ) -> AbstractContextManager[Tx]:
        """A transaction that commits on success and rolls back on any exception.

        ``readonly`` lets SQLite readers run beside a writer instead of queueing behind it
        (and promises no writes: on SQLite such a transaction's commit is never synced).
        ``synced=False`` acknowledges the commit before it reaches the disk: it survives a
        crash of this process (kill -9) but not the machine losing power (Redis's trade-off
        for its keyspace; used for tensors, which are written at inference rates).
        """
        return self.connector.transaction(readonly, synced)

    def read(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """The rows of one named query, run on its own.

        One statement reads one consistent snapshot, so it needs no transaction around it;
        on SQLite that saves the BEGIN and COMMIT round (the hot path of AI.MODELEXECUTE).
        """
        return self.connector.read(self._queries[query], params)

    def write(self, query: str, rows: Sequence[Mapping[str, Any]], synced: bool = True) -> None:
        """Run one named statement once per parameter set in ``rows``, all or none, as
        ``transaction()`` would (``synced`` as there), in fewer statements."""
        if rows:
            self.connector.write(self._queries[query], rows, synced)

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process notifies ``channel`` (PostgreSQL only;
        on SQLite, other processes' changes are found by polling)."""
        self.connector.listen(channel, callback)

    def close(self) -> None:
        self.connector.close()

    def __repr__(self) -> str:
        return f"<Store {redact(self.url)}>"


def redact(url: str) -> str:
    """The URL with any password replaced, fit for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
