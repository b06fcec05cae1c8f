#!/usr/bin/env python3
"""Samples: ingest rate, and count / read at scale, through ``hub.samples`` on SQLite and
PostgreSQL, side by side with plain SQL (one row per sample) on the same database engine.

Data: --rows (1,000,000; quick: 100,000) samples of 8 float64 features + an int64 label, a
pandas DataFrame made before timing.

Ingest (rows/s; median of --rounds, 3; in every round each side gets a fresh database
(SQLite file / PostgreSQL schema), and the side that goes first alternates):

    one call        learnhub: hub.samples.add(batch, df)
                    baseline: executemany of one INSERT per sample (ts, is_train, the 9
                    columns) into a table with the same columns, no index, in one
                    transaction; ts and is_train computed with numpy as learnhub does, and
                    turning the DataFrame into row tuples, inside the timing
    calls of 1,000  the same data in --rows / 1,000 calls of 1,000 rows (slices made before
                    timing): one add() / one executemany + commit per call

Both sides commit durably: SQLite in WAL with synchronous=FULL (the baseline opens its
own sqlite3 connection like that), PostgreSQL with synchronous_commit on.

At scale (--big rows, 10,000,000; quick: 1,000,000), one batch filled by add() calls of
--rows, and the baseline table filled (setup, not timed: executemany on SQLite, COPY on
PostgreSQL) and then indexed on ts:

    count(since)          hub.samples.count(batch, since=t) with t inside a chunk,
                          half of the rows after it; baseline SELECT count(*) WHERE ts >= t
                          (median of 21, after one warm-up)
    read(split="train")   hub.samples.read(batch, split="train") -> a pyarrow Table;
                          baseline SELECT ts, the 9 columns WHERE is_train, rows fetched
                          10,000 at a time and dropped (no table built) (median of 3)

Targets (issue 5): >= 2,000,000 rows/s bulk on SQLite, >= 8x the row-per-sample baseline;
count(since) < 5 ms at 10M rows.

    cd /work/main && .venv/bin/python benchmarks/bench_samples.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    PgSchemas,
    add_postgres_options,
    cpu_model,
    learnhub_commit,
    postgres_schemas,
    terminate_as_interrupt,
    version,
)
from rich.console import Console
from rich.table import Table

import learnhub

FEATURES = [f"f{i}" for i in range(8)]
COLUMNS = [*FEATURES, "label"]
SMALL_CALL = 1000
SMALL = f"calls of {SMALL_CALL:,}"
BULK_TARGET = 2_000_000
BULK_RATIO_TARGET = 8.0
COUNT_TARGET_MS = 5.0
COUNT_REPEAT = 21
READ_REPEAT = 3

err = Console(stderr=True)


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.random(n) for name in FEATURES})
    frame["label"] = rng.integers(0, 2, n)
    return frame


# --- backends ---------------------------------------------------------------------------


class Backend:
    """A fresh database per ``tag``: the learnhub URL and a plain-SQL baseline on it."""

    name: str
    placeholder: str

    def url(self, tag: str) -> str: ...

    def baseline(self, url: str) -> Baseline: ...

    def cleanup(self, tag: str) -> None: ...


class Baseline:
    """One SQL row per sample in a table ``base`` of the same columns."""

    conn: Any

    def insert(self, frame: pd.DataFrame, rng: np.random.Generator) -> None:
        n = len(frame)
        ts = time.time_ns() + np.arange(n, dtype=np.int64)
        is_train = rng.random(n) >= 0.2
        rows = zip(
            ts.tolist(),
            is_train.tolist(),
            *(frame[c].to_numpy().tolist() for c in COLUMNS),
            strict=True,
        )
        self.write(rows)

    def write(self, rows: Iterator[tuple[Any, ...]]) -> None: ...

    def fill(self, frame: pd.DataFrame, rng: np.random.Generator) -> None:
        """Bulk setup for the scale phase (not timed)."""
        self.insert(frame, rng)

    def index(self) -> None:
        self.conn.execute("CREATE INDEX base_ts ON base (ts)")
        self.commit()

    def commit(self) -> None:
        self.conn.commit()

    def count_since(self, since: int) -> int:
        sql = f"SELECT count(*) FROM base WHERE ts >= {self.placeholder}"
        return self.conn.execute(sql, (since,)).fetchone()[0]

    def read_train(self) -> int:
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT ts, {', '.join(COLUMNS)} FROM base WHERE is_train = {self.true}")
        n = 0
        while batch := cursor.fetchmany(10_000):
            n += len(batch)
        return n

    def close(self) -> None:
        self.conn.close()

    placeholder = "?"
    true = "1"


class SQLiteBaseline(Baseline):
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")  # as durable as learnhub's commits
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS base (ts INTEGER NOT NULL, is_train INTEGER NOT NULL, "
            + ", ".join(f"{c} REAL NOT NULL" for c in FEATURES)
            + ", label INTEGER NOT NULL)"
        )
        self.sql = f"INSERT INTO base VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"

    def write(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(self.sql, rows)
        self.conn.execute("COMMIT")

    def commit(self) -> None:
        pass  # autocommit: every statement outside BEGIN commits


class SQLiteBackend(Backend):
    name = "SQLite"

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def url(self, tag: str) -> str:
        return f"sqlite:///{self.dir / f'{tag}.db'}"

    def baseline(self, url: str) -> Baseline:
        return SQLiteBaseline(Path(url.removeprefix("sqlite:///")))

    def cleanup(self, tag: str) -> None:
        for path in self.dir.glob(f"{tag}.db*"):
            path.unlink()


class PostgresBaseline(Baseline):
    placeholder = "%s"
    true = "true"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)  # synchronous_commit on: a durable commit
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS base (ts BIGINT NOT NULL, is_train BOOLEAN NOT NULL, "
            + ", ".join(f"{c} DOUBLE PRECISION NOT NULL" for c in FEATURES)
            + ", label BIGINT NOT NULL)"
        )
        self.conn.commit()
        self.sql = f"INSERT INTO base VALUES ({', '.join(['%s'] * (len(COLUMNS) + 2))})"

    def write(self, rows: Iterator[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(self.sql, rows)  # psycopg 3: pipelined
        self.conn.commit()

    def fill(self, frame: pd.DataFrame, rng: np.random.Generator) -> None:
        n = len(frame)
        ts = time.time_ns() + np.arange(n, dtype=np.int64)
        is_train = rng.random(n) >= 0.2
        columns = [ts.tolist(), is_train.tolist(), *(frame[c].to_numpy().tolist() for c in COLUMNS)]
        with self.conn.cursor() as cursor, cursor.copy("COPY base FROM STDIN") as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        self.conn.commit()

    def read_train(self) -> int:
        # A server-side cursor: rows really come 10,000 at a time.
        with self.conn.cursor(name="read_train") as cursor:
            cursor.execute(f"SELECT ts, {', '.join(COLUMNS)} FROM base WHERE is_train")
            n = 0
            while batch := cursor.fetchmany(10_000):
                n += len(batch)
        self.conn.commit()
        return n


class PostgresBackend(Backend):
    name = "PostgreSQL"

    def __init__(self, schemas: PgSchemas) -> None:
        self.schemas = schemas

    def url(self, tag: str) -> str:
        return self.schemas.url(tag)

    def baseline(self, url: str) -> Baseline:
        return PostgresBaseline(url)

    def cleanup(self, tag: str) -> None:
        self.schemas.drop(tag)


# --- measurements -----------------------------------------------------------------------


def seconds(fn: Callable[[], Any]) -> float:
    gc.collect()  # not inside anyone's timing
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ingest_round(
    backend: Backend, r: int, frame: pd.DataFrame, pieces: list[pd.DataFrame]
) -> dict[str, tuple[float, float]]:
    """{workload: (learnhub s, baseline s)} for round ``r``: each side in a database of its
    own, fresh, so neither finds the files grown (or the WAL sized) by the other; the side
    that goes first alternates from round to round."""
    n = len(frame)
    timings: dict[str, dict[str, float]] = {}

    def learnhub_side() -> None:
        tag = f"r{r}_learnhub"
        try:
            with learnhub.open(backend.url(tag)) as hub:
                timings["learnhub"] = {
                    "one call": seconds(lambda: hub.samples.add("bulk", frame)),
                    SMALL: seconds(lambda: [hub.samples.add("small", p) for p in pieces]),
                }
                # Every row is there (outside the timings).
                assert hub.samples.count("bulk") == n and hub.samples.count("small") == n
        finally:
            backend.cleanup(tag)

    def baseline_side() -> None:
        tag = f"r{r}_baseline"
        rng = np.random.default_rng(1)
        try:
            base = backend.baseline(backend.url(tag))
            try:
                timings["baseline"] = {
                    "one call": seconds(lambda: base.insert(frame, rng)),
                    SMALL: seconds(lambda: [base.insert(p, rng) for p in pieces]),
                }
                assert base.count_since(-(2**62)) == 2 * n
            finally:
                base.close()
        finally:
            backend.cleanup(tag)

    sides = [learnhub_side, baseline_side]
    for side in sides if r % 2 == 0 else sides[::-1]:
        side()
    return {w: (timings["learnhub"][w], timings["baseline"][w]) for w in timings["learnhub"]}


def scale(backend: Backend, frame: pd.DataFrame, big: int) -> dict[str, Any]:
    """count(since) and read(split="train") at ``big`` rows, learnhub and baseline."""
    tag = "scale"
    url = backend.url(tag)
    calls = big // len(frame)
    try:
        with learnhub.open(url) as hub:
            base = backend.baseline(url)
            try:
                err.print(f"  {backend.name}: filling {calls * len(frame):,} rows ...")
                rng = np.random.default_rng(2)
                firsts = []
                for _ in range(calls):
                    firsts.append(hub.samples.add("big", frame).first_ts)
                    base.fill(frame, rng)
                base.index()
                total = calls * len(frame)
                # A point inside a chunk of the middle call: half of the rows after it.
                since = firsts[calls // 2] + (len(frame) // 2 if calls % 2 else 123)
                base_since = _baseline_point(base, total)
                lh_since = hub.samples.count("big", since=since)
                bl_since = base.count_since(base_since)
                lh_times, bl_times = [], []
                for _ in range(COUNT_REPEAT + 1):  # the first is a warm-up
                    lh_times.append(seconds(lambda: hub.samples.count("big", since=since)))
                    bl_times.append(seconds(lambda: base.count_since(base_since)))
                counts = {
                    "learnhub_ms": 1000 * statistics.median(lh_times[1:]),
                    "baseline_ms": 1000 * statistics.median(bl_times[1:]),
                    "learnhub_rows": lh_since,
                    "baseline_rows": bl_since,
                }
                read_lh, read_bl, got = [], [], {}
                for _ in range(READ_REPEAT):

                    def lh_read() -> None:
                        got["learnhub"] = hub.samples.read("big", split="train").num_rows

                    def bl_read() -> None:
                        got["baseline"] = base.read_train()

                    read_lh.append(seconds(lh_read))
                    read_bl.append(seconds(bl_read))
                reads = {
                    "learnhub_ms": 1000 * statistics.median(read_lh),
                    "baseline_ms": 1000 * statistics.median(read_bl),
                    "learnhub_rows": got["learnhub"],
                    "baseline_rows": got["baseline"],
                }
                assert hub.samples.count("big") == total
                assert got["learnhub"] == hub.samples.count("big", split="train")
            finally:
                base.close()
    finally:
        backend.cleanup(tag)
    return {"rows": total, "count_since": counts, "read_train": reads}


def _baseline_point(base: Baseline, total: int) -> int:
    """The baseline's ts with half of its rows at or after it."""
    sql = f"SELECT ts FROM base ORDER BY ts LIMIT 1 OFFSET {total // 2}"
    return base.conn.execute(sql).fetchone()[0]


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, 1M at scale (~1 min)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rows", type=int, help="rows ingested per round [1M; quick: 100k]")
    parser.add_argument("--big", type=int, help="rows at scale [10M; quick: 1M]")
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds [3]")
    add_postgres_options(parser, "SQLite only")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go [a temp dir]")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    big = args.big or (1_000_000 if args.quick else 10_000_000)
    if rows % SMALL_CALL or big % rows:
        parser.error(f"--rows must be a multiple of {SMALL_CALL} and divide --big")

    frame = make_frame(rows)
    pieces = [frame.iloc[i : i + SMALL_CALL] for i in range(0, rows, SMALL_CALL)]
    notes: list[str] = []
    backends: list[Backend] = []
    ingest: list[dict[str, Any]] = []
    at_scale: list[dict[str, Any]] = []
    started = time.perf_counter()

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="lh-bench-samples-", dir=args.dir)
            )
        )
        backends.append(SQLiteBackend(tmp))
        schemas = postgres_schemas(args.postgres, "lhbench_samples", args.no_postgres, notes)
        if schemas is not None:
            stack.callback(schemas.close)
            backends.append(PostgresBackend(schemas))

        for backend in backends:
            samples: dict[str, list[tuple[float, float]]] = {}
            for r in range(args.rounds):
                err.print(f"{backend.name}: ingest round {r + 1}/{args.rounds} ({rows:,} rows) ...")
                for workload, pair in ingest_round(backend, r, frame, pieces).items():
                    samples.setdefault(workload, []).append(pair)
            for workload, pairs in samples.items():
                lh = statistics.median(rows / s for s, _ in pairs)
                bl = statistics.median(rows / s for _, s in pairs)
                ingest.append(
                    {
                        "backend": backend.name,
                        "workload": workload,
                        "learnhub_rows_s": lh,
                        "baseline_rows_s": bl,
                        "ratio": lh / bl,
                        "rounds_learnhub_rows_s": [rows / s for s, _ in pairs],
                        "rounds_baseline_rows_s": [rows / s for _, s in pairs],
                    }
                )
            err.print(f"{backend.name}: at scale ({big:,} rows) ...")
            at_scale.append({"backend": backend.name, **scale(backend, frame, big)})

    bulk = next(r for r in ingest if r["backend"] == "SQLite" and r["workload"] == "one call")
    targets = {
        "sqlite_bulk_rows_s": bulk["learnhub_rows_s"] >= BULK_TARGET,
        "sqlite_bulk_ratio": bulk["ratio"] >= BULK_RATIO_TARGET,
        # Per backend; the target is set at 10M rows.
        "count_since_ms": {
            r["backend"]: r["count_since"]["learnhub_ms"] < COUNT_TARGET_MS for r in at_scale
        }
        if big >= 10_000_000
        else None,
    }
    meta = {
        "rows": rows,
        "big": big,
        "rounds": args.rounds,
        "seconds": time.perf_counter() - started,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "pyarrow": version("pyarrow"),
        "learnhub": learnhub.__version__,
        "learnhub_commit": learnhub_commit(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "notes": notes,
    }
    if args.json:
        print(
            json.dumps(
                {"meta": meta, "ingest": ingest, "scale": at_scale, "targets": targets}, indent=2
            )
        )
    else:
        print_tables(meta, ingest, at_scale, targets)
    return 0


def mark(met: bool | None) -> str:
    return "" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def print_tables(
    meta: dict[str, Any],
    ingest: list[dict[str, Any]],
    at_scale: list[dict[str, Any]],
    targets: dict[str, Any],
) -> None:
    console = Console(width=max(Console().width, 120))
    build = f"learnhub {meta['learnhub']}" + (
        f" ({meta['learnhub_commit']})" if meta["learnhub_commit"] else ""
    )
    footer = (
        f"{build}, pyarrow {meta['pyarrow']}, SQLite {meta['sqlite']}, Python {meta['python']}, "
        f"{meta['cpu']} x{meta['cpus']}, {meta['seconds']:.0f} s in all"
        + "".join(f"\n{note}" for note in meta["notes"])
    )
    table = Table(
        title=f"Ingest: {meta['rows']:,} samples (8 float64 features + int64 label), rows/s",
        caption=(
            "learnhub: hub.samples.add(batch, DataFrame) (ts, is_train, columnar chunks); "
            "baseline: executemany, one INSERT per sample, into a table of the same columns in "
            "the same engine, one transaction per call. Durable commits on both sides. "
            f"Median of {meta['rounds']} round(s), each side in a fresh database every round; "
            f"ratio = learnhub / baseline. Target: SQLite one call >= {BULK_TARGET:,} rows/s "
            f"and >= {BULK_RATIO_TARGET:g}x the baseline.\n" + footer
        ),
    )
    for name, justify in (
        ("backend", "left"),
        ("workload", "left"),
        ("learnhub rows/s", "right"),
        ("baseline rows/s", "right"),
        ("ratio", "right"),
        ("target met?", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    last = None
    for row in ingest:
        if last is not None and row["backend"] != last:
            table.add_section()
        last = row["backend"]
        met = ""
        if row["backend"] == "SQLite" and row["workload"] == "one call":
            met = f"{mark(targets['sqlite_bulk_rows_s'])} / {mark(targets['sqlite_bulk_ratio'])}"
        table.add_row(
            row["backend"],
            row["workload"],
            f"{row['learnhub_rows_s']:,.0f}",
            f"{row['baseline_rows_s']:,.0f}",
            f"{row['ratio']:.1f}x",
            met,
        )
    console.print(table)

    table = Table(
        title=f"At scale: one batch of {meta['big']:,} samples, milliseconds",
        caption=(
            "count(since): hub.samples.count(batch, since=t), t inside a chunk with half of the "
            "rows after it (chunk sums + a binary search); baseline SELECT count(*) WHERE ts >= t "
            f"with an index on ts; median of {COUNT_REPEAT} after a warm-up. "
            'read(split="train"): hub.samples.read(batch, split="train") -> pyarrow Table; '
            "baseline SELECT of the train rows, fetched 10,000 at a time and dropped; median "
            f"of {READ_REPEAT}. speed-up = baseline ms / learnhub ms. Target: count(since) < "
            f"{COUNT_TARGET_MS:g} ms at 10M rows.\n" + footer
        ),
    )
    for name, justify in (
        ("backend", "left"),
        ("operation", "left"),
        ("rows", "right"),
        ("learnhub ms", "right"),
        ("baseline ms", "right"),
        ("speed-up", "right"),
        ("target met?", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, row in enumerate(at_scale):
        if i:
            table.add_section()
        for op, key in (("count(since)", "count_since"), ('read(split="train")', "read_train")):
            cell = row[key]
            met = ""
            if key == "count_since" and meta["big"] >= 10_000_000:
                met = mark(cell["learnhub_ms"] < COUNT_TARGET_MS)
            table.add_row(
                row["backend"],
                op,
                f"{cell['learnhub_rows']:,}",
                f"{cell['learnhub_ms']:,.1f}",
                f"{cell['baseline_ms']:,.1f}",
                f"{cell['baseline_ms'] / cell['learnhub_ms']:,.0f}x",
                met,
            )
    console.print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; temp files and PostgreSQL schemas removed[/]")
        sys.exit(130)
