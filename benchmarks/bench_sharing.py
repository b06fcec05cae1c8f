#!/usr/bin/env python3
"""Sharing: cold load of learned examples from a local folder and from S3 (a real moto_server
on loopback), and one incremental poll with 100 changed files, side by side with a plain
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

The sizes: --sizes (10,000 and 100,000; quick: 2,000) on the local folder; on S3 the sizes
up to --s3-max (10,000; moto is a Python server sharing the machine's cores, and 100,000
objects take about half an hour to write and read there).

    cd /work/main && .venv/bin/python benchmarks/bench_sharing.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_model, learnhub_commit, terminate_as_interrupt, version
from rich.console import Console
from rich.table import Table

import learnhub
from learnhub.config import Config, SharingConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sharing_servers import MotoServer  # noqa: E402  (the tests' real-server helper)

FOLDERS = 10
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


class S3:
    label = "S3 (moto_server)"

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        server.make_bucket(BUCKET)

    def url(self, n: int) -> str:
        return f"s3://{BUCKET}/n{n}/*/*.json"

    def write(self, n: int, items: dict[int, bytes]) -> None:
        fs = self.baseline_fs()
        paths = {f"{BUCKET}/n{n}/{name(i)}": data for i, data in items.items()}
        keys = list(paths)
        for k in range(0, len(keys), 2000):
            fs.pipe({p: paths[p] for p in keys[k : k + 2000]}, batch_size=32)

    def baseline_fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.server.options())

    def options(self) -> dict[str, Any]:
        return {"s3://": self.server.options()}

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


def learnhub_run(store: Any, n: int, tmp: Path, changed: int) -> dict[str, Any]:
    config = Config(
        sharing=SharingConfig(
            sources=[store.url(n)], model="hashing", options=store.options(), timeout=120
        )
    )
    db = tmp / f"{store.label.split()[0]}-{n}.db"
    with learnhub.open(f"sqlite:///{db}", config=config) as hub:
        start = time.perf_counter()
        report = hub.sharing.sync()
        cold = time.perf_counter() - start
        assert report.loaded == n and not report.errors, report
        # change some files: a newer version of each
        step = max(1, n // changed)
        picked = list(range(0, n, step))[:changed]
        store.write(n, {i: doc(i, updated=2) for i in picked})
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 examples only (~1 min)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sizes", help="comma-separated example counts [10000,100000]")
    parser.add_argument("--s3-max", type=int, default=10_000, help="largest size on S3 [10000]")
    parser.add_argument("--changed", type=int, default=100, help="files changed for the poll")
    parser.add_argument("--no-s3", action="store_true", help="the local folder only")
    parser.add_argument("--dir", type=Path, help="where files and databases go [a temp dir]")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or ([2000] if args.quick else [10_000, 100_000])
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    started = time.perf_counter()
    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-share-",
                                                                    dir=args.dir)))  # fmt: skip
        stores: list[Any] = [Local(tmp / "folder")]
        if args.no_s3:
            notes.append("S3 skipped (--no-s3)")
        else:
            server = MotoServer().start()
            stack.callback(server.stop)
            stores.append(S3(server))
        for store in stores:
            for n in sizes:
                if isinstance(store, S3) and n > args.s3_max:
                    notes.append(f"S3 at {n:,} skipped (--s3-max {args.s3_max:,})")
                    continue
                err.print(f"{store.label}: writing {n:,} example files ...")
                store.write(n, {i: doc(i) for i in range(n)})
                err.print(f"{store.label}: baseline glob + cat loop ({n:,}) ...")
                base = baseline(store, n)
                err.print(f"{store.label}: learnhub list + concurrent reads ({n:,}) ...")
                reads = read_only(store, n)
                err.print(f"{store.label}: learnhub cold load + poll ({n:,}) ...")
                lh = learnhub_run(store, n, tmp, args.changed)
                results.append(
                    {
                        "location": store.label,
                        "examples": n,
                        "baseline_s": base,
                        "baseline_files_s": n / base,
                        "reads_s": reads,
                        "reads_files_s": n / reads,
                        "reads_ratio": base / reads,
                        **lh,
                        "ratio": base / lh["cold_s"],
                    }
                )
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
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results, "targets": targets, "notes": notes}))
        return 0
    out = Console()
    table = Table(title="sharing: cold load and incremental poll (SQLite store, hashing embedder)")
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
            f"{r['reads_ratio']:.1f}x",
            f"{r['examples_s']:,.0f}",
            f"{r['ratio']:.1f}x",
            str(r["poll_changed"]),
            str(r["poll_files_read"]),
            "-" if r["poll_server_gets"] is None else str(r["poll_server_gets"]),
            f"{r['poll_s']:.2f}",
        )
    out.print(table)
    for note in notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"targets: {targets}", highlight=False)
    out.print(" ".join(f"{k}={v}" for k, v in meta.items()), highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
