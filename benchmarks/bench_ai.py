#!/usr/bin/env python3
"""AI serving over the RESP server: DAGs vs. separate commands, parallel ensembles,
autobatching, and the server's per-command overhead.

Starts ``learnhub serve`` (SQLite store in a temp dir, no job workers) as a subprocess and
drives it with redis-py over its UNIX socket. Four parts, each measured against its
baseline in the same run, interleaved round by round so machine noise hits both alike:

    (a) pipeline  TENSORSET, MODELEXECUTE m1, MODELEXECUTE m2, TENSORGET as one
                  AI.DAGEXECUTE with local intermediates vs. the same 4 steps as 4 commands
                  with persisted intermediates (also shown: those 4 commands pipelined)
    (b) ensemble  4 heavy models on one batch of 16 rows: one AI.DAGEXECUTE whose 4
                  MODELEXECUTEs are independent branches, joined by a TENSORGET of each,
                  vs. 4 one-model AI.DAGEXECUTEs (LOAD, local output, TENSORGET) one after
                  the other
    (c) batching  AI.MODELEXECUTE of a heavy model from --clients (16) concurrent clients,
                  threads with a connection each: the model stored with BATCHSIZE 16 vs.
                  without; backend calls show how many runs were merged
    (d) overhead  AI.MODELEXECUTE of a tiny model (inputs already in the keyspace), and a
                  one-model AI.DAGEXECUTE (LOAD, local output, TENSORGET): latency minus the
                  model's own run time (AI.INFO duration / calls over the same runs);
                  baseline: an onnxruntime session with the server's options, in this process

Targets (issue 4): the DAG >= 2x faster than separate commands; the ensemble >= 1.7x faster
with parallel branches (2 cores); server overhead < 100 us over the model's run (median).

Each round runs every variant for --round-seconds; p50/p99 are over all rounds' requests,
ops/s is the median of the rounds' rates. Each row also says how much of the machine's CPU
time other processes took while it ran (Linux /proc), since (b) needs both cores.

    cd /work/main && .venv/bin/python benchmarks/bench_ai.py [--quick] [--json] [--part overhead]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import redis
from _common import (
    Server,
    cpu_model,
    learnhub_commit,
    start_server,
    stop_server,
    terminate_as_interrupt,
    version,
)
from rich.console import Console
from rich.table import Table

import learnhub

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
WARMUP_S = 0.2  # per variant, before the first round: connections, model caches, code paths

PIPELINE_TARGET = 2.0  # (a) DAG / separate commands, ops/s
ENSEMBLE_TARGET = 1.7  # (b) parallel / sequential, ops/s
OVERHEAD_TARGET_US = 100.0  # (d) median latency - model run time
PARTS = ("pipeline", "ensemble", "batching", "overhead")

TINY_DIM = 64  # (a), (d): Gemm models on a [1, 64] input
HEAVY_DIM = 256  # (b), (c): tests/ai_models.onnx_heavy_model() on [rows, 256] inputs
ENSEMBLE = 4
ENSEMBLE_ROWS = 16  # (b) scores a batch, so each branch is a few ms of work to spread

# The server: `learnhub serve` as the CLI runs it, plus one read-only command that says how
# many backend calls a batched model's Batcher made (AI.INFO counts requests, as RedisAI's
# does, so it cannot show merging).
SERVER_MAIN = """
import runpy, sys
from learnhub.server.commands import command

@command("BENCH.BACKENDCALLS", 2, blocking=True)
def backend_calls(ctx, args):
    loaded = ctx.hub.ai.keyspace.model(args[0].decode())
    return -1 if loaded.batcher is None else loaded.batcher.calls

sys.argv = ["learnhub", *sys.argv[1:]]
runpy.run_module("learnhub", run_name="__main__", alter_sys=True)
"""

err = Console(stderr=True)


# --- the server -------------------------------------------------------------------------


def start_hub(tmp: Path) -> tuple[Server, Path]:
    """``learnhub serve`` on a new SQLite store; returns once its socket accepts connections."""
    sock = tmp / "hub.sock"
    argv = [sys.executable, "-c", SERVER_MAIN, "serve", "--db", f"sqlite:///{tmp}/hub.db"]
    argv += ["--socket", str(sock), "--workers", "0"]
    return start_server("learnhub serve", argv, sock, tmp, START_TIMEOUT_S), sock


# --- models -----------------------------------------------------------------------------


def model_builders() -> ModuleType:
    """tests/ai_models.py, the builders the ai tests use (the repository root is not on
    sys.path when this script runs)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.ai_models")


def session(blob: bytes) -> Any:
    """An onnxruntime session with the options learnhub's ONNX backend uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])


def run_local(blob: bytes, x: np.ndarray) -> np.ndarray:
    return session(blob).run(None, {"x": x})[0]


def blob_array(blob: bytes, like: np.ndarray) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).reshape(like.shape)


def expect(what: str, got: Any, want: np.ndarray) -> None:
    """Fail the run unless the server's TENSORGET BLOB reply matches ``want``."""
    if not isinstance(got, bytes) or len(got) != want.nbytes:
        raise AssertionError(f"{what}: expected a {want.nbytes}-byte blob, got {got!r:.200}")
    if not np.allclose(blob_array(got, want), want, rtol=1e-4, atol=1e-5):
        raise AssertionError(f"{what}: the server's result differs from onnxruntime's")


def dag_ok(reply: Any, ops: int) -> None:
    if not isinstance(reply, list) or len(reply) != ops:
        raise AssertionError(f"expected a {ops}-entry DAG reply, got {reply!r:.300}")
    for entry in reply:
        if isinstance(entry, Exception):
            raise AssertionError(f"a DAG op failed: {entry}")


# --- measuring --------------------------------------------------------------------------


def run_for(call: Callable[[], Any], seconds: float) -> tuple[list[float], float]:
    """Call back to back for ``seconds``; each call's latency, and the time they took."""
    clock = time.perf_counter
    latencies = []
    start = t0 = clock()
    end = start + seconds
    while t0 < end:
        call()
        t1 = clock()
        latencies.append(t1 - t0)
        t0 = t1
    return latencies, t0 - start


def run_concurrently(calls: list[Callable[[], Any]], seconds: float) -> tuple[list[float], float]:
    """One thread per call, started together, each calling back to back for ``seconds``;
    every latency, and the time from the start to the last call's end."""
    barrier = threading.Barrier(len(calls) + 1)
    results: list[list[float]] = [[] for _ in calls]
    errors: list[BaseException] = []

    def client(i: int) -> None:
        barrier.wait()
        try:
            results[i] = run_for(calls[i], seconds)[0]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=(i,), name=f"bench-client-{i}", daemon=True)
        for i in range(len(calls))
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return [x for r in results for x in r], elapsed


@dataclass
class Variant:
    """One way of doing a part's work, measured round by round.

    ``call`` is one request; with ``clients``, each of those runs on its own thread instead.
    ``info_key``: AI.INFO of that model or script is reset before each round and summed after,
    so its run time covers exactly the measured requests. ``batched_key``: its Batcher's
    backend calls are counted over the rounds."""

    label: str
    call: Callable[[], Any] | None = None
    clients: list[Callable[[], Any]] | None = None
    info_key: str | None = None
    batched_key: str | None = None
    command: str | None = None  # INFO commandstats of this command, summed over the rounds
    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    info: dict[str, int] = field(default_factory=lambda: {"duration": 0, "calls": 0, "samples": 0})
    backend_calls: int = 0
    handler: list[int] = field(default_factory=lambda: [0, 0])  # calls, usec in the server
    others: list[float] = field(default_factory=list)  # other processes' CPU share, per round

    def measure(self, seconds: float) -> tuple[list[float], float]:
        if self.clients is not None:
            return run_concurrently(self.clients, seconds)
        assert self.call is not None
        return run_for(self.call, seconds)

    def round(self, client: redis.Redis, seconds: float, meter: CpuMeter) -> None:
        if self.info_key:
            client.execute_command("AI.INFO", self.info_key, "RESETSTAT")
        before = backend_calls(client, self.batched_key) if self.batched_key else 0
        handled = command_stats(client, self.command) if self.command else (0, 0)
        start = meter.read()
        latencies, elapsed = self.measure(seconds)
        others = meter.others(start, meter.read())
        if others is not None:
            self.others.append(others)
        if self.batched_key:
            self.backend_calls += backend_calls(client, self.batched_key) - before
        if self.command:
            calls, usec = command_stats(client, self.command)
            self.handler[0] += calls - handled[0]
            self.handler[1] += usec - handled[1]
        if self.info_key:
            info = ai_info(client, self.info_key)
            for name in self.info:
                self.info[name] += int(info[name])
        self.latencies += latencies
        self.rates.append(len(latencies) / elapsed)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies)
        p50, p99 = np.percentile(lat, [50, 99])
        out: dict[str, Any] = {
            "variant": self.label,
            "requests": len(lat),
            "p50_us": float(p50) * 1e6,
            "p99_us": float(p99) * 1e6,
            "mean_us": float(lat.mean()) * 1e6,
            "ops_s": statistics.median(self.rates),
            "rounds_ops_s": self.rates,
            "others_cpu_share": statistics.median(self.others) if self.others else None,
            "rounds_others_cpu_share": self.others,
        }
        if self.info_key:
            calls = self.info["calls"]
            out["ai_info"] = dict(self.info)
            out["model_run_us"] = self.info["duration"] / calls if calls else None
        if self.batched_key:
            out["backend_calls"] = self.backend_calls
        if self.command and self.handler[0]:
            out["server_us"] = self.handler[1] / self.handler[0]
        return out


def ai_info(client: redis.Redis, key: str) -> dict[str, Any]:
    reply = client.execute_command("AI.INFO", key)
    if isinstance(reply, dict):  # RESP3
        return {str_(k): v for k, v in reply.items()}
    return {str_(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}


def command_stats(client: redis.Redis, name: str) -> tuple[int, int]:
    """(calls, microseconds) the server spent inside ``name``'s handler so far."""
    stats = client.info("commandstats").get(f"cmdstat_{name.lower()}", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def backend_calls(client: redis.Redis, key: str) -> int:
    return int(client.execute_command("BENCH.BACKENDCALLS", key))


def str_(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


Reading = tuple[float, float | None, float | None]  # wall s, machine busy s, ours s


class CpuMeter:
    """How much of the machine other processes took while we measured: all CPU time used
    (/proc/stat: busy and stolen) minus ours and the server's, over wall time x CPUs.
    Readings are None where /proc is missing."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> Reading:
        return time.perf_counter(), self._machine(), self._ours()

    def others(self, start: Reading, end: Reading) -> float | None:
        (w0, m0, o0), (w1, m1, o1) = start, end
        if m0 is None or m1 is None or o0 is None or o1 is None:
            return None
        return max(0.0, (m1 - m0) - (o1 - o0)) / ((w1 - w0) * (os.cpu_count() or 1))

    def _machine(self) -> float | None:
        try:
            line = Path("/proc/stat").read_text().split("\n", 1)[0]
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
        except (OSError, ValueError):
            return None
        return (user + nice + system + irq + softirq + steal) / self.tick

    def _ours(self) -> float | None:
        try:
            stat = Path(f"/proc/{self.server_pid}/stat").read_text()
        except OSError:
            return None
        utime, stime = (int(x) for x in stat.rsplit(")", 1)[1].split()[11:13])
        mine = os.times()
        return mine.user + mine.system + (utime + stime) / self.tick


# --- the four parts ---------------------------------------------------------------------


def modelstore(client: redis.Redis, key: str, blob: bytes, *options: Any) -> None:
    client.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *options, "BLOB", blob)


def tensorset(client: redis.Redis, key: str, x: np.ndarray) -> None:
    client.execute_command("AI.TENSORSET", key, "FLOAT", *x.shape, "BLOB", x.tobytes())


def pipeline_part(
    client: redis.Redis, models: ModuleType, rng: np.random.Generator
) -> list[Variant]:
    """(a) TENSORSET, MODELEXECUTE m1, MODELEXECUTE m2, TENSORGET."""
    m1 = models.onnx_linear_model(TINY_DIM, TINY_DIM, seed=1)
    m2 = models.onnx_linear_model(TINY_DIM, TINY_DIM, seed=2)
    modelstore(client, "a:m1", m1)
    modelstore(client, "a:m2", m2)
    x = rng.standard_normal((1, TINY_DIM)).astype(np.float32)
    blob = x.tobytes()
    want = run_local(m2, run_local(m1, x))
    steps = [
        ("AI.TENSORSET", "a:in", "FLOAT", 1, TINY_DIM, "BLOB", blob),
        ("AI.MODELEXECUTE", "a:m1", "INPUTS", 1, "a:in", "OUTPUTS", 1, "a:mid"),
        ("AI.MODELEXECUTE", "a:m2", "INPUTS", 1, "a:mid", "OUTPUTS", 1, "a:out"),
        ("AI.TENSORGET", "a:out", "BLOB"),
    ]
    # ROUTING: RedisAI 1.2.7 wants one of LOAD, PERSIST, ROUTING, KEYS in an AI.DAGEXECUTE.
    dag = ["AI.DAGEXECUTE", "ROUTING", "a:in"]
    dag += ["|>", "AI.TENSORSET", "in", "FLOAT", 1, TINY_DIM, "BLOB", blob]
    dag += ["|>", "AI.MODELEXECUTE", "a:m1", "INPUTS", 1, "in", "OUTPUTS", 1, "mid"]
    dag += ["|>", "AI.MODELEXECUTE", "a:m2", "INPUTS", 1, "mid", "OUTPUTS", 1, "out"]
    dag += ["|>", "AI.TENSORGET", "out", "BLOB"]

    def separate() -> Any:
        reply = None
        for step in steps:
            reply = client.execute_command(*step)
        return reply

    def pipelined() -> Any:
        pipe = client.pipeline(transaction=False)
        for step in steps:
            pipe.execute_command(*step)
        return pipe.execute()[-1]

    def one_dag() -> Any:
        return client.execute_command(*dag)

    expect("(a) separate commands", separate(), want)
    expect("(a) pipelined commands", pipelined(), want)
    reply = one_dag()
    dag_ok(reply, 4)
    expect("(a) DAG", reply[-1], want)
    return [
        Variant("4 commands, persisted intermediates", separate),
        Variant("4 commands pipelined (1 round trip), persisted", pipelined),
        Variant("1 AI.DAGEXECUTE, local intermediates", one_dag),
    ]


def ensemble_part(
    client: redis.Redis, models: ModuleType, rng: np.random.Generator
) -> tuple[list[Variant], float]:
    """(b) 4 heavy models on one batch; also returns one model's in-process run times (s) on
    one row and on the batch."""
    blobs = [models.onnx_heavy_model(dim=HEAVY_DIM, seed=i) for i in range(ENSEMBLE)]
    for i, blob in enumerate(blobs):
        modelstore(client, f"b:h{i}", blob)
    x = rng.standard_normal((ENSEMBLE_ROWS, HEAVY_DIM)).astype(np.float32)
    tensorset(client, "b:x", x)
    sessions = [session(blob) for blob in blobs]
    wants = [s.run(None, {"x": x})[0] for s in sessions]
    one_run = statistics.median(run_for(lambda: sessions[0].run(None, {"x": x[:1]}), 0.3)[0])
    batch_run = statistics.median(run_for(lambda: sessions[0].run(None, {"x": x}), 0.3)[0])

    parallel = ["AI.DAGEXECUTE", "LOAD", 1, "b:x"]
    for i in range(ENSEMBLE):
        parallel += ["|>", "AI.MODELEXECUTE", f"b:h{i}", "INPUTS", 1, "b:x", "OUTPUTS", 1, f"y{i}"]
    for i in range(ENSEMBLE):
        parallel += ["|>", "AI.TENSORGET", f"y{i}", "BLOB"]
    singles = [
        ["AI.DAGEXECUTE", "LOAD", 1, "b:x"]
        + ["|>", "AI.MODELEXECUTE", f"b:h{i}", "INPUTS", 1, "b:x", "OUTPUTS", 1, "y"]
        + ["|>", "AI.TENSORGET", "y", "BLOB"]
        for i in range(ENSEMBLE)
    ]

    def sequential() -> list[Any]:
        return [client.execute_command(*dag)[-1] for dag in singles]

    def branches() -> Any:
        return client.execute_command(*parallel)

    for i, got in enumerate(sequential()):
        expect(f"(b) sequential model {i}", got, wants[i])
    reply = branches()
    dag_ok(reply, 2 * ENSEMBLE)
    for i in range(ENSEMBLE):
        expect(f"(b) parallel model {i}", reply[ENSEMBLE + i], wants[i])
    return [
        Variant(f"{ENSEMBLE} one-model DAGs in a row", sequential),
        Variant(f"1 DAG, {ENSEMBLE} parallel branches", branches),
    ], (one_run, batch_run)


def batching_part(
    sock: Path,
    client: redis.Redis,
    models: ModuleType,
    rng: np.random.Generator,
    clients: int,
    batchsize: int,
    stack: contextlib.ExitStack,
) -> tuple[list[Variant], dict[str, float]]:
    """(c) MODELEXECUTE from ``clients`` threads, the model with and without BATCHSIZE; also
    returns the model's in-process run time (s) on 1 row and on ``batchsize`` rows."""
    blob = models.onnx_heavy_model(dim=HEAVY_DIM, seed=10)
    modelstore(client, "c:plain", blob)
    modelstore(client, "c:batched", blob, "BATCHSIZE", batchsize)
    xs = [rng.standard_normal((1, HEAVY_DIM)).astype(np.float32) for _ in range(clients)]
    for i, x in enumerate(xs):
        tensorset(client, f"c:x{i}", x)
    local = session(blob)
    want = local.run(None, {"x": xs[0]})[0]
    rows = np.concatenate([xs[i % clients] for i in range(batchsize)])
    runs = {
        "1_row_s": statistics.median(run_for(lambda: local.run(None, {"x": xs[0]}), 0.3)[0]),
        f"{batchsize}_rows_s": statistics.median(
            run_for(lambda: local.run(None, {"x": rows}), 0.3)[0]
        ),
    }

    conns = []
    for _ in range(clients):
        conn = redis.Redis(unix_socket_path=str(sock))
        stack.callback(conn.close)
        conns.append(conn)

    def requests(model: str) -> list[Callable[[], Any]]:
        def make(i: int) -> Callable[[], Any]:
            argv = ("AI.MODELEXECUTE", model, "INPUTS", 1, f"c:x{i}", "OUTPUTS", 1, f"c:y{i}")
            return lambda: conns[i].execute_command(*argv)

        return [make(i) for i in range(clients)]

    for model in ("c:plain", "c:batched"):
        requests(model)[0]()
        expect(f"(c) {model}", client.execute_command("AI.TENSORGET", "c:y0", "BLOB"), want)
    return [
        Variant("no batching", clients=requests("c:plain"), info_key="c:plain"),
        Variant(
            f"BATCHSIZE {batchsize}",
            clients=requests("c:batched"),
            info_key="c:batched",
            batched_key="c:batched",
        ),
    ], runs


def overhead_part(
    client: redis.Redis, models: ModuleType, rng: np.random.Generator
) -> list[Variant]:
    """(d) the server's cost per command, over the model's own run."""
    blob = models.onnx_linear_model(TINY_DIM, TINY_DIM, seed=3)
    modelstore(client, "d:cmd", blob)
    modelstore(client, "d:dag", blob)
    x = rng.standard_normal((1, TINY_DIM)).astype(np.float32)
    tensorset(client, "d:x", x)
    local = session(blob)
    want = local.run(None, {"x": x})[0]
    execute = ("AI.MODELEXECUTE", "d:cmd", "INPUTS", 1, "d:x", "OUTPUTS", 1, "d:y")
    dag = ["AI.DAGEXECUTE", "LOAD", 1, "d:x"]
    dag += ["|>", "AI.MODELEXECUTE", "d:dag", "INPUTS", 1, "d:x", "OUTPUTS", 1, "y"]
    dag += ["|>", "AI.TENSORGET", "y", "BLOB"]

    client.execute_command(*execute)
    expect("(d) MODELEXECUTE", client.execute_command("AI.TENSORGET", "d:y", "BLOB"), want)
    reply = client.execute_command(*dag)
    dag_ok(reply, 2)
    expect("(d) DAG", reply[-1], want)
    feed = {"x": x}
    config = ("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE")
    get = ("AI.TENSORGET", "d:x", "BLOB")
    return [
        Variant("onnxruntime in-process", lambda: local.run(None, feed)),
        Variant("PING", client.ping),
        Variant("AI.CONFIG GET MODEL_CHUNK_SIZE", lambda: client.execute_command(*config)),
        Variant("AI.TENSORGET x BLOB", lambda: client.execute_command(*get)),
        Variant("AI.MODELEXECUTE", lambda: client.execute_command(*execute), info_key="d:cmd",
                command="AI.MODELEXECUTE"),
        Variant("AI.DAGEXECUTE (1 model)", lambda: client.execute_command(*dag),
                info_key="d:dag", command="AI.DAGEXECUTE"),
    ]  # fmt: skip


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds (~20 s in all)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, help="rounds per measurement [5; quick: 3]")
    parser.add_argument(
        "--round-seconds",
        type=float,
        help="how long each variant runs per round [1.0; quick: 0.25]",
    )
    parser.add_argument("--clients", type=int, default=16, help="(c) concurrent clients [16]")
    parser.add_argument("--batchsize", type=int, default=16, help="(c) BATCHSIZE [16]")
    parser.add_argument(
        "--part",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable) [all]: e.g. --part overhead",
    )
    args = parser.parse_args(argv)
    chosen = args.part or list(PARTS)
    rounds = args.rounds or (3 if args.quick else 5)
    round_s = args.round_seconds or (0.25 if args.quick else 1.0)
    started = time.perf_counter()
    rng = np.random.default_rng(0)

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lh-bench-ai-")))
        err.print("starting learnhub serve ...")
        server, sock = start_hub(tmp)
        stack.callback(stop_server, server)
        client = redis.Redis(unix_socket_path=str(sock))
        stack.callback(client.close)

        err.print("storing models and checking results against onnxruntime ...")
        models = model_builders()
        parts: dict[str, list[Variant]] = {}
        heavy_run_s = ensemble_run_s = None
        batch_runs: dict[str, float] = {}
        if "pipeline" in chosen:
            parts["pipeline"] = pipeline_part(client, models, rng)
        if "ensemble" in chosen:
            parts["ensemble"], (heavy_run_s, ensemble_run_s) = ensemble_part(client, models, rng)
        if "batching" in chosen:
            parts["batching"], batch_runs = batching_part(
                sock, client, models, rng, args.clients, args.batchsize, stack
            )
        if "overhead" in chosen:
            parts["overhead"] = overhead_part(client, models, rng)

        for variants in parts.values():
            for v in variants:
                v.measure(WARMUP_S)
        meter = CpuMeter(server.popen.pid)
        first = meter.read()
        for r in range(rounds):
            err.print(f"round {r + 1}/{rounds}")
            for variants in parts.values():
                # Alternate the order so that neither side always runs first.
                for v in variants if r % 2 == 0 else variants[::-1]:
                    v.round(client, round_s, meter)
        others = meter.others(first, meter.read())

        info = client.info("server")
        stop_server(server)
        if server.exit_code != 0:
            err.print(
                f"[yellow]learnhub exited with code {server.exit_code} on SIGTERM:[/]\n"
                f"{server.tail()}"
            )

    results = {name: [v.summary() for v in variants] for name, variants in parts.items()}
    judge(results, args.batchsize)
    meta = {
        "rounds": rounds,
        "round_seconds": round_s,
        "clients": args.clients,
        "batchsize": args.batchsize,
        "heavy_model": {
            "dim": HEAVY_DIM,
            "run_1_row_ms": _ms(heavy_run_s or batch_runs.get("1_row_s")),
            f"run_{ENSEMBLE_ROWS}_rows_ms": _ms(ensemble_run_s),
            f"run_{args.batchsize}_rows_ms": _ms(batch_runs.get(f"{args.batchsize}_rows_s")),
        },
        "tiny_model": {"dim": TINY_DIM},
        "seconds": time.perf_counter() - started,
        "learnhub": info.get("learnhub_version", learnhub.__version__),
        "learnhub_commit": learnhub_commit(),
        "server_exit_code": server.exit_code,
        "python": platform.python_version(),
        "onnxruntime": version("onnxruntime"),
        "onnx": version("onnx"),
        "numpy": np.__version__,
        "redis_py": redis.__version__,
        "hiredis": version("hiredis"),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "others_cpu_share": others,
        "targets": {
            "pipeline_speedup": PIPELINE_TARGET,
            "ensemble_speedup": ENSEMBLE_TARGET,
            "overhead_us": OVERHEAD_TARGET_US,
        },
    }
    if args.json:
        print(json.dumps({"meta": meta, **results}, indent=2))
    else:
        print_tables(meta, results)
    return 0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def judge(results: dict[str, list[dict[str, Any]]], batchsize: int) -> None:
    """Speedups against each part's baseline (its first row), overheads, and targets."""
    for part in ("pipeline", "ensemble", "batching"):
        rows = results.get(part, [])
        if not rows:
            continue
        for row in rows:
            row["speedup"] = row["ops_s"] / rows[0]["ops_s"]
            row["target"] = None
        rows[0]["baseline"] = True
    for part, target in (("pipeline", PIPELINE_TARGET), ("ensemble", ENSEMBLE_TARGET)):
        if part in results:
            results[part][-1]["target"] = target
    for row in results.get("pipeline", []) + results.get("ensemble", []):
        row["target_met"] = None if row["target"] is None else row["speedup"] >= row["target"]

    for row in results.get("batching", []):
        calls = row.get("backend_calls", row["ai_info"]["calls"])
        row["backend_calls"] = calls
        row["requests_per_backend_call"] = row["requests"] / calls if calls else None
        # Merging is what BATCHSIZE promises: more than one request per backend call.
        row["target_met"] = (
            None if "baseline" in row else (row["requests_per_backend_call"] or 0) > 1
        )

    rows = results.get("overhead", [])
    if not rows:
        return
    baseline = rows[0]["p50_us"]
    rows[0]["baseline"] = True
    for row in rows:
        row["over_in_process_us"] = row["p50_us"] - baseline
        run = row.get("model_run_us")
        row["overhead_us"] = None if run is None else row["p50_us"] - run
        # The server's own overhead: time inside the command (INFO commandstats, as Redis
        # reports it) beyond the model's run; the rest is the socket, the loop and redis-py.
        server = row.get("server_us")
        row["server_overhead_us"] = None if run is None or server is None else server - run
        row["target_met"] = (
            None
            if row["server_overhead_us"] is None
            else row["server_overhead_us"] < OVERHEAD_TARGET_US
        )


# --- output -----------------------------------------------------------------------------


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def mark(met: bool | None) -> str:
    return "" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def busy(row: dict[str, Any]) -> str:
    """Other processes' share of the CPUs while this row ran (median of its rounds)."""
    share = row["others_cpu_share"]
    return "" if share is None else f"{share:.0%}"


def print_tables(meta: dict[str, Any], results: dict[str, list[dict[str, Any]]]) -> None:
    console = Console(width=max(Console().width, 132))
    commit = f" ({meta['learnhub_commit']})" if meta["learnhub_commit"] else ""
    versions = (
        f"learnhub {meta['learnhub']}{commit} on SQLite, onnxruntime {meta['onnxruntime']}, "
        f"Python {meta['python']}, redis-py {meta['redis_py']}"
        + (f" + hiredis {meta['hiredis']}" if meta["hiredis"] else "")
        + f"; {meta['cpus']} CPUs ({meta['cpu']}), {meta['seconds']:.0f} s in all"
    )
    if meta["others_cpu_share"] is not None:
        versions += (
            f"; other processes used {meta['others_cpu_share']:.0%} of the CPUs during the rounds"
        )
    over = f"p50/p99 over every request of {meta['rounds']} rounds of {meta['round_seconds']:g} s"
    others = (
        "others = the share of the CPUs other processes used while the row ran (median of "
        "its rounds)."
    )
    rounds = (
        f"{over}; ops/s = median of the rounds' rates; speedup = ops/s / the first row's; {others}"
    )
    heavy = meta["heavy_model"]
    b = meta["batchsize"]

    def speed_table(title: str, rows: list[dict[str, Any]], caption: str, unit: str) -> None:
        table = Table(title=title, caption=caption)
        table.add_column("variant", no_wrap=True)
        table.add_column("p50 ms", justify="right")
        table.add_column("p99 ms", justify="right")
        table.add_column(f"{unit}/s", justify="right")
        table.add_column("speedup", justify="right")
        table.add_column("target", justify="right")
        table.add_column("met?", justify="center")
        table.add_column("others", justify="right")
        for row in rows:
            table.add_row(
                row["variant"] + (" [dim](baseline)[/]" if row.get("baseline") else ""),
                ms(row["p50_us"]),
                ms(row["p99_us"]),
                rate(row["ops_s"]),
                f"[bold]{row['speedup']:.2f}x[/]",
                "" if row["target"] is None else f">= {row['target']:g}x",
                mark(row["target_met"]),
                busy(row),
            )
        console.print(table)

    if "pipeline" in results:
        speed_table(
            "(a) 4-op pipeline: TENSORSET, MODELEXECUTE m1, MODELEXECUTE m2, TENSORGET",
            results["pipeline"],
            f"m1, m2: ONNX Gemm {TINY_DIM}x{TINY_DIM} (tests/ai_models.onnx_linear_model) on a "
            f"FLOAT [1, {TINY_DIM}] input sent as BLOB, result read as BLOB, one client. Separate "
            "commands persist the input, the intermediate and the output in the store (one "
            "round trip each; pipelined: one for all 4); the DAG (ROUTING header, no LOAD or "
            f"PERSIST) keeps all three local. {rounds}\n{versions}",
            "pipelines",
        )
    if "ensemble" in results:
        speed_table(
            f"(b) ensemble of {ENSEMBLE} heavy models on one batch",
            results["ensemble"],
            f"{ENSEMBLE} models tests/ai_models.onnx_heavy_model(dim={HEAVY_DIM}, seed=0..3) "
            f"(one run on FLOAT [{ENSEMBLE_ROWS}, {HEAVY_DIM}]: "
            f"{heavy[f'run_{ENSEMBLE_ROWS}_rows_ms']:.2f} ms in-process, "
            "1 thread), input LOADed from the keyspace. In a row: per model, AI.DAGEXECUTE LOAD 1 "
            "x |> MODELEXECUTE |> TENSORGET (local output), one after the other; parallel: one "
            f"AI.DAGEXECUTE LOAD 1 x with {ENSEMBLE} independent MODELEXECUTEs, then a TENSORGET "
            f"of each. {rounds}\n{versions}",
            "ensembles",
        )

    if "batching" in results:
        table = Table(
            title=f"(c) AI.MODELEXECUTE under {meta['clients']} concurrent clients, heavy model",
            caption=(
                f"{meta['clients']} threads in this process, one connection each, each running "
                "AI.MODELEXECUTE <model> INPUTS 1 x<i> OUTPUTS 1 y<i> back to back (FLOAT "
                f"[1, {HEAVY_DIM}] inputs in the keyspace, outputs persisted); the model is "
                f"onnx_heavy_model(dim={HEAVY_DIM}): in-process {heavy['run_1_row_ms']:.2f} ms "
                f"for 1 row, {heavy[f'run_{b}_rows_ms']:.2f} ms for {b}. backend calls: model "
                "runs made "
                "(batched: the model's Batcher.calls, read by a benchmark-only server command; "
                "unbatched: AI.INFO calls). AI.INFO calls counts requests, as in RedisAI. Target "
                f"(BATCHSIZE): requests are merged (> 1 per backend call). {rounds}\n{versions}"
            ),
        )
        table.add_column("variant", no_wrap=True)
        table.add_column("p50 ms", justify="right")
        table.add_column("p99 ms", justify="right")
        table.add_column("req/s", justify="right")
        table.add_column("speedup", justify="right")
        table.add_column("requests", justify="right")
        table.add_column("AI.INFO calls", justify="right")
        table.add_column("backend calls", justify="right")
        table.add_column("req per backend call", justify="right")
        table.add_column("met?", justify="center")
        table.add_column("others", justify="right")
        for row in results["batching"]:
            per_call = row["requests_per_backend_call"]
            table.add_row(
                row["variant"] + (" [dim](baseline)[/]" if row.get("baseline") else ""),
                ms(row["p50_us"]),
                ms(row["p99_us"]),
                rate(row["ops_s"]),
                f"[bold]{row['speedup']:.2f}x[/]",
                f"{row['requests']:,}",
                f"{row['ai_info']['calls']:,}",
                f"{row['backend_calls']:,}",
                "" if per_call is None else f"{per_call:.2f}",
                mark(row["target_met"]),
                busy(row),
            )
        console.print(table)

    if "overhead" in results:
        table = Table(
            title="(d) per-command overhead: latency minus the model's own run time",
            caption=(
                f"One client, one request at a time. Model: ONNX Gemm {TINY_DIM}x{TINY_DIM} "
                f"(onnx_linear_model), input FLOAT [1, {TINY_DIM}] already in the keyspace. "
                "AI.MODELEXECUTE d:cmd INPUTS 1 x OUTPUTS 1 y (output persisted); AI.DAGEXECUTE "
                "LOAD 1 x |> MODELEXECUTE d:dag INPUTS 1 x OUTPUTS 1 y |> TENSORGET y BLOB (local "
                "output). model run: AI.INFO duration / calls over exactly these requests (the "
                "engine's timer around the model lookup and run). overhead = p50 - model run: "
                "what the server, the socket and redis-py add. in server: mean time inside the "
                "command's handler (INFO commandstats usec_per_call, as Redis reports it); server "
                "overhead = in server - model run: what the hub itself adds (parsing, the store "
                "read and write, the DAG) and what the target is judged on. vs in-process = p50 - "
                "the baseline's p50 (onnxruntime InferenceSession with learnhub's options: 1 "
                "intra-op and 1 inter-op thread, CPU provider). The rows between show where the "
                "time goes: "
                "PING = redis-py + socket + the event loop; AI.CONFIG GET = + the hand-off of a "
                "blocking command to a worker thread; AI.TENSORGET = + one store read. Target: "
                f"overhead < {OVERHEAD_TARGET_US:g} us. "
                f"{over}; {others}\n{versions}"
            ),
        )
        table.add_column("variant", no_wrap=True)
        table.add_column("p50 us", justify="right")
        table.add_column("p99 us", justify="right")
        table.add_column("ops/s", justify="right")
        table.add_column("model run us", justify="right")
        table.add_column("overhead us", justify="right")
        table.add_column("in server us", justify="right")
        table.add_column("server overhead us", justify="right")
        table.add_column("vs in-proc us", justify="right")
        table.add_column("target", justify="right")
        table.add_column("met?", justify="center")
        table.add_column("others", justify="right")
        for row in results["overhead"]:
            run, over = row.get("model_run_us"), row["overhead_us"]
            server, server_over = row.get("server_us"), row.get("server_overhead_us")
            table.add_row(
                row["variant"] + (" [dim](baseline)[/]" if row.get("baseline") else ""),
                f"{row['p50_us']:,.1f}",
                f"{row['p99_us']:,.1f}",
                rate(row["ops_s"]),
                "" if run is None else f"{run:,.1f}",
                "" if over is None else f"{over:,.1f}",
                "" if server is None else f"{server:,.1f}",
                "" if server_over is None else f"[bold]{server_over:,.1f}[/]",
                f"{row['over_in_process_us']:,.1f}",
                "" if server_over is None else f"< {OVERHEAD_TARGET_US:g}",
                mark(row["target_met"]),
                busy(row),
            )
        console.print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; server stopped and temp files removed[/]")
        sys.exit(130)
