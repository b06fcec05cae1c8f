"""Open a store from its URL and bring its schema up to date."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from learnhub.errors import SchemaTooNew, StoreError
from learnhub.store.base import Connector, Store, redact

SCHEMES = ("sqlite://", "postgresql://", "postgres://")


def open_store(url: str) -> Store:
    """Open ``sqlite:///PATH`` or ``postgresql://...`` and apply pending migrations."""
    connector = _connector(url)
    try:
        migrate(connector)
    except BaseException:
        connector.close()
        raise
    return Store(connector, url)


def _connector(url: str) -> Connector:
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path or ":memory:" in path:
            raise StoreError(
                f"store URL {url!r} names no database file: use sqlite:///PATH/TO/hub.db"
            )
        from learnhub.store.sqlite import SQLiteConnector

        file = Path(path).expanduser()
        file.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteConnector(file)
    if url.startswith(("postgresql://", "postgres://")):
        from learnhub.store.postgres import PostgresConnector

        return PostgresConnector(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise StoreError(
        f"unknown store URL scheme {scheme!r} in {redact(url)!r}: "
        "use sqlite:///PATH/TO/hub.db or postgresql://USER@HOST:PORT/DB"
    )


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped for a dialect, in order."""
    folder = resources.files("learnhub.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(number), name, entry.read_text()))
    return sorted(found)


def migrate(connector: Connector, target: int | None = None) -> list[int]:
    """Apply the migrations the database lacks, up to ``target`` (default: all); return them.

    The whole upgrade is one transaction that holds the write lock, so two processes opening
    the same fresh database never both apply it, and a crash leaves the old schema intact.
    """
    shipped = migrations(connector.dialect)
    newest = shipped[-1][0]
    with connector.transaction() as tx:
        tx.execute("lock_migrations")
        tx.execute("create_migrations_table")
        applied = {row["version"] for row in tx.all("applied_migrations")}
        if applied and max(applied) > newest:
            raise SchemaTooNew(
                f"the database is at schema version {max(applied)}, but this learnhub only "
                f"knows up to {newest}: upgrade learnhub (pip install -U learnhub)"
            )
        done = []
        for number, name, sql in shipped:
            if number in applied or (target is not None and number > target):
                continue
            connector.run_script(tx, sql)
            tx.execute("record_migration", version=number, name=name, applied_ns=time.time_ns())
            done.append(number)
    return done
