"""The store: URLs, migrations, durability across processes. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import learnhub
from learnhub.errors import SchemaTooNew, StoreError
from learnhub.store import open_store
from learnhub.store.base import queries
from learnhub.store.open import _connector, migrate, migrations


def test_both_dialects_define_the_same_queries():
    assert queries("sqlite").keys() == queries("postgres").keys()
    assert [m[:2] for m in migrations("sqlite")] == [m[:2] for m in migrations("postgres")]


def test_open_applies_every_migration_once(store_url):
    newest = migrations("sqlite")[-1][0]
    store = open_store(store_url)
    store.close()
    store = open_store(store_url)  # a second open finds nothing to do
    with store.transaction(readonly=True) as tx:
        applied = sorted(r["version"] for r in tx.all("applied_migrations"))
    store.close()
    assert applied == list(range(1, newest + 1))


def test_opening_an_older_database_upgrades_it(store_url):
    connector = _connector(store_url)
    assert migrate(connector, target=1) == [1]
    connector.close()
    with learnhub.open(store_url) as hub:  # needs the artifacts tables of migration 2
        version = hub.learning.store("k", {"f": b"x"}, 1.0)
        assert hub.learning.lookup("k").version == version


def test_opening_a_newer_database_fails_clearly_and_changes_nothing(store_url):
    open_store(store_url).close()
    store = open_store(store_url)
    with store.transaction() as tx:
        tx.execute("record_migration", version=999, name="from_the_future", applied_ns=0)
    store.close()
    with pytest.raises(SchemaTooNew, match="schema version 999.*upgrade learnhub"):
        open_store(store_url)
    connector = _connector(store_url)
    with connector.transaction(readonly=True) as tx:
        assert 999 in {r["version"] for r in tx.all("applied_migrations")}
    connector.close()


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/db", "unknown store URL scheme 'mysql'"),
        ("hub.db", "unknown store URL scheme 'hub.db'"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
    ],
)
def test_bad_store_urls_are_clear_errors(url, message):
    with pytest.raises(StoreError, match=message):
        learnhub.open(url)


def test_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info:
        learnhub.open("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=1")
    assert "secret" not in str(info.value)


def test_sqlite_default_lives_in_the_user_data_dir(isolated_env, tmp_path):
    with learnhub.open() as hub:
        assert hub.store.dialect == "sqlite"
        assert str(tmp_path / "home" / "data" / "learnhub" / "hub.db") in hub.store.url


def test_node_id_is_made_once_and_kept(store_url):
    with learnhub.open(store_url) as a, learnhub.open(store_url) as b:
        assert a.node_id == b.node_id
    with learnhub.open(store_url) as c:
        assert c.node_id == a.node_id


def test_a_failed_transaction_leaves_nothing(hub):
    with pytest.raises(RuntimeError), hub.store.transaction() as tx:
        tx.execute("insert_blob", hash="h", size=1, data=b"x")
        raise RuntimeError("boom")
    with hub.store.transaction(readonly=True) as tx:
        assert tx.one("artifact_counts")["versions"] == 0
        assert dict(tx.conn.execute("SELECT count(*) AS n FROM blobs").fetchone())["n"] == 0


def _writer(url: str, worker: int, count: int) -> None:
    with learnhub.open(url) as hub:
        for i in range(count):
            hub.learning.store(f"w{worker}", {"f": f"{worker}-{i}".encode()}, float(i))


def test_several_processes_write_one_database_safely(store_url):
    """Four processes store at once (and race to migrate a fresh database): nothing is lost."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store_url, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with learnhub.open(store_url) as hub:
        assert hub.learning.counts() == {"keys": 4, "versions": 100}
        assert all(len(hub.learning.versions(f"w{w}")) == 25 for w in range(4))


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path):
    with learnhub.open(f"sqlite:///{tmp_path / 'x.db'}") as hub, hub.store.transaction() as tx:
        assert tx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert tx.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sqlite_creates_missing_parent_directories(tmp_path: Path):
    with learnhub.open(f"sqlite:///{tmp_path / 'a' / 'b' / 'hub.db'}") as hub:
        hub.learning.store("k", {"f": b"1"}, 0)
    assert (tmp_path / "a" / "b" / "hub.db").is_file()


def test_readers_see_committed_writes_from_other_threads(hub):
    import threading

    seen = []
    hub.learning.store("k", {"f": b"1"}, 1.0)
    t = threading.Thread(target=lambda: seen.append(hub.learning.lookup("k")))
    t.start()
    t.join()
    assert seen[0] is not None and seen[0].files == {"f": b"1"}


def _tensor_row(key: str, kind: str = "tensor") -> dict[str, object]:
    return {"key": key, "type": kind, "meta": "{}", "blob": b"x", "updated_ns": 1}


@pytest.mark.parametrize("synced", [True, False])
def test_write_commits_every_row_or_none(hub, synced):
    """store.write: one statement per row, all in one transaction, synced or not."""
    store = hub.store
    with pytest.raises(Exception, match="(?i)check constraint"):
        store.write("ai_put", [_tensor_row("a"), _tensor_row("b", "bogus")], synced=synced)
    with pytest.raises(Exception, match="(?i)check constraint"):
        store.write("ai_put", [_tensor_row("c", "bogus")], synced=synced)
    assert store.read("ai_get_many", keys='["a", "b", "c"]') == []
    store.write("ai_put", [_tensor_row("a")], synced=synced)
    store.write("ai_put", [_tensor_row("b"), _tensor_row("c")], synced=synced)
    store.write("ai_put", [], synced=synced)  # nothing to do
    rows = store.read("ai_get_many", keys='["a", "b", "c", "d"]')
    assert sorted(r["key"] for r in rows) == ["a", "b", "c"]
    assert store.read("ai_get", key="d") == []


def test_read_sees_writes_of_other_threads(hub):
    import threading

    t = threading.Thread(target=hub.store.write, args=("ai_put", [_tensor_row("a")], False))
    t.start()
    t.join()
    assert [r["key"] for r in hub.store.read("ai_get", key="a")] == ["a"]


def test_sqlite_unsynced_write_leaves_the_connection_fully_synced(tmp_path: Path):
    with learnhub.open(f"sqlite:///{tmp_path / 'x.db'}") as hub:
        hub.store.write("ai_put", [_tensor_row("a")], synced=False)
        with pytest.raises(Exception, match="CHECK constraint"):
            hub.store.write("ai_put", [_tensor_row("b", "bogus")], synced=False)
        with hub.store.transaction() as tx:
            assert tx.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
