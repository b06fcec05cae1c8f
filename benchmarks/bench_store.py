#!/usr/bin/env python3
"""STORE and LOOKUP through the Python API (``learnhub.open(url).learning``) on SQLite and
PostgreSQL, side by side with the bare database doing the same work.

Workloads (n = --n, default 10,000; each artifact = one 1 KB file + 2 attributes):

    STORE, distinct keys       n stores, one key each
    LOOKUP, distinct keys      n lookups of those keys, in random order
    STORE, one key             n versions of ONE key
    LOOKUP, one key            lookups of that key (best of n versions); time-boxed by
                               --lookup-budget because each one may cost O(n)

Baseline ("bare DB"): one table, one row per artifact (key, version, metric, attrs JSON,
created_ns, the 1 KB blob), primary key (key, version) and an index on (key, metric,
created_ns DESC) like learnhub's:

    SQLite      the sqlite3 module, WAL, synchronous=FULL, one transaction per insert
                (learnhub's durability); lookup = SELECT ... ORDER BY metric, created_ns
                DESC LIMIT 1
    PostgreSQL  psycopg 3, one autocommit connection, one INSERT per artifact; same lookup

Every learnhub and baseline run gets a fresh database (SQLite: a new file in a temp dir;
PostgreSQL: a new schema, dropped afterwards). Cells are the median over --rounds rounds
(fewer if --budget would be exceeded; the table says how many ran).

    cd /work/main && .venv/bin/python benchmarks/bench_store.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    PgSchemas,
    Rounds,
    add_postgres_options,
    postgres_schemas,
    terminate_as_interrupt,
)
from rich.console import Console
from rich.table import Table

import learnhub

PAYLOAD_SIZE = 1024
ONE_KEY = "bench/one-key"

err = Console(stderr=True)


# --- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    key: str
    data: bytes
    metric: float
    attrs: dict[str, Any]
    attrs_json: str


def make_items(n: int, one_key: bool, rng: random.Random) -> list[Item]:
    items = []
    for i in range(n):
        attrs = {
            "lr": round(rng.choice((0.1, 0.01, 0.001)) * (1 + i % 7), 6),
            "arch": rng.choice(("mlp", "cnn", "gbdt")),
        }
        items.append(
            Item(
                key=ONE_KEY if one_key else f"bench/key-{i:06d}",
                data=rng.randbytes(PAYLOAD_SIZE),
                metric=rng.random(),
                attrs=attrs,
                attrs_json=json.dumps(attrs, sort_keys=True),
            )
        )
    return items


# --- timing -----------------------------------------------------------------------------


@dataclass
class Sample:
    ops: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


def timed(
    fn: Callable[[Item], Any], items: Iterable[Item], budget: float | None = None, minimum: int = 3
) -> Sample:
    """Run ``fn`` over ``items``; with a ``budget`` stop after that many seconds (but not
    before ``minimum`` calls)."""
    count = 0
    t0 = time.perf_counter()
    deadline = t0 + budget if budget is not None else None
    for item in items:
        fn(item)
        count += 1
        if deadline is not None and count >= minimum and time.perf_counter() > deadline:
            break
    return Sample(count, time.perf_counter() - t0)


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        rates = [s.rate for s in self.samples]
        return {
            "median_ops_s": statistics.median(rates),
            "min_ops_s": min(rates),
            "max_ops_s": max(rates),
            "rounds_ops_s": rates,
            "ops_per_round": [s.ops for s in self.samples],
        }


# --- backends ---------------------------------------------------------------------------


class Backend:
    """Makes a fresh learnhub store URL and a fresh bare-DB table per round."""

    name: str

    def learnhub_url(self, tag: str) -> str: ...

    def bare(self, tag: str) -> Bare: ...

    def cleanup(self, tag: str) -> None: ...


BARE_INSERT = (
    "INSERT INTO artifacts (key, version, metric, attrs, created_ns, data) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)
BARE_LOOKUP = (
    "SELECT version, metric, attrs, created_ns, data FROM artifacts "
    "WHERE key = {p} ORDER BY metric ASC, created_ns DESC LIMIT 1"
)


class Bare:
    """The baseline: a one-table schema on the bare database, through ``conn``, a DB-API
    connection whose driver takes ``p`` as its placeholder (a subclass makes the table)."""

    def __init__(self, conn: Any, p: str) -> None:
        self.conn = conn
        self._insert = BARE_INSERT.format(p=p)
        self._lookup = BARE_LOOKUP.format(p=p)

    def insert(self, item: Item, version: str) -> None:
        self.conn.execute(
            self._insert,
            (item.key, version, item.metric, item.attrs_json, time.time_ns(), item.data),
        )

    def best(self, key: str) -> Any:
        return self.conn.execute(self._lookup, (key,)).fetchone()

    def close(self) -> None:
        self.conn.close()


class SQLiteBare(Bare):
    def __init__(self, path: Path) -> None:
        # isolation_level=None: every INSERT is its own (implicit) transaction and commit.
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript("""
            CREATE TABLE artifacts (
                key TEXT NOT NULL, version TEXT NOT NULL, metric REAL NOT NULL,
                attrs TEXT NOT NULL, created_ns INTEGER NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (key, version));
            CREATE INDEX artifacts_best ON artifacts (key, metric, created_ns DESC);
        """)
        super().__init__(conn, "?")


class SQLiteBackend(Backend):
    name = "SQLite"

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def learnhub_url(self, tag: str) -> str:
        return f"sqlite:///{self.dir / f'learnhub-{tag}.db'}"

    def bare(self, tag: str) -> Bare:
        return SQLiteBare(self.dir / f"bare-{tag}.db")

    def cleanup(self, tag: str) -> None:
        for path in self.dir.glob(f"*-{tag}.db*"):
            path.unlink()


class PostgresBare(Bare):
    def __init__(self, url: str) -> None:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute("""
            CREATE TABLE artifacts (
                key TEXT NOT NULL, version TEXT NOT NULL, metric DOUBLE PRECISION NOT NULL,
                attrs TEXT NOT NULL, created_ns BIGINT NOT NULL, data BYTEA NOT NULL,
                PRIMARY KEY (key, version))""")
        conn.execute("CREATE INDEX artifacts_best ON artifacts (key, metric, created_ns DESC)")
        super().__init__(conn, "%s")


class PostgresBackend(Backend):
    name = "PostgreSQL"

    def __init__(self, schemas: PgSchemas) -> None:
        self.schemas = schemas

    def learnhub_url(self, tag: str) -> str:
        return self.schemas.url(f"hub_{tag}")

    def bare(self, tag: str) -> Bare:
        return PostgresBare(self.schemas.url(f"bare_{tag}"))

    def cleanup(self, tag: str) -> None:
        self.schemas.drop(f"hub_{tag}", f"bare_{tag}")


# --- one round --------------------------------------------------------------------------

OPS = ("STORE, distinct keys", "LOOKUP, distinct keys", "STORE, one key", "LOOKUP, one key")


def run_round(
    backend: Backend,
    tag: str,
    distinct: list[Item],
    one: list[Item],
    lookup_budget: float,
    cells: dict[tuple[str, str, str], Cell],
) -> None:
    def cell(op: str, side: str) -> Cell:
        return cells.setdefault((backend.name, op, side), Cell())

    order = list(distinct)
    random.Random(tag).shuffle(order)
    versions: dict[int, str] = {}  # id(item) -> version, so bare rows carry the same versions

    # learnhub and the bare database alternate phase by phase, so noise hits both alike.
    with learnhub.open(backend.learnhub_url(tag)) as hub:
        bare = backend.bare(tag)
        try:
            learning = hub.learning

            def lh_store(item: Item) -> None:
                versions[id(item)] = learning.store(
                    item.key, {"model.bin": item.data}, item.metric, item.attrs
                )

            def lh_lookup(item: Item) -> None:
                if learning.lookup(item.key) is None:
                    raise AssertionError(f"learnhub lost {item.key}")

            def bare_insert(item: Item) -> None:
                bare.insert(item, versions[id(item)])

            def bare_lookup(item: Item) -> None:
                if bare.best(item.key) is None:
                    raise AssertionError(f"bare DB lost {item.key}")

            for items, store_op, lookup_op, budget in (
                (distinct, OPS[0], OPS[1], None),
                (one, OPS[2], OPS[3], lookup_budget),
            ):
                lookups = order if items is distinct else items
                cell(store_op, "learnhub").samples.append(timed(lh_store, items))
                cell(store_op, "bare").samples.append(timed(bare_insert, items))
                cell(lookup_op, "learnhub").samples.append(timed(lh_lookup, lookups, budget))
                cell(lookup_op, "bare").samples.append(timed(bare_lookup, lookups, budget))

            # Both must agree on the best version of the one key (outside the timings).
            want = min(one, key=lambda it: it.metric)
            got = learning.lookup(ONE_KEY)
            row = bare.best(ONE_KEY)
            if got is None or got.version != versions[id(want)] or row[0] != got.version:
                raise AssertionError(
                    f"best version of {ONE_KEY} disagrees: learnhub "
                    f"{got and got.version}, bare {row and row[0]}"
                )
        finally:
            bare.close()
    backend.cleanup(tag)


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n=1000 (~15 s in all)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--n", type=int, help="artifacts per workload [10000; quick: 1000]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds to take the median of [3]")
    parser.add_argument(
        "--budget",
        type=float,
        default=180.0,
        help="skip further rounds if one as fast as the fastest so far would end past this "
        "many seconds [180]",
    )
    parser.add_argument(
        "--lookup-budget", type=float, help="seconds per LOOKUP-one-key measurement [2; quick: 1]"
    )
    add_postgres_options(parser, "SQLite only")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go [a temp dir]")
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 10_000)
    lookup_budget = args.lookup_budget or (1.0 if args.quick else 2.0)

    rng = random.Random(20240601)
    distinct = make_items(n, one_key=False, rng=rng)
    one = make_items(n, one_key=True, rng=rng)
    cells: dict[tuple[str, str, str], Cell] = {}
    notes: list[str] = []
    backends: list[Backend] = []
    started = time.perf_counter()
    schedule = Rounds(args.rounds, args.budget, started, notes)

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-store-", dir=args.dir))
        )
        backends.append(SQLiteBackend(tmp))
        schemas = postgres_schemas(args.postgres, "lhbench", args.no_postgres, notes)
        if schemas is not None:
            stack.callback(schemas.close)
            backends.append(PostgresBackend(schemas))

        for r in schedule:
            err.print(f"round {r + 1}/{args.rounds} (n={n}) ...")
            for backend in backends:
                t0 = time.perf_counter()
                run_round(backend, f"r{r}", distinct, one, lookup_budget, cells)
                err.print(f"  {backend.name}: {time.perf_counter() - t0:.1f} s")

    results = []
    for backend in backends:
        for op in OPS:
            lh = cells[(backend.name, op, "learnhub")].summary()
            bare = cells[(backend.name, op, "bare")].summary()
            assert lh is not None and bare is not None
            results.append(
                {
                    "backend": backend.name,
                    "operation": op,
                    "learnhub": lh,
                    "bare": bare,
                    "ratio": lh["median_ops_s"] / bare["median_ops_s"],
                }
            )
    meta = {
        "n": n,
        "rounds": schedule.done,
        "lookup_budget_s": lookup_budget,
        "payload_bytes": PAYLOAD_SIZE,
        "seconds": time.perf_counter() - started,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "learnhub": learnhub.__version__,
        "cpus": os.cpu_count(),
        "notes": notes,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
    else:
        print_table(meta, results)
    return 0


def print_table(meta: dict[str, Any], results: list[dict[str, Any]]) -> None:
    n = meta["n"]
    table = Table(
        title=f"learnhub Python API vs. the bare database: n={n:,} artifacts (1 KB file + 2 attrs)",
        caption=(
            f"median of {meta['rounds']} round(s); ratio = learnhub / bare DB. "
            f"LOOKUP one key: best of {n:,} versions, as many lookups as fit in "
            f"{meta['lookup_budget_s']:g} s (count in brackets). learnhub {meta['learnhub']}, "
            f"SQLite {meta['sqlite']}, Python {meta['python']}, {meta['cpus']} CPUs, "
            f"{meta['seconds']:.0f} s in all" + "".join(f"\n{note}" for note in meta["notes"])
        ),
    )
    table.add_column("backend")
    table.add_column("operation")
    table.add_column("learnhub ops/s (median)", justify="right")
    table.add_column("bare DB ops/s (median)", justify="right")
    table.add_column("ratio", justify="right")

    def show(side: dict[str, Any], op: str) -> str:
        text = (
            f"{side['median_ops_s']:,.0f}"
            if side["median_ops_s"] >= 100
            else f"{side['median_ops_s']:,.1f}"
        )
        if op == OPS[3]:
            text += f" [dim]({min(side['ops_per_round'])})[/dim]"
        return text

    last = None
    for row in results:
        if last is not None and row["backend"] != last:
            table.add_section()
        last = row["backend"]
        table.add_row(
            row["backend"],
            row["operation"],
            show(row["learnhub"], row["operation"]),
            show(row["bare"], row["operation"]),
            f"{row['ratio']:.3g}",
        )
    Console(width=max(Console().width, 120)).print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; temp files and PostgreSQL schemas removed[/]")
        sys.exit(130)
