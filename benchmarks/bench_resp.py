#!/usr/bin/env python3
"""Round trips per second over a UNIX socket with redis-py: learnhub vs. a real redis-server.

Starts ``learnhub serve`` (SQLite store in a temp dir) and, if installed, ``redis-server``
(no persistence) as subprocesses, each on its own UNIX socket, and times the same redis-py
client against both in the same run, interleaving the two round by round so machine noise
hits both alike:

    PING                      one command per round trip
    LOOKUP / GET 1 KB         learnhub: LOOKUP of a key holding one 1 KB file;
                              redis: GET of a 1 KB value (the nearest Redis equivalent)
    PING, pipelined           batches of --batch commands per round trip (ops = commands)
    LOOKUP / GET, pipelined   same, for LOOKUP vs. GET

Each cell is the median over --rounds rounds; a round runs N requests, N calibrated per
server and operation so a round takes about --round-seconds.

    cd /work/main && .venv/bin/python benchmarks/bench_resp.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from _common import Server, start_server, stop_server, terminate_as_interrupt
from rich.console import Console
from rich.table import Table

try:
    from redis.utils import HIREDIS_AVAILABLE
except ImportError:  # pragma: no cover - very old redis-py
    HIREDIS_AVAILABLE = False

PAYLOAD_SIZE = 1024
KEY = "bench/lookup"
DEFAULT_REDIS = "/usr/bin/redis-server"
START_TIMEOUT_S = 30.0

err = Console(stderr=True)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Op:
    """One operation on one server: ``run(n)`` does n batches of ``per_call`` commands."""

    run: Callable[[int], None]
    per_call: int = 1
    calls: int = 0  # batches per round, set by calibrate()
    rates: list[float] = field(default_factory=list)

    def calibrate(self, seconds: float) -> None:
        # Warm up (connections, caches, the server's first-query costs), then size a round.
        self.run(max(1, 20 // self.per_call))
        n, elapsed = 1, 0.0
        while elapsed < min(0.2, seconds / 2):
            n *= 2
            t0 = time.perf_counter()
            self.run(n)
            elapsed = time.perf_counter() - t0
        self.calls = max(1, round(n * seconds / elapsed))

    def round(self) -> None:
        t0 = time.perf_counter()
        self.run(self.calls)
        self.rates.append(self.calls * self.per_call / (time.perf_counter() - t0))

    def summary(self) -> dict[str, Any]:
        return {
            "median_ops_s": statistics.median(self.rates),
            "min_ops_s": min(self.rates),
            "max_ops_s": max(self.rates),
            "rounds_ops_s": self.rates,
            "requests_per_round": self.calls * self.per_call,
        }


def ops_for(
    client: redis.Redis, lookup: Callable[[], Any], lookup_pipe: Callable[[Any], Any], batch: int
) -> dict[str, Op]:
    def ping(n: int) -> None:
        for _ in range(n):
            client.ping()

    def get(n: int) -> None:
        for _ in range(n):
            lookup()

    def pipelined(queue: Callable[[Any], Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                pipe = client.pipeline(transaction=False)
                for _ in range(batch):
                    queue(pipe)
                pipe.execute()

        return run

    return {
        "PING": Op(ping),
        "LOOKUP": Op(get),
        f"PING pipelined x{batch}": Op(pipelined(lambda p: p.ping()), per_call=batch),
        f"LOOKUP pipelined x{batch}": Op(pipelined(lookup_pipe), per_call=batch),
    }


def label(op: str) -> str:
    return op.replace("LOOKUP", "LOOKUP (redis: GET 1 KB)", 1)


# --- main -------------------------------------------------------------------------------


def connection_facts(client: redis.Redis) -> dict[str, Any]:
    conn = client.connection_pool.get_connection()
    try:
        return {"protocol": conn.protocol or 2, "parser": type(conn._parser).__name__}
    finally:
        client.connection_pool.release(conn)


def setup_learnhub(tmp: Path, resp: int | None) -> tuple[Server, redis.Redis, dict[str, Any]]:
    import learnhub

    sock = tmp / "learnhub.sock"
    argv = [
        sys.executable,
        "-m",
        "learnhub",
        "serve",
        "--db",
        f"sqlite:///{tmp}/hub.db",
        "--socket",
        str(sock),
    ]
    proc = start_server("learnhub", argv, sock, tmp, START_TIMEOUT_S)
    with learnhub.connect(socket=sock) as lh:
        lh.store(KEY, {"data.bin": os.urandom(PAYLOAD_SIZE)}, 0.5, {"lr": "0.01", "arch": "mlp"})
    client = redis.Redis(unix_socket_path=str(sock), protocol=resp)
    reply = client.execute_command("LOOKUP", KEY)
    if not isinstance(reply, dict):  # RESP2: a flat key, value, ... array
        reply = dict(zip(reply[::2], reply[1::2], strict=True))
    assert len(str(reply[b"files"])) > PAYLOAD_SIZE, f"LOOKUP returned {reply!r:.200}"
    info = client.info("server")
    return proc, client, {"version": info.get("learnhub_version"), **connection_facts(client)}


def setup_redis(
    tmp: Path, binary: str, resp: int | None
) -> tuple[Server, redis.Redis, dict[str, Any]]:
    rdir = tmp / "redis"
    rdir.mkdir()
    sock = rdir / "redis.sock"
    argv = [
        binary,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(rdir),
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    proc = start_server("redis-server", argv, sock, rdir, START_TIMEOUT_S)
    client = redis.Redis(unix_socket_path=str(sock), protocol=resp)
    client.set(KEY, os.urandom(PAYLOAD_SIZE))
    assert len(client.get(KEY)) == PAYLOAD_SIZE
    info = client.info("server")
    return proc, client, {"version": info.get("redis_version"), **connection_facts(client)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds (~15 s in all)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, help="rounds per measurement [5; quick: 3]")
    parser.add_argument(
        "--round-seconds", type=float, help="target duration of one round [1.0; quick: 0.25]"
    )
    parser.add_argument("--batch", type=int, default=100, help="pipeline batch size [100]")
    parser.add_argument(
        "--resp", type=int, choices=(2, 3), help="protocol for both servers [redis-py's default]"
    )
    parser.add_argument(
        "--redis-server",
        default=shutil.which("redis-server") or DEFAULT_REDIS,
        help=f"redis-server binary for the baseline [{DEFAULT_REDIS}]",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    round_s = args.round_seconds or (0.25 if args.quick else 1.0)

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-resp-")))
        procs: list[Server] = []

        @stack.callback
        def _stop_all() -> None:
            for proc in reversed(procs):
                stop_server(proc)

        servers: dict[str, dict[str, Op]] = {}
        facts: dict[str, Any] = {}
        err.print("starting learnhub serve ...")
        proc, lh, facts["learnhub"] = setup_learnhub(tmp, args.resp)
        procs.append(proc)
        stack.callback(lh.close)
        servers["learnhub"] = ops_for(
            lh,
            lambda: lh.execute_command("LOOKUP", KEY),
            lambda p: p.execute_command("LOOKUP", KEY),
            args.batch,
        )
        if os.access(args.redis_server, os.X_OK):
            err.print(f"starting {args.redis_server} ...")
            proc, rd, facts["redis"] = setup_redis(tmp, args.redis_server, args.resp)
            procs.append(proc)
            stack.callback(rd.close)
            servers["redis"] = ops_for(rd, lambda: rd.get(KEY), lambda p: p.get(KEY), args.batch)
        else:
            err.print(
                f"[yellow]redis-server not found at {args.redis_server}: the Redis "
                "baseline is missing; measuring learnhub alone[/]"
            )
            facts["redis"] = None

        names = list(servers["learnhub"])
        for ops in servers.values():
            for op in ops.values():
                op.calibrate(round_s)
        for r in range(rounds):
            err.print(f"round {r + 1}/{rounds}")
            for name in names:
                for server in servers:  # interleaved: noise hits both servers alike
                    servers[server][name].round()

        # Stop the servers now to learn how they exit (learnhub should exit 0 on SIGTERM).
        _stop_all()
        for proc in procs:
            facts["learnhub" if proc.name == "learnhub" else "redis"]["exit_code"] = proc.exit_code
            if proc.exit_code != 0:
                err.print(
                    f"[yellow]{proc.name} exited with code {proc.exit_code} on SIGTERM:[/]"
                    f"\n{proc.tail()}"
                )
        procs.clear()

        results = []
        for name in names:
            row: dict[str, Any] = {"operation": label(name)}
            for server in ("learnhub", "redis"):
                row[server] = servers[server][name].summary() if server in servers else None
            row["ratio"] = (
                row["learnhub"]["median_ops_s"] / row["redis"]["median_ops_s"]
                if row["redis"]
                else None
            )
            results.append(row)
        meta = {
            "rounds": rounds,
            "round_seconds": round_s,
            "batch": args.batch,
            "payload_bytes": PAYLOAD_SIZE,
            "python": platform.python_version(),
            "redis_py": redis.__version__,
            "hiredis": HIREDIS_AVAILABLE,
            "cpus": os.cpu_count(),
            "servers": facts,
        }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
    else:
        print_table(meta, results)
    return 0


def print_table(meta: dict[str, Any], results: list[dict[str, Any]]) -> None:
    servers = meta["servers"]
    lh, rd = servers["learnhub"], servers["redis"]
    table = Table(
        title="RESP round trips over a UNIX socket (redis-py)",
        caption=(
            f"median of {meta['rounds']} rounds of ~{meta['round_seconds']:g} s each; "
            f"ratio = learnhub / redis. learnhub {lh['version']} (SQLite store), "
            + (f"redis-server {rd['version']}" if rd else "redis-server: baseline missing")
            + f"; RESP{lh['protocol']}, parser {lh['parser']}, Python {meta['python']}, "
            f"redis-py {meta['redis_py']}, {meta['cpus']} CPUs"
        ),
    )
    table.add_column("operation")
    table.add_column("learnhub ops/s (median)", justify="right")
    table.add_column("redis ops/s (median)", justify="right")
    table.add_column("ratio", justify="right")
    for row in results:
        table.add_row(
            row["operation"],
            f"{row['learnhub']['median_ops_s']:,.0f}",
            f"{row['redis']['median_ops_s']:,.0f}" if row["redis"] else "n/a",
            f"{row['ratio']:.2f}" if row["ratio"] is not None else "n/a",
        )
    Console(width=max(Console().width, 120)).print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; servers stopped and temp files removed[/]")
        sys.exit(130)
