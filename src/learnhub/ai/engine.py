"""Runs parsed AI requests: the keyspace commands, model and script runs, DAGs.

Replies are plain Python values the server encodes as RESP: ``Status`` for simple strings
(OK, NA, TIMEDOUT), ``str`` and ``bytes`` for bulk strings, ints, lists, None for nil, and
``AIError`` objects inside a DAG's reply for the op that failed.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from learnhub.ai import parse as p
from learnhub.ai import tensor as tensors
from learnhub.ai.keyspace import MODEL, SCRIPT, TENSOR, Keyspace, LoadedModel, LoadedScript
from learnhub.errors import AIError, AITimeout, InvalidInput, WaitTimeout
from learnhub.jobs.model import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, WAITING

if TYPE_CHECKING:
    from learnhub.jobs import JobContext, Jobs
    from learnhub.store import Store

DAG_TASK = "learnhub.ai.dag"
# RedisAI's default; clients (redisai-py) split model blobs into chunks of this size.
DEFAULT_CHUNK_SIZE = 511 * 1024 * 1024
RUN_STATES = {
    WAITING: "queued",
    QUEUED: "queued",
    RUNNING: "running",
    SUCCEEDED: "done",
    FAILED: "failed",
    CANCELLED: "cancelled",
}


class Status(str):
    """A simple-string reply: OK, NA, TIMEDOUT."""


OK, NA, TIMEDOUT = Status("OK"), Status("NA"), Status("TIMEDOUT")
Version = tuple[str, int]  # a DAG value: (name, index of the op that wrote it; -1 = loaded)
# Prepared (parsed, checked and planned) commands kept by their arguments: a model server
# sees the same MODELEXECUTE and DAG lines over and over, and preparing one again costs as
# much as the model run of a small model. Only small commands that carry no tensor data.
PREPARED_MAX = 512
PREPARED_MAX_BYTES = 4096


@dataclass
class Stats:
    """What AI.INFO reports for a model or script, since it was stored or reset."""

    duration_us: int = 0
    samples: int = 0
    calls: int = 0
    errors: int = 0


@dataclass(frozen=True)
class _Plan:
    """What a DAG's execution needs to know of its shape, worked out once per DAG."""

    deps: list[tuple[int, ...]]  # per op, the ops it waits for
    sources: list[dict[str, int]]  # per op, the version of each name it reads
    last: dict[str, int]  # per name, the op that wrote its final version
    chain: bool  # every op waits for the one before it: never two ready at once


def _plan(dag: p.Dag) -> _Plan:
    deps = p.plan(dag)
    chain = all(i - 1 in d for i, d in enumerate(deps) if i)
    return _Plan(deps, _sources(dag), _last_writers(dag), chain)


@dataclass(frozen=True)
class _Prepared:
    """A parsed, checked request; for a DAG or a standalone run, its DAG and plan too."""

    req: Any
    dag: p.Dag | None = None
    plan: _Plan | None = None


@dataclass
class _Run:
    """One DAG execution: its values by version, and what each op produced."""

    dag: p.Dag
    values: dict[Version, np.ndarray] = field(default_factory=dict)
    replies: list[Any] = field(default_factory=list)


class AI:
    """``hub.ai``: RedisAI's data model and commands over the hub's store."""

    def __init__(self, store: Store, jobs: Jobs, queue: str) -> None:
        self.keyspace = Keyspace(store)
        self.jobs = jobs
        self.queue = queue
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._stats: dict[str, Stats] = {}
        self._stats_lock = threading.Lock()
        # Parallel DAG branches; ONNX sessions use one thread each, so this spreads them on cores.
        self._pool = ThreadPoolExecutor(
            max(4, os.cpu_count() or 1), thread_name_prefix="learnhub-ai"
        )
        self._prepared: dict[tuple[bytes, ...], _Prepared] = {}
        self._prepared_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- Python API -----------------------------------------------------------------------

    def tensorset(
        self,
        key: str,
        value: np.ndarray | Sequence[Any],
        dtype: str | None = None,
        shape: Sequence[int] | None = None,
    ) -> None:
        """Store a tensor: a NumPy array, or values with ``dtype`` (and ``shape``)."""
        self.keyspace.put_tensors({key: _as_tensor(value, dtype, shape)})

    def tensorget(self, key: str) -> np.ndarray:
        return self.keyspace.get_tensor(key)

    def modelstore(
        self,
        key: str,
        backend: str,
        device: str,
        blob: bytes,
        *,
        tag: str = "",
        batchsize: int = 0,
        minbatchsize: int = 0,
        minbatchtimeout: int = 0,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
    ) -> None:
        self.execute(
            p.ModelStore(
                key,
                backend.upper(),
                device.upper(),
                tag,
                batchsize,
                minbatchsize,
                minbatchtimeout,
                list(inputs),
                list(outputs),
                blob,
            )
        )

    def modelexecute(
        self, key: str, inputs: Sequence[str], outputs: Sequence[str], timeout: float | None = None
    ) -> None:
        """Run a model on tensors in the keyspace and store its outputs there."""
        reply = self.execute(p.ModelExecute(key, list(inputs), list(outputs), _ms(timeout)))
        if reply == TIMEDOUT:
            raise AITimeout(f"model {key!r} did not run within {timeout}s")

    def scriptstore(
        self, key: str, device: str, source: str, entry_points: Sequence[str], tag: str = ""
    ) -> None:
        self.execute(p.ScriptStore(key, device.upper(), tag, list(entry_points), source))

    def dag(
        self,
        load: Sequence[str] = (),
        persist: Sequence[str] = (),
        timeout: float | None = None,
        readonly: bool = False,
    ) -> DagBuilder:
        """Build a DAG op by op; ``.run()`` executes it as AI.DAGEXECUTE would."""
        return DagBuilder(self, list(load), list(persist), _ms(timeout), readonly)

    # --- commands -------------------------------------------------------------------------

    def command(self, argv: list[bytes]) -> Any:
        """Parse and run one AI.* command (argv[0] is its name); return its reply."""
        prepared = self._prepare(argv)
        req = prepared.req
        if prepared.dag is None:
            return self.execute(req)
        if req is not prepared.dag:  # a standalone MODELEXECUTE or SCRIPTEXECUTE
            return _single_reply(self.run_dag(prepared.dag, plan=prepared.plan))
        if req.asynchronous:
            return self.submit(argv)
        return self.run_dag(req, plan=prepared.plan)

    def _prepare(self, argv: list[bytes]) -> _Prepared:
        """The command parsed and checked (and planned, if it runs a DAG), from the cache of
        recent commands when it is there."""
        key = tuple(argv)
        prepared = self._prepared.get(key) if _cacheable(key) else None
        if prepared is not None:
            return prepared
        req = p.parse(argv)
        _check_names(req)
        if isinstance(req, p.Dag):
            prepared = _Prepared(req, req, None if req.asynchronous else _plan(req))
        elif isinstance(req, p.ModelExecute | p.ScriptExecute):
            dag = _single_dag(req, req.inputs, req.outputs, req.timeout_ms)
            prepared = _Prepared(req, dag, _plan(dag))
        else:
            prepared = _Prepared(req)
        if _cacheable(key) and not _carries_data(req):
            with self._prepared_lock:
                if len(self._prepared) >= PREPARED_MAX:  # the oldest goes
                    del self._prepared[next(iter(self._prepared))]
                self._prepared[key] = prepared
        return prepared

    def execute(self, req: Any) -> Any:
        """Run one parsed request and return its reply."""
        handler = getattr(self, "_" + type(req).__name__.lower())
        return handler(req)

    def _tensorset(self, req: p.TensorSet) -> Any:
        self.keyspace.put_tensors({req.key: req.tensor})
        return OK

    def _tensorget(self, req: p.TensorGet) -> Any:
        return tensors.tensorget_reply(self.keyspace.get_tensor(req.key), req.meta, req.fmt)

    def _modelstore(self, req: p.ModelStore) -> Any:
        meta = {
            "backend": req.backend,
            "device": req.device,
            "tag": req.tag,
            "batchsize": req.batchsize,
            "minbatchsize": req.minbatchsize,
            "minbatchtimeout": req.minbatchtimeout,
            "inputs": req.inputs,
            "outputs": req.outputs,
        }
        self.keyspace.put_model(req.key, meta, req.blob)
        self._reset_stats(req.key)
        return OK

    def _modelget(self, req: p.ModelGet) -> Any:
        row = self.keyspace.row(req.key, MODEL)
        loaded = self.keyspace.model(req.key)
        meta = loaded.meta
        reply: list[Any] = []
        if req.meta:
            reply += [
                "backend",
                meta["backend"],
                "device",
                meta["device"],
                "tag",
                meta["tag"],
                "batchsize",
                meta["batchsize"],
                "minbatchsize",
                meta["minbatchsize"],
                "inputs",
                list(loaded.model.inputs),
                "outputs",
                list(loaded.model.outputs),
                "minbatchtimeout",
                meta["minbatchtimeout"],
            ]
        if req.blob:
            blob = bytes(row["blob"])
            if len(blob) > self.chunk_size:  # as RedisAI: an array of MODEL_CHUNK_SIZE chunks
                blob_reply: Any = [
                    blob[i : i + self.chunk_size] for i in range(0, len(blob), self.chunk_size)
                ]
            else:
                blob_reply = blob
            if not req.meta:
                return blob_reply
            reply += ["blob", blob_reply]
        return reply

    def _modeldel(self, req: p.ModelDel) -> Any:
        self._delete(req.key, MODEL)
        return OK

    def _modelscan(self, req: p.ModelScan) -> Any:
        return [[k, m.get("tag", "")] for k, _, m in self.keyspace.keys("*", MODEL)]

    def _scriptstore(self, req: p.ScriptStore) -> Any:
        meta = {"device": req.device, "tag": req.tag, "entry_points": req.entry_points}
        self.keyspace.put_script(req.key, meta, req.source)
        self._reset_stats(req.key)
        return OK

    def _scriptget(self, req: p.ScriptGet) -> Any:
        row = self.keyspace.row(req.key, SCRIPT)
        source = bytes(row["blob"]).decode()
        loaded = self.keyspace.script(req.key)
        if not req.meta:
            return source
        reply: list[Any] = ["device", loaded.meta["device"], "tag", loaded.meta["tag"]]
        reply += ["Entry Points", list(loaded.script.entry_points)]
        if req.source:
            reply += ["source", source]
        return reply

    def _scriptdel(self, req: p.ScriptDel) -> Any:
        self._delete(req.key, SCRIPT)
        return OK

    def _scriptscan(self, req: p.ScriptScan) -> Any:
        return [[k, m.get("tag", "")] for k, _, m in self.keyspace.keys("*", SCRIPT)]

    def _delete(self, key: str, kind: str) -> None:
        self.keyspace.row(key, kind)  # the right error for a missing or other-typed key
        self.keyspace.delete([key], kind)
        with self._stats_lock:
            self._stats.pop(key, None)

    def _modelexecute(self, req: p.ModelExecute) -> Any:
        return self._single(req, req.inputs, req.outputs, req.timeout_ms)

    def _scriptexecute(self, req: p.ScriptExecute) -> Any:
        return self._single(req, req.inputs, req.outputs, req.timeout_ms)

    def _single(
        self, op: Any, inputs: list[str], outputs: list[str], timeout_ms: int | None
    ) -> Any:
        return _single_reply(self.run_dag(_single_dag(op, inputs, outputs, timeout_ms)))

    def _info(self, req: p.Info) -> Any:
        row = self.keyspace.fetch([req.key]).get(req.key)
        if row is None or row["type"] == TENSOR:
            raise AIError("cannot find run info for key")
        if req.resetstat:
            self._reset_stats(req.key)
            return OK
        with self._stats_lock:
            s = self._stats.get(req.key) or Stats()
        if row["type"] == MODEL:
            loaded: LoadedModel | LoadedScript = self.keyspace.model(req.key, row)
            kind, backend = "MODEL", loaded.meta["backend"]
        else:
            loaded = self.keyspace.script(req.key, row)
            kind, backend = "SCRIPT", "TORCH"
        return [
            "key",
            req.key,
            "type",
            kind,
            "backend",
            backend,
            "device",
            loaded.meta["device"],
            "tag",
            loaded.meta["tag"],
            "duration",
            s.duration_us,
            "samples",
            s.samples,
            "calls",
            s.calls,
            "errors",
            s.errors,
        ]

    def _config(self, req: p.Config) -> Any:
        name = req.name.upper()
        if name == "MODEL_CHUNK_SIZE":
            if req.value is None:
                return self.chunk_size
            try:
                size = int(req.value)
            except ValueError:
                size = 0
            if size <= 0:
                raise AIError("MODEL_CHUNK_SIZE: invalid chunk size")
            self.chunk_size = size
            return OK
        if name == "BACKENDSPATH":
            return OK if req.value is not None else ""
        if name == "LOADBACKEND":
            return OK  # backends are Python packages here, loaded when first used
        raise AIError(f"unsupported subcommand {req.name}")

    def _reset_stats(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] = Stats()

    def _count(self, key: str, started: float, samples: int, failed: bool) -> None:
        with self._stats_lock:
            s = self._stats.setdefault(key, Stats())
            s.calls += 1
            s.errors += failed
            if not failed:
                s.duration_us += int((time.perf_counter() - started) * 1e6)
                s.samples += samples

    # --- DAGs -----------------------------------------------------------------------------

    def _dag(self, req: p.Dag) -> Any:
        return self.run_dag(req)

    def run_dag(
        self, dag: p.Dag, commit: Callable[[], bool] | None = None, plan: _Plan | None = None
    ) -> Any:
        """Run a DAG: independent ops in parallel, persisted outputs written together at the
        end and only if every op succeeded (and ``commit()``, when given, still agrees).
        The reply lists each op's reply; ops after the first failure reply NA. ``plan``: the
        DAG's, when the caller has it already."""
        deadline = None if dag.timeout_ms is None else time.monotonic() + dag.timeout_ms / 1000
        run = _Run(dag)
        rows = self.keyspace.fetch(dag.load + [o.key for o in dag.ops if _runs_code(o)])
        for key in dag.load:
            run.values[(key, -1)] = self.keyspace.tensor_from(rows, key)
        if plan is None:
            plan = _plan(dag)
        sources = plan.sources
        run.replies = [None] * len(dag.ops)
        done: set[int] = set()
        if plan.chain:  # one op at a time anyway: in order, on this thread
            failed = self._run_chain(run, sources, rows, done)
        else:
            outcome = self._run_parallel(run, plan, rows, deadline, done)
            if outcome is TIMEDOUT:
                return TIMEDOUT
            failed = outcome
        if deadline is not None and time.monotonic() > deadline:
            return TIMEDOUT
        if failed is not None:
            # Ops before the failure keep their replies; the failure, then NA for the rest.
            return [
                run.replies[n] if n in done or n == failed else NA for n in range(failed + 1)
            ] + [NA] * (len(dag.ops) - failed - 1)
        if dag.persist and (commit is None or commit()):
            last = plan.last
            self.keyspace.put_tensors(
                {key: run.values[(key, last[key])] for key in dag.persist}, "dagexecute"
            )
        return run.replies

    def _run_chain(
        self, run: _Run, sources: list[dict[str, int]], rows: dict[str, Any], done: set[int]
    ) -> int | None:
        """Run the ops in order on this thread, up to the first that fails (its index)."""
        for i in range(len(run.dag.ops)):
            try:
                run.replies[i] = self._op(run, i, sources[i], rows)
            except AIError as exc:
                run.replies[i] = exc
                return i
            done.add(i)
        return None

    def _run_parallel(
        self,
        run: _Run,
        plan: _Plan,
        rows: dict[str, Any],
        deadline: float | None,
        done: set[int],
    ) -> Any:
        """Run the ops, each once what it reads is ready, independent ones in parallel;
        the index of the first that failed, None, or TIMEDOUT."""
        dag, sources, deps = run.dag, plan.sources, plan.deps
        failed: int | None = None
        running: dict[Future[Any], int] = {}
        pending = list(range(len(dag.ops)))
        while pending or running:
            ready = [i for i in pending if failed is None and all(d in done for d in deps[i])]
            for i in ready:
                pending.remove(i)
            # The caller's thread runs one ready op itself: a chain never changes threads.
            for i in ready[1:]:
                running[self._pool.submit(self._op, run, i, sources[i], rows)] = i
            if ready:
                i = ready[0]
                try:
                    run.replies[i] = self._op(run, i, sources[i], rows)
                    done.add(i)
                except AIError as exc:
                    run.replies[i] = exc
                    failed = i if failed is None else min(failed, i)
            if failed is not None:
                pending.clear()
            if ready and not running:
                continue
            if not running:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return TIMEDOUT
            finished, _ = wait(running, timeout=left, return_when=FIRST_COMPLETED)
            if not finished:
                return TIMEDOUT
            for future in finished:
                i = running.pop(future)
                try:
                    run.replies[i] = future.result()
                    done.add(i)
                except AIError as exc:
                    run.replies[i] = exc
                    failed = i if failed is None else min(failed, i)
        return failed

    def _op(self, run: _Run, i: int, sources: dict[str, int], rows: dict[str, Any]) -> Any:
        op = run.dag.ops[i]
        args = [run.values[(name, sources[name])] for name in op.reads]
        if isinstance(op, p.TensorSet):
            run.values[(op.key, i)] = op.tensor
            return OK
        if isinstance(op, p.TensorGet):
            return tensors.tensorget_reply(args[0], op.meta, op.fmt)
        started = time.perf_counter()
        samples = int(args[0].shape[0]) if args and args[0].ndim else 0
        try:
            if isinstance(op, p.ModelExecute):
                model = self.keyspace.model(op.key, rows.get(op.key))
                results = model.run(args)
            else:
                script = self.keyspace.script(op.key, rows.get(op.key)).script
                results = script.run(op.fn, args, op.keys, op.args, op.legacy)
            if len(results) < len(op.outputs):
                raise AIError(
                    f"{op.key} returned {len(results)} outputs, {len(op.outputs)} were asked for"
                )
        except AIError:
            self._count(op.key, started, samples, failed=True)
            raise
        self._count(op.key, started, samples, failed=False)
        for name, value in zip(op.outputs, results, strict=False):
            run.values[(name, i)] = value
        return OK

    # --- asynchronous DAGs ----------------------------------------------------------------

    def submit(self, argv: list[bytes]) -> str:
        """Queue an asynchronous DAG command (already parsed: it is valid) as a job; the
        job's id is the run id."""
        encoded = [base64.b64encode(a).decode() for a in argv]
        job = self.jobs.enqueue(DAG_TASK, {"argv": encoded}, queue=self.queue, max_attempts=1)
        return str(job.id)

    def run_job(self, ctx: JobContext, argv: list[str]) -> dict[str, Any]:
        """The jobs task of an asynchronous DAG: its reply, JSON-encoded, is the job's result.
        A run cancelled meanwhile persists nothing."""
        dag = p.parse([base64.b64decode(a) for a in argv])
        assert isinstance(dag, p.Dag)
        reply = self.run_dag(dag, commit=ctx.heartbeat)
        ok = not isinstance(reply, Status) and not any(isinstance(r, AIError) for r in reply)
        return {"ok": ok, "reply": _reply_json(reply)}

    def _dagstatus(self, req: p.DagStatus) -> Any:
        job = self._run_job(req.run_id)
        if job.state == SUCCEEDED and not (job.result or {}).get("ok"):
            return "failed"
        return RUN_STATES[job.state]

    def _dagresult(self, req: p.DagResult) -> Any:
        job = self._run_job(req.run_id)
        if req.block_ms:
            try:
                job = self.jobs.wait(job.id, timeout=req.block_ms / 1000)
            except WaitTimeout:
                return None
        if job.state == SUCCEEDED:
            return _reply_from_json(job.result["reply"])
        if job.state == FAILED:
            raise AIError(f"DAG run {job.id} failed: {job.error}")
        if job.state == CANCELLED:
            raise AIError(f"DAG run {job.id} was cancelled")
        return None

    def _dagcancel(self, req: p.DagCancel) -> Any:
        job = self._run_job(req.run_id)
        if job.state in (SUCCEEDED, FAILED, CANCELLED):
            raise AIError(f"DAG run {job.id} has already finished ({RUN_STATES[job.state]})")
        self.jobs.cancel(job.id)
        return OK

    def _run_job(self, run_id: str) -> Any:
        try:
            job = self.jobs.get(int(run_id))
        except (ValueError, InvalidInput):
            job = None
        if job is None or job.task != DAG_TASK:
            raise AIError(f"no DAG run with id {run_id}")
        return job


class DagBuilder:
    """``hub.ai.dag(load=[...], persist=[...]).tensorset(...).modelexecute(...).run()``: builds
    the AI.DAGEXECUTE command a client would send, so both take the same path."""

    def __init__(
        self, ai: AI, load: list[str], persist: list[str], timeout_ms: int | None, readonly: bool
    ) -> None:
        self._ai = ai
        self._argv: list[Any] = ["AI.DAGEXECUTE_RO" if readonly else "AI.DAGEXECUTE"]
        for option, keys in (("LOAD", load), ("PERSIST", persist)):
            if keys:
                self._argv += [option, len(keys), *keys]
        if not load and not persist:  # DAGEXECUTE wants one of LOAD, PERSIST, ROUTING
            self._argv += ["ROUTING", "local"]
        if timeout_ms is not None:
            self._argv += ["TIMEOUT", timeout_ms]
        self._timeout_ms = timeout_ms
        self._gets: list[bool] = []  # per op: is it a tensorget

    def _op(self, *args: Any, get: bool = False) -> DagBuilder:
        self._argv += ["|>", *args]
        self._gets.append(get)
        return self

    def tensorset(
        self, key: str, value: Any, dtype: str | None = None, shape: Sequence[int] | None = None
    ) -> DagBuilder:
        array = _as_tensor(value, dtype, shape)
        blob = tensors.to_blob(array)
        return self._op("AI.TENSORSET", key, tensors.dtype_name(array), *array.shape, "BLOB", blob)

    def tensorget(self, key: str) -> DagBuilder:
        return self._op("AI.TENSORGET", key, "META", "BLOB", get=True)

    def modelexecute(self, key: str, inputs: Sequence[str], outputs: Sequence[str]) -> DagBuilder:
        return self._op(
            "AI.MODELEXECUTE",
            key,
            "INPUTS",
            len(inputs),
            *inputs,
            "OUTPUTS",
            len(outputs),
            *outputs,
        )

    def scriptexecute(
        self,
        key: str,
        fn: str,
        *,
        keys: Sequence[str] = (),
        inputs: Sequence[str] = (),
        args: Sequence[str] = (),
        outputs: Sequence[str] = (),
    ) -> DagBuilder:
        parts: list[Any] = ["AI.SCRIPTEXECUTE", key, fn]
        for option, names in (
            ("KEYS", keys),
            ("INPUTS", inputs),
            ("ARGS", args),
            ("OUTPUTS", outputs),
        ):
            if names:
                parts += [option, len(names), *names]
        return self._op(*parts)

    def run(self) -> list[Any]:
        """Each op's result (a NumPy array for tensorget, "OK" otherwise); raises the first
        op's error, or AITimeout."""
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in self._argv]
        reply = self._ai.command(argv)
        if reply == TIMEDOUT:
            raise AITimeout(f"the DAG did not finish within {self._timeout_ms} ms")
        for r in reply:
            if isinstance(r, AIError):
                raise r
        return [_from_reply(r) if get else str(r) for r, get in zip(reply, self._gets, strict=True)]


def _from_reply(reply: list[Any]) -> np.ndarray:
    """A tensor back from its META BLOB reply."""
    fields = dict(zip(reply[::2], reply[1::2], strict=True))
    return tensors.make_tensor(fields["dtype"], list(fields["shape"]), blob=fields["blob"])


def _check_names(req: Any) -> None:
    """Keys and names are text in the store: refuse bytes that are not UTF-8 up front."""
    for f in fields(req):
        value = getattr(req, f.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode()
                except UnicodeEncodeError:
                    raise AIError(f"{f.name} must be UTF-8 text") from None
            elif is_dataclass(item):
                _check_names(item)


def _cacheable(argv: tuple[Any, ...]) -> bool:
    """Whether a command's prepared form may be kept: small, and all bytes (hashable as is)."""
    size = 0
    for a in argv:
        if type(a) is not bytes:
            return False
        size += len(a)
    return size <= PREPARED_MAX_BYTES


def _carries_data(req: Any) -> bool:
    """Whether a request holds tensor data (a script might change it in place: never reused)."""
    if isinstance(req, p.Dag):
        return any(isinstance(op, p.TensorSet) for op in req.ops)
    return isinstance(req, p.TensorSet | p.ModelStore | p.ScriptStore)


def _single_dag(op: Any, inputs: list[str], outputs: list[str], timeout_ms: int | None) -> p.Dag:
    """A standalone run is a DAG of one op that loads its inputs and persists its outputs."""
    return p.Dag(
        False,
        list(dict.fromkeys(inputs)),
        list(dict.fromkeys(outputs)),
        None,
        timeout_ms,
        [op],
        False,
    )


def _single_reply(reply: Any) -> Any:
    """A standalone run's reply: OK, TIMEDOUT, or its op's error raised."""
    if isinstance(reply, Status):
        return reply
    if isinstance(reply[0], AIError):
        raise reply[0]
    return OK


def _runs_code(op: Any) -> bool:
    return isinstance(op, p.ModelExecute | p.ScriptExecute)


def _sources(dag: p.Dag) -> list[dict[str, int]]:
    """For each op, which version of each name it reads: the last earlier writer's."""
    last: dict[str, int] = {key: -1 for key in dag.load}
    out = []
    for i, op in enumerate(dag.ops):
        out.append({name: last[name] for name in op.reads})
        for name in op.writes:
            last[name] = i
    return out


def _last_writers(dag: p.Dag) -> dict[str, int]:
    last: dict[str, int] = {key: -1 for key in dag.load}  # PERSIST may name a LOADed key
    for i, op in enumerate(dag.ops):
        for name in op.writes:
            last[name] = i
    return last


def _as_tensor(value: Any, dtype: str | None, shape: Sequence[int] | None) -> np.ndarray:
    if isinstance(value, np.ndarray):
        tensors.dtype_name(value)  # refuses dtypes RedisAI has no name for
        return value
    if dtype is None:
        raise AIError("tensorset of a list needs dtype=, e.g. dtype='FLOAT'")
    values = [v if isinstance(v, bytes) else str(v).encode() for v in value]
    return tensors.make_tensor(dtype, list(shape or [len(values)]), values=values)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, int(seconds * 1000))


# --- JSON forms of DAGs and replies, for the jobs queue ------------------------------------


def _reply_json(value: Any) -> Any:
    if isinstance(value, Status):
        return {"s": str(value)}
    if isinstance(value, AIError):
        return {"e": str(value)}
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_reply_json(v) for v in value]
    return value  # str, int, None


def _reply_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "s" in value:
            return Status(value["s"])
        if "e" in value:
            return AIError(value["e"])
        return base64.b64decode(value["b"])
    if isinstance(value, list):
        return [_reply_from_json(v) for v in value]
    return value
