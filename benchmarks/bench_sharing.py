#!/usr/bin/env python3
"""Sharing: cold load of learned examples from a local folder and from S3 (a real moto_server
on loopback, and the same server behind a proxy that adds a round-trip latency like a real
object store's), and one incremental poll with 100 changed files, side by side with a plain
fsspec loop in the same run.

Data: N example files (``<id>.example.json``, ~200 bytes: input, output, author, times; no
embedding, so the loader embeds each input with the hashing embedder) in 10 folders, written
before timing (local: plain writes; S3: concurrent PUTs).

    reads       learnhub's Location.list() + read_many() alone: the same work as the baseline
                (list, then every file's bytes), with concurrent reads
    cold load   learnhub: a fresh hub (SQLite) with the glob as its one source, one
                ``hub.sharing.sync()``: list, read concurrently, parse, store, embed
                baseline: ``fs.glob(pattern)`` then ``fs.cat(path)`` per file, in a loop
                (read only: no parsing, no store, no embedding)
    poll        after the cold load, --changed files (100) rewritten, then one sync:
                the files it read (learnhub's own count) and, on S3, the GET requests the
                server logged for example files; the seconds it took

Targets (issue 7): cold load >= 5x the baseline through concurrent reads; an incremental
poll's reads proportional to the changes (100 GETs for 100 changed files), not the total.

Simulated latency: on loopback moto_server answers in well under a millisecond but is a
Python server that handles a few hundred requests a second on a 2-core machine, so there
concurrency has little to hide. Real object stores answer each request in 10-50 ms, which
is what concurrent reads are for: the "S3 + N ms RTT" rows put a loopback TCP proxy in front
of the same moto_server that delays every forwarded chunk by half of --latency-ms (20 ms)
each way (a round trip of 20 ms per request, bandwidth unchanged); the baseline and learnhub
both go through it, in the same run, at --latency-sizes (2,000) examples.

The sizes: --sizes (10,000 and 100,000; quick: 2,000) on the local folder; on S3 the sizes
up to --s3-max (10,000; moto is a Python server sharing the machine's cores, and 100,000
objects take about half an hour to write and read there). Each size is measured --repeat
times (3), baseline, reads and cold load interleaved; the table shows medians.

    cd /work/main && .venv/bin/python benchmarks/bench_sharing.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import cpu_model, learnhub_commit, terminate_as_interrupt, version
from rich.console import Console
from rich.table import Table

import learnhub
from learnhub.config import Config, SharingConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sharing_servers import MotoServer, free_port  # noqa: E402  (the tests' server helper)

FOLDERS = 10
_versions = itertools.count(2)
RATIO_TARGET = 5.0
BUCKET = "bench-sharing"
err = Console(stderr=True)


def doc(i: int, updated: int = 1) -> bytes:
    return json.dumps(
        {
            "id": f"e{i:07d}",
            "input": f"how do I fix failure {i} in service {i % 97} after the deploy",
            "output": f"restart worker {i % 13} and clear the cache",
            "author": f"user{i % FOLDERS}",
            "created_ns": 1_700_000_000_000_000_000 + i,
            "updated_ns": 1_700_000_000_000_000_000 + i + updated,
        }
    ).encode()


def name(i: int) -> str:
    return f"u{i % FOLDERS}/e{i:07d}.example.json"


class Local:
    label = "local folder"

    def __init__(self, root: Path) -> None:
        self.root = root

    def url(self, n: int) -> str:
        return f"{self.root}/n{n}/*/*.json"

    def write(self, n: int, items: dict[int, bytes]) -> None:
        for i, data in items.items():
            path = self.root / f"n{n}" / name(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def baseline_fs(self) -> Any:
        import fsspec

        return fsspec.filesystem("file")

    def options(self) -> dict[str, Any]:
        return {}

    def gets(self) -> int | None:
        return None


class LatencyProxy:
    """A loopback TCP proxy that delays every chunk it forwards by ``rtt / 2`` each way, in
    order, without limiting bandwidth: a request-response costs one extra round trip of
    ``rtt``, like an object store in another building. Runs its own event loop thread."""

    def __init__(self, target_port: int, rtt_s: float) -> None:
        self.target_port = target_port
        self.delay = rtt_s / 2
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the latency proxy did not start")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=1024)
        )
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward ``reader`` to ``writer``, each chunk ``delay`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await sender
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def stop(self) -> None:
        def close() -> None:
            if self._server is not None:
                self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)


class S3:
    label = "S3 (moto_server)"

    def __init__(self, server: MotoServer, proxy: LatencyProxy | None = None) -> None:
        self.server = server
        self.proxy = proxy
        if proxy is not None:
            self.label = f"S3 (moto_server) + {proxy.delay * 2000:g} ms simulated RTT"
        with contextlib.suppress(FileExistsError):
            server.make_bucket(BUCKET)

    def server_options(self) -> dict[str, Any]:
        opts = self.server.options()
        if self.proxy is not None:
            opts["endpoint_url"] = self.proxy.endpoint
        return opts

    def url(self, n: int) -> str:
        return f"s3://{BUCKET}/n{n}/*/*.json"

    def write(self, n: int, items: dict[int, bytes]) -> None:
        import s3fs

        # straight to the server: populating is not what is measured
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.server.options())
        paths = {f"{BUCKET}/n{n}/{name(i)}": data for i, data in items.items()}
        keys = list(paths)
        for k in range(0, len(keys), 2000):
            fs.pipe({p: paths[p] for p in keys[k : k + 2000]}, batch_size=32)

    def baseline_fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.server_options())

    def options(self) -> dict[str, Any]:
        return {"s3://": self.server_options()}

    def gets(self) -> int:
        """GET requests for example files in the server's request log so far."""
        log = self.server.log
        log.flush()
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.seek(0, 2)
        return len(re.findall(r'"GET /' + BUCKET + r"/\S+\.example\.json", text))


def baseline(store: Any, n: int) -> float:
    fs = store.baseline_fs()
    start = time.perf_counter()
    total = 0
    for path in fs.glob(store.url(n).split("://", 1)[-1]):
        total += len(fs.cat(path))
    seconds = time.perf_counter() - start
    assert total > 0
    return seconds


def read_only(store: Any, n: int) -> float:
    """learnhub's list + concurrent reads alone (what the baseline does), seconds."""
    from learnhub.sharing import Location

    loc = Location(store.url(n), store.options(), timeout=120)
    start = time.perf_counter()
    got = loc.read_many(loc.list())
    seconds = time.perf_counter() - start
    assert len(got) == n and all(isinstance(v, bytes) for v in got.values())
    return seconds


def learnhub_run(store: Any, n: int, tmp: Path, changed: int, rep: int) -> dict[str, Any]:
    config = Config(
        sharing=SharingConfig(
            sources=[store.url(n)], model="hashing", options=store.options(), timeout=120
        )
    )
    slug = re.sub(r"\W+", "-", store.label)
    db = tmp / f"{slug}-{n}-{rep}.db"
    with learnhub.open(f"sqlite:///{db}", config=config) as hub:
        start = time.perf_counter()
        report = hub.sharing.sync()
        cold = time.perf_counter() - start
        assert report.loaded == n and not report.errors, report
        # change some files: a newer version of each
        step = max(1, n // changed)
        picked = list(range(0, n, step))[:changed]
        version = next(_versions)  # new content each time (same content: same etag)
        store.write(n, {i: doc(i, updated=version) for i in picked})
        loc = hub.sharing.sources[0]
        gets_before, server_before = loc.gets, store.gets()
        start = time.perf_counter()
        report = hub.sharing.sync()
        poll = time.perf_counter() - start
        assert report.loaded == len(picked), report
        server_after = store.gets()
        return {
            "cold_s": cold,
            "examples_s": n / cold,
            "poll_s": poll,
            "poll_changed": len(picked),
            "poll_files_read": loc.gets - gets_before,
            "poll_server_gets": None if server_after is None else server_after - server_before,
        }


def measure(store: Any, n: int, tmp: Path, changed: int, repeat: int) -> dict[str, Any]:
    """Baseline, reads and cold load (+ poll) ``repeat`` times, interleaved; medians."""
    runs: list[dict[str, Any]] = []
    for rep in range(repeat):
        tag = f"{store.label} {n:,} [{rep + 1}/{repeat}]"
        err.print(f"{tag}: baseline glob + cat loop ...")
        base = baseline(store, n)
        err.print(f"{tag}: learnhub list + concurrent reads ...")
        reads = read_only(store, n)
        err.print(f"{tag}: learnhub cold load + poll ...")
        lh = learnhub_run(store, n, tmp, changed, rep)
        runs.append({"baseline_s": base, "reads_s": reads, **lh})
        err.print(
            f"{tag}: baseline {n / base:,.0f} files/s, reads {n / reads:,.0f} files/s, "
            f"cold load {lh['examples_s']:,.0f} ex/s"
        )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    base, reads, cold = med("baseline_s"), med("reads_s"), med("cold_s")
    last = runs[-1]
    return {
        "location": store.label,
        "examples": n,
        "repeat": repeat,
        "baseline_s": base,
        "baseline_files_s": n / base,
        "reads_s": reads,
        "reads_files_s": n / reads,
        "reads_ratio": base / reads,
        "cold_s": cold,
        "examples_s": n / cold,
        "ratio": base / cold,
        # ratios within each repetition (baseline and learnhub measured back to back)
        "reads_ratios": [r["baseline_s"] / r["reads_s"] for r in runs],
        "ratios": [r["baseline_s"] / r["cold_s"] for r in runs],
        "poll_s": med("poll_s"),
        "poll_changed": last["poll_changed"],
        "poll_files_read": max(r["poll_files_read"] for r in runs),
        "poll_server_gets": last["poll_server_gets"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 examples only (~1 min)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sizes", help="comma-separated example counts [10000,100000]")
    parser.add_argument("--s3-max", type=int, default=10_000, help="largest size on S3 [10000]")
    parser.add_argument("--changed", type=int, default=100, help="files changed for the poll")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each size [3]")
    parser.add_argument("--no-s3", action="store_true", help="no S3 (plain or with latency)")
    parser.add_argument("--no-local", action="store_true", help="no local folder")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="simulated S3 round trip [20]; 0: none"
    )
    parser.add_argument(
        "--latency-sizes", default="2000", help="sizes through the latency proxy [2000]"
    )
    parser.add_argument("--dir", type=Path, help="where files and databases go [a temp dir]")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or ([2000] if args.quick else [10_000, 100_000])
    latency_sizes = [int(s) for s in args.latency_sizes.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    started = time.perf_counter()
    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-share-",
                                                                    dir=args.dir)))  # fmt: skip
        plan: list[tuple[Any, list[int]]] = []
        if not args.no_local:
            plan.append((Local(tmp / "folder"), sizes))
        if args.no_s3:
            notes.append("S3 skipped (--no-s3)")
        else:
            server = MotoServer().start()
            stack.callback(server.stop)
            s3_sizes = [n for n in sizes if n <= args.s3_max]
            notes += [
                f"S3 at {n:,} skipped (--s3-max {args.s3_max:,})" for n in sizes if n > args.s3_max
            ]
            plan.append((S3(server), s3_sizes))
            if args.latency_ms > 0 and latency_sizes:
                proxy = LatencyProxy(server.port, args.latency_ms / 1000)
                stack.callback(proxy.stop)
                plan.append((S3(server, proxy), latency_sizes))
        written: set[tuple[str, int]] = set()
        for store, store_sizes in plan:
            for n in store_sizes:
                kind = type(store).__name__
                if (kind, n) not in written:  # the proxied S3 reads the plain S3's files
                    err.print(f"{store.label}: writing {n:,} example files ...")
                    store.write(n, {i: doc(i) for i in range(n)})
                    written.add((kind, n))
                results.append(measure(store, n, tmp, args.changed, args.repeat))
    targets = {
        "cold_ratio": {
            f"{r['location']} {r['examples']}": r["ratio"] >= RATIO_TARGET for r in results
        },  # fmt: skip
        "poll_reads_only_changes": all(
            r["poll_files_read"] == r["poll_changed"]
            and r["poll_server_gets"] in (None, r["poll_changed"])
            for r in results
        ),
    }
    meta = {
        "learnhub": learnhub.__version__,
        "commit": learnhub_commit(),
        "python": platform.python_version(),
        "fsspec": version("fsspec"),
        "s3fs": version("s3fs"),
        "moto": version("moto"),
        "cpu": cpu_model(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results, "targets": targets, "notes": notes}))
        return 0
    out = Console()
    table = Table(
        title="sharing: cold load and incremental poll (SQLite store, hashing embedder; "
        f"medians of {args.repeat})"
    )
    for col in ("location", "examples", "baseline files/s", "reads files/s", "ratio",
                "cold load ex/s", "ratio", "poll: changed", "read", "server GETs",
                "poll s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "location" else "right")
    for r in results:
        table.add_row(
            r["location"],
            f"{r['examples']:,}",
            f"{r['baseline_files_s']:,.0f}",
            f"{r['reads_files_s']:,.0f}",
            f"{r['reads_ratio']:.2f}x",
            f"{r['examples_s']:,.0f}",
            f"{r['ratio']:.2f}x",
            str(r["poll_changed"]),
            str(r["poll_files_read"]),
            "-" if r["poll_server_gets"] is None else str(r["poll_server_gets"]),
            f"{r['poll_s']:.2f}",
        )
    out.print(table)
    if any("simulated" in r["location"] for r in results):
        out.print(
            f"simulated: a loopback proxy adds {args.latency_ms:g} ms to every request's round "
            "trip (not a real network); the other rows are plain loopback",
            highlight=False,
        )
    for note in notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"targets: {targets}", highlight=False)
    out.print(" ".join(f"{k}={v}" for k, v in meta.items()), highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
