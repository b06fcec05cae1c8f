#!/usr/bin/env python3
"""Job queue throughput and idle pick-up latency: learnhub's jobs on SQLite and PostgreSQL,
side by side with procrastinate and pgqueuer on the same PostgreSQL.

Throughput (n = --n no-op jobs per measurement, default 2,000; quick: 500), for each
N in --workers (1, 4, 16), every system in a fresh database:

    enqueue    n jobs in bulk, --batch (1,000) per call, one transaction each: learnhub
               hub.jobs.enqueue_many(); procrastinate task.batch_defer_async(); pgqueuer
               Queries.enqueue(lists)
    process    start one worker allowed N jobs at once, in this process, in its drain
               mode, and time it until it returns with every job done: learnhub
               Worker(hub, concurrency=N, prefetch=N, burst=True).run(); procrastinate
               run_worker_async(concurrency=N, wait=False); pgqueuer
               QueueManager.run(mode=drain, batch_size=N)
    total      n / (enqueue seconds + process seconds)

Enqueue, one call per job: min(n, 1,000) jobs with learnhub hub.jobs.enqueue(),
procrastinate task.defer_async(), pgqueuer Queries.enqueue(one job); nothing processed.

Idle pick-up latency (--samples, 200; quick: 50): a worker with concurrency 4 idles in
this process; one job is enqueued at a time and the task records time.perf_counter() when
it starts; latency = start - the moment just before the enqueue call. The next job is
enqueued 10-70 ms after the previous one started, so the worker is idle again. learnhub
is measured twice: producer and worker on the same Hub (in-process wake-up) and on two
Hubs (the path a producer in another process takes: LISTEN/NOTIFY on PostgreSQL, polling
on SQLite).

Targets (issue 3): PostgreSQL >= 5,000 jobs/s, ahead of both peers; SQLite >= 3,000
jobs/s; idle pick-up p50 < 10 ms on PostgreSQL.

    cd /work/main && .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/bench_jobs.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    PgSchemas,
    Rounds,
    add_postgres_options,
    learnhub_commit,
    postgres_schemas,
    terminate_as_interrupt,
    version,
)
from rich.console import Console
from rich.table import Table

import learnhub
from learnhub.jobs import Worker

TASK = "bench_noop"
LATENCY_CONCURRENCY = 4
SINGLE_MAX = 1000  # jobs enqueued one call at a time, per round
LATENCY_WARMUP = 5  # first pick-ups (connections, LISTEN, caches) are not counted
WAIT_S = 30.0  # a job that has not started after this long fails the run

TARGETS = {"PostgreSQL": 5000.0, "SQLite": 3000.0}
LATENCY_TARGET_MS = 10.0  # p50, PostgreSQL

err = Console(stderr=True)


# --- measurements -----------------------------------------------------------------------


class InFlight:
    """Counts task executions and the most that ran at once (threads or coroutines)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.runs = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.runs += 1
            self.max = max(self.max, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


@dataclass
class Run:
    """One throughput measurement."""

    n: int
    enqueue_s: float
    process_s: float
    max_in_flight: int

    @property
    def enqueue_rate(self) -> float:
        return self.n / self.enqueue_s

    @property
    def process_rate(self) -> float:
        return self.n / self.process_s

    @property
    def total_rate(self) -> float:
        return self.n / (self.enqueue_s + self.process_s)


@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def med(values: list[float]) -> float:
            return statistics.median(values)

        return {
            "enqueue_jobs_s": med([r.enqueue_rate for r in self.runs]),
            "process_jobs_s": med([r.process_rate for r in self.runs]),
            "total_jobs_s": med([r.total_rate for r in self.runs]),
            "max_in_flight": max(r.max_in_flight for r in self.runs),
            "rounds": [
                {
                    "n": r.n,
                    "enqueue_s": r.enqueue_s,
                    "process_s": r.process_s,
                    "total_jobs_s": r.total_rate,
                    "max_in_flight": r.max_in_flight,
                }
                for r in self.runs
            ],
        }


def latency_summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Percentiles of (enqueue to start, enqueue call) pairs, in ms."""
    ms = sorted(pickup * 1000 for pickup, _ in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "samples": len(ms),
        "p50_ms": statistics.median(ms),
        "p90_ms": cuts[89],
        "p99_ms": cuts[98],
        "max_ms": ms[-1],
        "mean_ms": statistics.fmean(ms),
        "enqueue_call_p50_ms": statistics.median(call * 1000 for _, call in samples),
    }


def chunks(n: int, size: int) -> Iterator[int]:
    for start in range(0, n, size):
        yield min(size, n - start)


def gap() -> float:
    """Pause between latency samples: the worker goes idle, and a random phase wider than
    learnhub's 50 ms poll interval keeps samples from locking step with any poll loop."""
    return random.uniform(0.010, 0.070)


def run_async(coro: Any) -> Any:
    """asyncio.run, with a Ctrl-C that cancels the coroutine first, so that it closes its
    pools and connections before the KeyboardInterrupt reaches main()."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return asyncio.run(coro)
    finally:
        signal.signal(signal.SIGINT, previous)


def check(name: str, done: int, n: int, runs: int) -> None:
    if done != n:
        raise AssertionError(f"{name}: {done} of {n} jobs succeeded")
    if runs < n:
        raise AssertionError(f"{name}: the task ran {runs} times for {n} jobs")


# --- databases --------------------------------------------------------------------------


class Databases:
    """Fresh databases: SQLite files in a temp dir; PostgreSQL schemas, dropped afterwards
    (also on Ctrl-C)."""

    def __init__(self, tmp: Path, pg: PgSchemas | None) -> None:
        self.tmp = tmp
        self._pg = pg

    @property
    def pg(self) -> PgSchemas:
        assert self._pg is not None  # systems on PostgreSQL run only when it is reachable
        return self._pg

    def sqlite_url(self, tag: str) -> str:
        return f"sqlite:///{self.tmp / f'{tag}.db'}"

    def drop(self, tag: str) -> None:
        if self._pg is not None:
            self._pg.drop(tag)
        for path in self.tmp.glob(f"{tag}.db*"):
            path.unlink()


# --- systems ----------------------------------------------------------------------------


class System:
    name: str  # "learnhub", "procrastinate", "pgqueuer"
    backend: str  # "SQLite" or "PostgreSQL"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.backend})"

    def throughput(self, n: int, concurrency: int, batch: int, tag: str) -> Run: ...

    def enqueue_single(self, n: int, tag: str) -> float:
        """Seconds to enqueue n jobs, one call each."""
        ...

    def latency(
        self, samples: int, tag: str, same_hub: bool = True
    ) -> list[tuple[float, float]]: ...


class Learnhub(System):
    name = "learnhub"

    def __init__(self, dbs: Databases, backend: str) -> None:
        self.dbs = dbs
        self.backend = backend

    def _url(self, tag: str) -> str:
        if self.backend == "SQLite":
            return self.dbs.sqlite_url(tag)
        return self.dbs.pg.url(tag)

    def throughput(self, n: int, concurrency: int, batch: int, tag: str) -> Run:
        counter = InFlight()
        try:
            with learnhub.open(self._url(tag)) as hub:

                @hub.task(TASK)
                def noop(ctx: Any) -> None:
                    counter.enter()
                    counter.leave()

                t0 = time.perf_counter()
                for size in chunks(n, batch):
                    hub.jobs.enqueue_many(TASK, [{}] * size)
                t1 = time.perf_counter()
                Worker(hub, concurrency=concurrency, burst=True, prefetch=concurrency).run()
                t2 = time.perf_counter()
                done = sum(q["succeeded"] for q in hub.jobs.stats().values())
        finally:
            self.dbs.drop(tag)
        check(self.label, done, n, counter.runs)
        return Run(n, t1 - t0, t2 - t1, counter.max)

    def enqueue_single(self, n: int, tag: str) -> float:
        try:
            with learnhub.open(self._url(tag)) as hub:
                hub.task(TASK)(lambda ctx: None)
                t0 = time.perf_counter()
                for _ in range(n):
                    hub.jobs.enqueue(TASK)
                return time.perf_counter() - t0
        finally:
            self.dbs.drop(tag)

    def latency(self, samples: int, tag: str, same_hub: bool = True) -> list[tuple[float, float]]:
        started: dict[int, float] = {}
        event = threading.Event()
        results: list[tuple[float, float]] = []
        try:
            with contextlib.ExitStack() as stack:
                url = self._url(tag)
                whub = stack.enter_context(learnhub.open(url))
                phub = whub if same_hub else stack.enter_context(learnhub.open(url))

                def mark(ctx: Any, i: int) -> None:
                    started[i] = time.perf_counter()
                    event.set()

                whub.task(TASK)(mark)
                if phub is not whub:
                    phub.task(TASK)(mark)  # for the defaults only: it never runs there
                worker = Worker(whub, concurrency=LATENCY_CONCURRENCY)
                thread = threading.Thread(target=worker.run, name="bench-worker", daemon=True)
                thread.start()
                stack.callback(thread.join, WAIT_S)
                stack.callback(worker.stop)
                time.sleep(0.2)
                for i in range(samples + LATENCY_WARMUP):
                    event.clear()
                    t0 = time.perf_counter()
                    phub.jobs.enqueue(TASK, {"i": i})
                    t1 = time.perf_counter()
                    if not event.wait(WAIT_S):
                        raise AssertionError(f"{self.label}: job {i} did not start in {WAIT_S}s")
                    if i >= LATENCY_WARMUP:
                        results.append((started[i] - t0, t1 - t0))
                    time.sleep(gap())
        finally:
            self.dbs.drop(tag)
        return results


class Procrastinate(System):
    name = "procrastinate"
    backend = "PostgreSQL"

    def __init__(self, dbs: Databases) -> None:
        self.dbs = dbs

    def _app(self, url: str, concurrency: int, counter: InFlight | None = None) -> Any:
        import procrastinate

        # Pool: one connection per job slot and two to spare (its default is 4 in all).
        connector = procrastinate.PsycopgConnector(
            conninfo=url, min_size=1, max_size=max(4, concurrency + 2)
        )
        app = procrastinate.App(connector=connector)
        counter = counter or InFlight()

        @app.task(name=TASK)
        async def noop(**kwargs: Any) -> None:
            counter.enter()
            await asyncio.sleep(0)
            counter.leave()

        return app, noop

    async def _count(self, app: Any) -> int:
        async with app.connector.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
            row = await cur.fetchone()
        return int(row[0])

    def throughput(self, n: int, concurrency: int, batch: int, tag: str) -> Run:
        counter = InFlight()

        async def run() -> tuple[float, float, int]:
            url = self.dbs.pg.url(tag)
            app, noop = self._app(url, concurrency, counter)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                t0 = time.perf_counter()
                for size in chunks(n, batch):
                    await noop.batch_defer_async(*({} for _ in range(size)))
                t1 = time.perf_counter()
                await app.run_worker_async(
                    concurrency=concurrency, wait=False, install_signal_handlers=False
                )
                t2 = time.perf_counter()
                return t1 - t0, t2 - t1, await self._count(app)

        try:
            enq, proc, done = run_async(run())
        finally:
            self.dbs.drop(tag)
        check(self.label, done, n, counter.runs)
        return Run(n, enq, proc, counter.max)

    def enqueue_single(self, n: int, tag: str) -> float:
        async def run() -> float:
            app, noop = self._app(self.dbs.pg.url(tag), 1)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                t0 = time.perf_counter()
                for _ in range(n):
                    await noop.defer_async()
                return time.perf_counter() - t0

        try:
            return run_async(run())
        finally:
            self.dbs.drop(tag)

    def latency(self, samples: int, tag: str, same_hub: bool = True) -> list[tuple[float, float]]:
        async def run() -> list[tuple[float, float]]:
            import procrastinate

            url = self.dbs.pg.url(tag)
            app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
            started: dict[int, float] = {}
            event = asyncio.Event()

            @app.task(name=TASK)
            async def mark(i: int) -> None:
                started[i] = time.perf_counter()
                event.set()

            results: list[tuple[float, float]] = []
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                worker = asyncio.create_task(
                    app.run_worker_async(
                        concurrency=LATENCY_CONCURRENCY, install_signal_handlers=False
                    )
                )
                try:
                    await asyncio.sleep(0.2)
                    for i in range(samples + LATENCY_WARMUP):
                        event.clear()
                        t0 = time.perf_counter()
                        await mark.defer_async(i=i)
                        t1 = time.perf_counter()
                        await asyncio.wait_for(event.wait(), WAIT_S)
                        if i >= LATENCY_WARMUP:
                            results.append((started[i] - t0, t1 - t0))
                        await asyncio.sleep(gap())
                finally:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
            return results

        try:
            return run_async(run())
        finally:
            self.dbs.drop(tag)


class PgQueuer(System):
    name = "pgqueuer"
    backend = "PostgreSQL"

    def __init__(self, dbs: Databases) -> None:
        self.dbs = dbs

    async def _queries(self, schema: str) -> tuple[Any, Any]:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Queries

        conn = await asyncpg.connect(self.dbs.pg.base_url, server_settings={"search_path": schema})
        return conn, Queries(AsyncpgDriver(conn))

    def throughput(self, n: int, concurrency: int, batch: int, tag: str) -> Run:
        from pgqueuer import QueueManager
        from pgqueuer.domain.types import QueueExecutionMode

        counter = InFlight()

        async def run() -> tuple[float, float, int, int]:
            conn, queries = await self._queries(self.dbs.pg.schema(tag))
            try:
                await queries.install()
                qm = QueueManager(queries)

                @qm.entrypoint(TASK)
                async def noop(job: Any) -> None:
                    counter.enter()
                    await asyncio.sleep(0)
                    counter.leave()

                t0 = time.perf_counter()
                for size in chunks(n, batch):
                    await queries.enqueue([TASK] * size, [None] * size, [0] * size)
                t1 = time.perf_counter()
                await qm.run(mode=QueueExecutionMode.drain, batch_size=concurrency)
                t2 = time.perf_counter()
                left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
                done = await conn.fetchval(
                    "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
                )
                return t1 - t0, t2 - t1, int(done), int(left)
            finally:
                await conn.close()

        try:
            enq, proc, done, left = run_async(run())
        finally:
            self.dbs.drop(tag)
        if left:
            raise AssertionError(f"{self.label}: {left} jobs left in the queue")
        check(self.label, done, n, counter.runs)
        return Run(n, enq, proc, counter.max)

    def enqueue_single(self, n: int, tag: str) -> float:
        async def run() -> float:
            conn, queries = await self._queries(self.dbs.pg.schema(tag))
            try:
                await queries.install()
                t0 = time.perf_counter()
                for _ in range(n):
                    await queries.enqueue(TASK, None)
                return time.perf_counter() - t0
            finally:
                await conn.close()

        try:
            return run_async(run())
        finally:
            self.dbs.drop(tag)

    def latency(self, samples: int, tag: str, same_hub: bool = True) -> list[tuple[float, float]]:
        from pgqueuer import QueueManager

        async def run() -> list[tuple[float, float]]:
            schema = self.dbs.pg.schema(tag)
            wconn, wqueries = await self._queries(schema)
            pconn, pqueries = await self._queries(schema)  # the producer's own connection
            started: dict[int, float] = {}
            event = asyncio.Event()
            results: list[tuple[float, float]] = []
            try:
                await wqueries.install()
                qm = QueueManager(wqueries)

                @qm.entrypoint(TASK)
                async def mark(job: Any) -> None:
                    started[int(job.payload)] = time.perf_counter()
                    event.set()

                worker = asyncio.create_task(qm.run(batch_size=LATENCY_CONCURRENCY))
                try:
                    await asyncio.sleep(0.2)
                    for i in range(samples + LATENCY_WARMUP):
                        event.clear()
                        t0 = time.perf_counter()
                        await pqueries.enqueue(TASK, str(i).encode())
                        t1 = time.perf_counter()
                        await asyncio.wait_for(event.wait(), WAIT_S)
                        if i >= LATENCY_WARMUP:
                            results.append((started[i] - t0, t1 - t0))
                        await asyncio.sleep(gap())
                finally:
                    qm.shutdown.set()
                    await asyncio.wait_for(worker, WAIT_S)
            finally:
                await pconn.close()
                await wconn.close()
            return results

        try:
            return run_async(run())
        finally:
            self.dbs.drop(tag)


def peers_available() -> tuple[list[str], list[str]]:
    """(names of the peers that import, notes about those that do not)."""
    found, notes = [], []
    for name, modules in (
        ("procrastinate", ("procrastinate",)),
        ("pgqueuer", ("pgqueuer", "asyncpg")),
    ):
        try:
            for module in modules:
                __import__(module)
            found.append(name)
        except ImportError as exc:
            notes.append(
                f"{name} skipped: {exc.name} is not installed "
                "(pip install -r benchmarks/requirements.txt)"
            )
    return found, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n=500, 1 round, 50 samples")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--n", type=int, help="jobs per throughput measurement [2000; quick: 500]")
    parser.add_argument("--rounds", type=int, help="rounds to take the median of [3; quick: 1]")
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16],
        help="concurrencies to measure, comma-separated [1,4,16]",
    )
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk enqueue [1000]")
    parser.add_argument("--samples", type=int, help="idle pick-up latency samples [200; quick: 50]")
    parser.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="skip further rounds if one as fast as the fastest so far would end past this "
        "many seconds [240]",
    )
    add_postgres_options(parser, "learnhub on SQLite only")
    parser.add_argument("--no-peers", action="store_true", help="skip procrastinate and pgqueuer")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go [a temp dir]")
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    samples = args.samples or (50 if args.quick else 200)
    n_single = min(n, SINGLE_MAX)
    for noisy in ("procrastinate", "pgqueuer", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    notes: list[str] = []
    cells: dict[tuple[str, int], Cell] = {}
    single: dict[str, list[float]] = {}
    latency: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    schedule = Rounds(rounds, args.budget, started, notes)

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-jobs-", dir=args.dir))
        )
        pg = postgres_schemas(args.postgres, "lhbench_jobs", args.no_postgres, notes)
        if pg is not None:
            stack.callback(pg.close)
        dbs = Databases(tmp, pg)

        systems: list[System] = [Learnhub(dbs, "SQLite")]
        if pg is not None:
            systems.append(Learnhub(dbs, "PostgreSQL"))
            if not args.no_peers:
                found, why = peers_available()
                notes.extend(why)
                for note in why:
                    err.print(f"[yellow]{note}[/]")
                if "procrastinate" in found:
                    systems.append(Procrastinate(dbs))
                if "pgqueuer" in found:
                    systems.append(PgQueuer(dbs))

        for r in schedule:
            err.print(f"round {r + 1}/{rounds} (n={n}) ...")
            # Concurrency outermost, systems innermost: noise hits every system alike.
            for workers in args.workers:
                for i, system in enumerate(systems):
                    t0 = time.perf_counter()
                    run = system.throughput(n, workers, args.batch, f"r{r}_w{workers}_s{i}")
                    cells.setdefault((system.label, workers), Cell()).runs.append(run)
                    err.print(
                        f"  {system.label} N={workers}: enqueue {run.enqueue_rate:,.0f}/s, "
                        f"process {run.process_rate:,.0f}/s ({time.perf_counter() - t0:.1f} s)",
                        soft_wrap=True,
                    )
            for i, system in enumerate(systems):
                seconds = system.enqueue_single(n_single, f"r{r}_single_s{i}")
                single.setdefault(system.label, []).append(n_single / seconds)
                err.print(
                    f"  {system.label}: enqueue, one call per job, {n_single / seconds:,.0f}/s",
                    soft_wrap=True,
                )

        err.print(f"idle pick-up latency, {samples} samples each ...")
        for i, system in enumerate(systems):
            variants = [("", True)]
            if isinstance(system, Learnhub):
                wake = "LISTEN/NOTIFY" if system.backend == "PostgreSQL" else "polling"
                variants = [("same Hub", True), (f"two Hubs: {wake}", False)]
            for j, (how, same) in enumerate(variants):
                key = f"{system.label}{f', {how}' if how else ''}"
                t0 = time.perf_counter()
                latency[key] = {
                    "system": system.name,
                    "backend": system.backend,
                    "how": how or "NOTIFY",
                    **latency_summary(system.latency(samples, f"lat_s{i}_{j}", same)),
                }
                err.print(
                    f"  {key}: p50 {latency[key]['p50_ms']:.2f} ms, p99 "
                    f"{latency[key]['p99_ms']:.2f} ms ({time.perf_counter() - t0:.1f} s)",
                    soft_wrap=True,
                )

    throughput = []
    for system in systems:
        for workers in args.workers:
            cell = cells[(system.label, workers)].summary()
            target = TARGETS[system.backend] if system.name == "learnhub" else None
            row = {
                "system": system.name,
                "backend": system.backend,
                "workers": workers,
                **cell,
                "target_jobs_s": target,
                "target_met_total": None if target is None else cell["total_jobs_s"] >= target,
                "target_met_process": None if target is None else cell["process_jobs_s"] >= target,
            }
            throughput.append(row)
    for row in throughput:  # learnhub on PostgreSQL vs. the best peer at the same N
        if row["system"] == "learnhub" and row["backend"] == "PostgreSQL":
            peers = [
                p["total_jobs_s"]
                for p in throughput
                if p["system"] != "learnhub" and p["workers"] == row["workers"]
            ]
            row["vs_best_peer_total"] = row["total_jobs_s"] / max(peers) if peers else None
    for entry in latency.values():
        met = entry["p50_ms"] < LATENCY_TARGET_MS
        entry["target_met"] = (
            met if entry["system"] == "learnhub" and entry["backend"] == "PostgreSQL" else None
        )
    enqueue = [
        {
            "system": system.name,
            "backend": system.backend,
            "one_call_per_job_jobs_s": statistics.median(single[system.label]),
            "bulk_jobs_s": statistics.median(
                [r.enqueue_rate for w in args.workers for r in cells[(system.label, w)].runs]
            ),
        }
        for system in systems
    ]
    meta = {
        "n": n,
        "batch": args.batch,
        "single_n": n_single,
        "rounds": schedule.done,
        "workers": args.workers,
        "latency_samples": samples,
        "latency_concurrency": LATENCY_CONCURRENCY,
        "seconds": time.perf_counter() - started,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "learnhub": learnhub.__version__,
        "learnhub_commit": learnhub_commit(),
        "procrastinate": version("procrastinate"),
        "pgqueuer": version("pgqueuer"),
        "asyncpg": version("asyncpg"),
        "psycopg": version("psycopg"),
        "cpus": os.cpu_count(),
        "targets": {
            "PostgreSQL_jobs_s": TARGETS["PostgreSQL"],
            "SQLite_jobs_s": TARGETS["SQLite"],
            "PostgreSQL_idle_p50_ms": LATENCY_TARGET_MS,
        },
        "notes": notes,
    }
    if args.json:
        print(
            json.dumps(
                {"meta": meta, "throughput": throughput, "enqueue": enqueue, "latency": latency},
                indent=2,
            )
        )
    else:
        print_tables(meta, throughput, enqueue, latency)
    return 0


# --- output -----------------------------------------------------------------------------


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def mark(met: bool | None) -> str:
    return "" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def print_tables(
    meta: dict[str, Any],
    throughput: list[dict[str, Any]],
    enqueue: list[dict[str, Any]],
    latency: dict[str, dict[str, Any]],
) -> None:
    console = Console(width=max(Console().width, 120))
    versions = ", ".join(
        f"{name} {meta[name]}"
        for name in ("learnhub", "procrastinate", "pgqueuer")
        if meta[name] and any(row["system"] == name for row in throughput)
    )
    if meta["learnhub_commit"]:
        versions = versions.replace(
            f"learnhub {meta['learnhub']}",
            f"learnhub {meta['learnhub']} ({meta['learnhub_commit']})",
        )
    table = Table(
        title=f"Job throughput: {meta['n']:,} no-op jobs, enqueue + claim + complete",
        caption=(
            "N = one worker, in the benchmark's process, allowed N jobs at once: learnhub "
            "Worker(concurrency=N, prefetch=N, burst=True), N threads fed by one coordinator "
            "that claims up to N more jobs than it runs, per transaction (like pgqueuer's "
            "batch); procrastinate run_worker_async("
            "concurrency=N, wait=False), pool max(4, N+2); pgqueuer QueueManager.run("
            "mode=drain, batch_size=N) (its hard caps, max_concurrent_tasks and "
            "concurrency_limit, cost it 2-3x). most running: the most task bodies seen "
            "running at once. "
            f"enqueue: {meta['batch']:,} jobs per call (learnhub: enqueue_many()); process: "
            "worker start to drained; total = n / (enqueue s + process s). Median of "
            f"{meta['rounds']} round(s), each system in a fresh database. Target met? on "
            "total (process in brackets); vs peers = learnhub total / best peer total. "
            f"{versions}; Python {meta['python']}, SQLite {meta['sqlite']}, {meta['cpus']} "
            f"CPUs, {meta['seconds']:.0f} s in all" + "".join(f"\n{x}" for x in meta["notes"])
        ),
    )
    table.add_column("system", no_wrap=True)
    table.add_column("N", justify="right")
    table.add_column("enqueue jobs/s", justify="right")
    table.add_column("process jobs/s", justify="right")
    table.add_column("total jobs/s", justify="right")
    table.add_column("most running", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met?", justify="center")
    table.add_column("vs peers", justify="right")
    last = None
    for row in throughput:
        label = f"{row['system']} ({row['backend']})"
        if last is not None and label != last:
            table.add_section()
        last = label
        target = row["target_jobs_s"]
        met = ""
        if target is not None:
            met = f"{mark(row['target_met_total'])} ({mark(row['target_met_process'])})"
        vs = row.get("vs_best_peer_total")
        table.add_row(
            label,
            str(row["workers"]),
            rate(row["enqueue_jobs_s"]),
            rate(row["process_jobs_s"]),
            f"[bold]{rate(row['total_jobs_s'])}[/]",
            str(row["max_in_flight"]),
            "" if target is None else f">= {target:,.0f}",
            met,
            "" if vs is None else f"{vs:.2f}x",
        )
    console.print(table)

    table = Table(
        title="Enqueue only",
        caption=(
            f"one call per job: {meta['single_n']:,} jobs, learnhub hub.jobs.enqueue() (one "
            "transaction each), procrastinate defer_async(), pgqueuer Queries.enqueue(one job); "
            f"bulk: the enqueue phase above, {meta['batch']:,} jobs per call (learnhub "
            "enqueue_many(), procrastinate batch_defer_async(), pgqueuer enqueue(lists)), median "
            "over every N and round"
        ),
    )
    table.add_column("system", no_wrap=True)
    table.add_column("one call per job, jobs/s", justify="right")
    table.add_column("bulk, jobs/s", justify="right")
    for row in enqueue:
        table.add_row(
            f"{row['system']} ({row['backend']})",
            rate(row["one_call_per_job_jobs_s"]),
            rate(row["bulk_jobs_s"]),
        )
    console.print(table)

    table = Table(
        title="Idle pick-up latency: enqueue of one job to its start on an idle worker",
        caption=(
            f"{meta['latency_samples']} samples each (after {LATENCY_WARMUP} warm-up), worker "
            f"concurrency {meta['latency_concurrency']} (pgqueuer batch_size "
            f"{meta['latency_concurrency']}) in the benchmark's process; clock from just "
            "before the enqueue call to the task's first line (enqueue call: until the call "
            "returned); one job at a time, 10-70 ms apart. learnhub same Hub: the producer "
            "wakes the worker in-process; two Hubs: as from another process (SQLite: 50 ms "
            "poll). Peers always go through LISTEN/NOTIFY. Target: p50 < "
            f"{LATENCY_TARGET_MS:g} ms on PostgreSQL."
        ),
    )
    table.add_column("system", no_wrap=True)
    table.add_column("p50 ms", justify="right")
    table.add_column("p90 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("max ms", justify="right")
    table.add_column("enqueue call p50 ms", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met?", justify="center")
    for key, row in latency.items():
        table.add_row(
            key,
            f"{row['p50_ms']:.2f}",
            f"{row['p90_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.2f}",
            f"{row['enqueue_call_p50_ms']:.2f}",
            "" if row["target_met"] is None else f"< {LATENCY_TARGET_MS:g}",
            mark(row["target_met"]),
        )
    console.print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; temp files and PostgreSQL schemas removed[/]")
        sys.exit(130)
