"""Trainers, the planner and inference: CML's task management on learnhub's jobs.

A training *task* (a ``train_tasks`` row) is one scratch or fine-tune run of a batch; a job
of task ``learnhub.train`` (queue ``train.scratch`` or ``train.finetune``) carries it, so
workers, leases, timeouts and retries are the jobs part's. Task statuses: ``queued`` until a
worker starts it, then the trainer's working statuses (the first one at start), then
``done``, ``failed`` (the training function raised; its traceback is kept) or ``dead``
(still working past ``limit_time``: hung, or its worker died and nobody took it over).

Which failures are retried: a training function that raises fails its task and its job at
once (``PermanentError``: the same data would fail the same way; the planner makes a new
task when more data arrives). A worker that dies mid-training loses its job's lease: the job
runs again (up to ``TRAIN_MAX_ATTEMPTS`` attempts) and the new attempt takes over the *same*
task row. A job past its timeout (= ``limit_time``) is failed and interrupted by its worker.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from learnhub.continuous.models import Model, _statuses
from learnhub.errors import InvalidInput
from learnhub.jobs.model import Job, JobTimeout, PermanentError
from learnhub.jobs.queue import TaskDef
from learnhub.jobs.worker import JobContext
from learnhub.store import Tx

if TYPE_CHECKING:
    from learnhub.hub import Hub

SCRATCH, FINETUNE = "scratch", "finetune"
TRAIN_TASK = "learnhub.train"
PLAN_TASK = "learnhub.train.plan"
PLAN_QUEUE = "learnhub"  # hub.BUILTIN_QUEUE: every hub's worker can plan (see TrainerConfig)
QUEUES = {SCRATCH: "train.scratch", FINETUNE: "train.finetune"}
QUEUED, DONE, FAILED, DEAD = "queued", "done", "failed", "dead"
RESERVED_STATUSES = (QUEUED, DONE, FAILED, DEAD)
# A worker dying mid-training costs an attempt; a raising training function fails at once.
TRAIN_MAX_ATTEMPTS = 3
INFERENCE_COLUMN = "model_version"
_LOADED_MODELS = 8  # unpickled models kept for inference, newest used

F = TypeVar("F", bound=Callable[..., Any])


class TaskStopped(PermanentError):  # noqa: N818 - what happened, like PermanentError
    """Raised in a training function whose task is no longer running (marked dead by the
    planner, past ``limit_time``): stop; its model would not be kept."""


@dataclass(frozen=True)
class TrainerConfig:
    """The settings of ``@hub.trainer``; the planner needs nothing else, so its scheduled job
    carries them and a worker without the app's code can plan too."""

    min_start_count: int = 1000
    min_update_count: int = 200
    limit_s: float = 1800.0
    working_status: tuple[str, ...] = ("training",)
    plan_every_s: float = 60.0

    def args(self) -> dict[str, Any]:
        return {**asdict(self), "working_status": list(self.working_status)}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> TrainerConfig:
        return make_config(
            args["min_start_count"],
            args["min_update_count"],
            args["limit_s"],
            args["working_status"],
            args["plan_every_s"],
        )


def make_config(
    min_start_count: int,
    min_update_count: int,
    limit_time: float | str | timedelta,
    working_status: str | Iterable[str],
    plan_every: float | str | timedelta,
) -> TrainerConfig:
    for name, value in (
        ("min_start_count", min_start_count),
        ("min_update_count", min_update_count),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be an integer >= 0, got {value!r}")
    working = tuple(_statuses(working_status))
    reserved = sorted(set(working) & set(RESERVED_STATUSES))
    if reserved:
        raise InvalidInput(
            f"working_status may not use {', '.join(map(repr, reserved))}: learnhub sets "
            f"{', '.join(RESERVED_STATUSES)} itself; name your working statuses otherwise"
        )
    return TrainerConfig(
        min_start_count,
        min_update_count,
        duration_s(limit_time, "limit_time"),
        working,
        duration_s(plan_every, "plan_every"),
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def duration_s(value: float | str | timedelta, what: str) -> float:
    """Seconds from a number of seconds, a timedelta or text such as '90s', '30m', '2h'."""
    seconds = math.nan
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m[1]) * _UNITS[m[2]]
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInput(
            f"{what} must be a positive duration: seconds, a timedelta or text like "
            f"'90s', '30m', '2h', got {value!r}"
        )
    return seconds


@dataclass(frozen=True)
class TrainTask:
    """One training run of a batch (a ``train_tasks`` row)."""

    id: int
    batch: str
    mode: str
    status: str
    job_id: int | None
    base_model_id: int | None
    since_ts: int | None
    model_id: int | None
    error: str | None
    traceback: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Decision:
    """What the planner did about a batch. ``action``: 'scratch' or 'finetune' (a task and
    its job were created), 'dead' (a task past limit_time), 'failed' (a task whose job ended
    without finishing it), 'busy' (a live task: skipped), 'wait' (not enough new samples)."""

    batch: str
    action: str
    reason: str
    samples: int | None = None
    task_id: int | None = None
    job_id: int | None = None


class TrainContext:
    """What a training function gets: ``batch``, ``mode`` ('scratch' | 'finetune'),
    ``base_model`` (fine-tune: the model to improve), ``since`` (fine-tune: the first ts newer
    than the base model's data; scratch: None), ``train()``/``validation()`` (its samples,
    ``since`` on, up to the newest when the task started), ``set_status``, ``save_model``,
    ``job`` and ``hub``."""

    def __init__(
        self, hub: Hub, task: TrainTask, job: Job, base_model: Model | None, until: int | None
    ) -> None:
        config = hub.continuous.config
        assert config is not None
        self.hub = hub
        self.job = job
        self.task_id = task.id
        self.batch = task.batch
        self.mode = task.mode
        self.base_model = base_model
        self.since = task.since_ts
        self.until = until
        self.model: Model | None = None  # the last one save_model saved
        self._working = config.working_status
        self._tables: dict[str, pa.Table] = {}
        self._first: int | None = None
        self._last: int | None = None

    def train(self) -> pa.Table:
        return self._read("train")

    def validation(self) -> pa.Table:
        return self._read("validation")

    def _read(self, split: str) -> pa.Table:
        if split not in self._tables:
            table = self.hub.samples.read(
                self.batch, split=split, since=self.since, until=self.until
            )
            if table.num_rows:
                lo, hi = (v.as_py() for v in pc.min_max(table.column("ts")).values())
                self._first = lo if self._first is None else min(self._first, lo)
                self._last = hi if self._last is None else max(self._last, hi)
            self._tables[split] = table
        return self._tables[split]

    def set_status(self, status: str) -> None:
        """Report progress with one of the trainer's working statuses."""
        if status not in self._working:
            raise InvalidInput(
                f"status {status!r} is not one of the trainer's working_status "
                f"{list(self._working)}; add it there (learnhub sets the final statuses)"
            )
        with self.hub.store.transaction() as tx:
            row = tx.one(
                "set_train_task_status",
                id=self.task_id,
                status=status,
                working=json.dumps(list(self._working)),
            )
        if row is None:
            raise TaskStopped(self._stopped())

    def save_model(
        self, blob_or_object: Any, metrics: Mapping[str, Any] | None = None, status: str = "ready"
    ) -> Model:
        """Save the trained model (bytes, or an object to pickle) with this task's mode and
        the ts range of the samples read (without reads: since .. the newest at the start)."""
        with self.hub.store.transaction(readonly=True) as tx:
            row = tx.one("get_train_task", id=self.task_id)
        if row is None or row["status"] not in self._working:
            raise TaskStopped(self._stopped())
        self.model = self.hub.models.save(
            self.batch,
            blob_or_object,
            metrics,
            status,
            mode=self.mode,
            data_from_ts=self._first if self._first is not None else self.since,
            data_to_ts=self._last if self._last is not None else self.until,
            task_id=self.task_id,
        )
        return self.model

    def _stopped(self) -> str:
        task = self.hub.continuous.task(self.task_id)
        state = f"{task.status}: {task.error}" if task else "gone"
        return f"train task {self.task_id} of batch {self.batch!r} is no longer running ({state})"


class Continuous:
    """``hub.continuous``: the trainer, the planner, training tasks and inference."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.fn: Callable[[TrainContext], Any] | None = None
        self.config: TrainerConfig | None = None
        self._loaded: dict[int, Any] = {}  # model id -> unpickled model, for inference
        self._lock = threading.Lock()
        hub.jobs.register(TaskDef(PLAN_TASK, self._plan_job, queue=PLAN_QUEUE, max_attempts=1))

    # --- the trainer ------------------------------------------------------------------

    def trainer(
        self,
        min_start_count: int = 1000,
        min_update_count: int = 200,
        limit_time: float | str | timedelta = "30m",
        working_status: str | Iterable[str] = ("training",),
        plan_every: float | str | timedelta = "60s",
    ) -> Callable[[F], F]:
        """Register the training function ``fn(ctx: TrainContext)``: a batch with no model and
        more than ``min_start_count`` samples is trained from scratch; one with a model and
        more than ``min_update_count`` samples newer than that model's data is fine-tuned.
        A run still in a ``working_status`` past ``limit_time`` is dead (and its job
        stopped). Workers of this hub plan every ``plan_every``.

        One trainer per hub: registering another replaces it."""
        config = make_config(
            min_start_count, min_update_count, limit_time, working_status, plan_every
        )

        def register(fn: F) -> F:
            if not callable(fn):
                raise InvalidInput(f"@hub.trainer decorates a function, not {fn!r}")
            self.fn, self.config = fn, config
            self.hub.jobs.register(
                TaskDef(
                    TRAIN_TASK,
                    self._train_job,
                    queue=QUEUES[SCRATCH],
                    max_attempts=TRAIN_MAX_ATTEMPTS,
                    timeout=config.limit_s,
                )
            )
            return fn

        return register

    def schedule(self) -> None:
        """Keep the planner's schedule, with this trainer's settings (Hub.worker() calls it)."""
        if self.config is not None:
            self.hub.jobs.every(
                PLAN_TASK, seconds=self.config.plan_every_s, args=self.config.args()
            )

    # --- the planner ------------------------------------------------------------------

    def plan(self, config: TrainerConfig | None = None) -> list[Decision]:
        """Plan now: mark tasks past their time limit dead, skip batches with a live task,
        enqueue scratch and fine-tune jobs where enough samples arrived. ``config``: this
        hub's trainer's, else the one its workers last scheduled."""
        config = config or self.config or self._scheduled_config()
        if config is None:
            raise InvalidInput(
                "no trainer to plan for: register one with @hub.trainer (on the CLI: --app "
                "MODULE:HUB), or run a worker of such a hub once so its schedule is stored"
            )
        decisions = self._clean(config)
        live = {t.batch: t for t in self._tasks_in([QUEUED, *config.working_status])}
        for info in self.hub.samples.batches(kind="training"):
            task = live.get(info.name)
            if task is not None:
                reason = f"task {task.id} is {task.status}"
                decisions.append(Decision(info.name, "busy", reason, task_id=task.id))
            else:
                decisions.append(self._decide(info.name, info.rows, config))
        return decisions

    def _decide(self, batch: str, rows: int, config: TrainerConfig) -> Decision:
        model = self.hub.models.latest(batch, status=None)
        if model is None:
            if rows > config.min_start_count:
                return self._create(batch, SCRATCH, None, None, rows, config)
            need = f"scratch training needs more than {config.min_start_count}"
            return Decision(batch, "wait", f"{rows} samples and no model; {need}", rows)
        # A model saved by hand without its data range: the samples that arrived after it.
        since = model.data_to_ts + 1 if model.data_to_ts is not None else model.created_ns
        new = self.hub.samples.count(batch, since=since)
        if new > config.min_update_count:
            return self._create(batch, FINETUNE, model, since, new, config)
        need = f"fine-tuning needs more than {config.min_update_count}"
        return Decision(batch, "wait", f"{new} samples newer than model {model.id}; {need}", new)

    def _create(
        self,
        batch: str,
        mode: str,
        base: Model | None,
        since: int | None,
        samples: int,
        config: TrainerConfig,
    ) -> Decision:
        """The task and its job in one transaction, which re-checks what the decision was
        based on. Two planners at once: on SQLite their transactions run one after the
        other; on PostgreSQL the second one's job insert waits on the first's dedupe key,
        then sees its job (or, once that job ended, its model) and rolls back."""
        jobs = self.hub.jobs
        now = time.time_ns()
        try:
            with self.hub.store.transaction() as tx:
                other = self._live_task(tx, batch, config)
                if other is not None:
                    raise _Raced(f"task {other['id']} is {other['status']}")
                latest = self.hub.models.latest_in(tx, batch, None)
                if latest is not None and (base is None or latest.id != base.id):
                    raise _Raced(f"model {latest.id} was saved meanwhile")
                row = tx.one(
                    "insert_train_task",
                    batch=batch,
                    mode=mode,
                    status=QUEUED,
                    base_model_id=base.id if base else None,
                    since_ts=since,
                    created_ns=now,
                )
                assert row is not None
                task_id = row["id"]
                spec = jobs._spec(
                    TRAIN_TASK,
                    {"task_id": task_id},
                    queue=QUEUES[mode],
                    timeout=config.limit_s,
                    max_attempts=TRAIN_MAX_ATTEMPTS,
                    dedupe_key=f"train:{batch}",
                )
                job = jobs._insert(tx, spec, f"{TRAIN_TASK}-{secrets.token_hex(4)}", now)
                job_id = job["id"]
                if json.loads(job["args"]).get("task_id") != task_id:
                    raise _Raced(f"job {job_id} holds train:{batch}")
                tx.execute("set_train_task_job", id=task_id, job_id=job_id)
        except _Raced as raced:
            return Decision(batch, "busy", f"another planner was first: {raced}", samples)
        jobs._wake()
        what = "no model" if base is None else f"newer than model {base.id}"
        reason = f"{samples} samples ({what}): task {task_id}, job {job_id} on {QUEUES[mode]}"
        return Decision(batch, mode, reason, samples, task_id, job_id)

    def _clean(self, config: TrainerConfig) -> list[Decision]:
        """Tasks still working past limit_time: dead, their jobs cancelled. Live tasks whose
        job ended without finishing them (e.g. no worker had the trainer): failed."""
        decisions = []
        now = time.time()
        for task in self._tasks_in([QUEUED, *config.working_status]):
            job = self.hub.jobs.get(task.job_id) if task.job_id is not None else None
            age = None if task.started_at is None else now - task.started_at.timestamp()
            if task.status in config.working_status and age is not None and age > config.limit_s:
                error = (
                    f"still {task.status!r} {age:.1f}s after it started; limit_time is "
                    f"{config.limit_s:g}s (hung, or its worker died)"
                )
                if self._finish(task.id, DEAD, config, error=error):
                    if task.job_id is not None:
                        self.hub.jobs.cancel(task.job_id)
                    decisions.append(
                        Decision(task.batch, "dead", error, None, task.id, task.job_id)
                    )
            elif job is not None and job.done:
                error = f"its job {job.id} {job.state} without finishing it: {job.error}"
                if self._finish(task.id, FAILED, config, error=error):
                    decisions.append(Decision(task.batch, FAILED, error, None, task.id, job.id))
        return decisions

    def _plan_job(self, ctx: JobContext, **args: Any) -> dict[str, int]:
        decisions = self.plan(TrainerConfig.from_args(args) if args else None)
        counts: dict[str, int] = {}
        for d in decisions:
            counts[d.action] = counts.get(d.action, 0) + 1
        return counts

    def _scheduled_config(self) -> TrainerConfig | None:
        for schedule in self.hub.jobs.schedules():
            if schedule["name"] == PLAN_TASK:
                return TrainerConfig.from_args(json.loads(schedule["args"]))
        return None

    # --- running a task ---------------------------------------------------------------

    def _train_job(self, ctx: JobContext, task_id: int) -> dict[str, Any]:
        fn, config = self.fn, self.config
        if fn is None or config is None:
            raise PermanentError("this worker's hub has no trainer: register one with @hub.trainer")
        working = list(config.working_status)
        with self.hub.store.transaction() as tx:
            started = tx.one(
                "start_train_task",
                id=task_id,
                status=working[0],
                now_ns=time.time_ns(),
                resumable=json.dumps([QUEUED, *working]),
            )
            row = tx.one("get_train_task", id=task_id)
        if row is None:
            raise PermanentError(f"there is no train task {task_id}")
        task = _task(row)
        if started is None:  # dead or finished meanwhile: nothing to do
            return {"task_id": task_id, "skipped": f"the task is {task.status}"}
        # A worker that died between saving this task's model and finishing the task.
        saved = [m for m in self.hub.models.list(task.batch) if m.task_id == task_id]
        if saved:
            self._finish(task_id, DONE, config, model_id=saved[-1].id)
            return {"task_id": task_id, "model_id": saved[-1].id}
        base = None if task.base_model_id is None else self.hub.models.get(task.base_model_id)
        until = self.hub.samples.last_ts(task.batch)
        tctx = TrainContext(self.hub, task, ctx.job, base, until)
        try:
            fn(tctx)
        except JobTimeout:
            self._finish(
                task_id, DEAD, config, error=f"timed out after limit_time {config.limit_s:g}s"
            )
            raise
        except TaskStopped:
            raise
        except Exception as exc:
            error = _describe(exc)
            self._finish(task_id, FAILED, config, error=error, traceback=traceback.format_exc())
            raise PermanentError(
                f"training batch {task.batch!r} (task {task_id}) failed: {error}"
            ) from exc
        model_id = tctx.model.id if tctx.model else None
        if not self._finish(task_id, DONE, config, model_id=model_id):
            raise TaskStopped(tctx._stopped())
        return {"task_id": task_id, "model_id": model_id}

    def _finish(
        self,
        task_id: int,
        status: str,
        config: TrainerConfig,
        *,
        model_id: int | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        """End a live task; False if it was no longer live."""
        with self.hub.store.transaction() as tx:
            row = tx.one(
                "finish_train_task",
                id=task_id,
                status=status,
                model_id=model_id,
                error=error,
                traceback=traceback,
                now_ns=time.time_ns(),
                working=json.dumps([QUEUED, *config.working_status]),
            )
        return row is not None

    # --- tasks ------------------------------------------------------------------------

    def tasks(self, batch: str | None = None) -> list[TrainTask]:
        """The training tasks of ``batch`` (None: of every batch), oldest first."""
        names = [batch] if batch is not None else [b.name for b in self.hub.samples.batches()]
        with self.hub.store.transaction(readonly=True) as tx:
            rows = [r for name in names for r in tx.all("batch_train_tasks", batch=name)]
        return sorted((_task(r) for r in rows), key=lambda t: t.id)

    def task(self, task_id: int) -> TrainTask | None:
        with self.hub.store.transaction(readonly=True) as tx:
            row = tx.one("get_train_task", id=task_id)
        return None if row is None else _task(row)

    def _tasks_in(self, statuses: list[str]) -> list[TrainTask]:
        with self.hub.store.transaction(readonly=True) as tx:
            return [_task(r) for r in tx.all("tasks_in_status", statuses=json.dumps(statuses))]

    def _live_task(self, tx: Tx, batch: str, config: TrainerConfig) -> dict[str, Any] | None:
        live = {QUEUED, *config.working_status}
        rows = [r for r in tx.all("batch_train_tasks", batch=batch) if r["status"] in live]
        return rows[-1] if rows else None

    # --- inference --------------------------------------------------------------------

    def infer(
        self,
        batch: str,
        rows: Any,
        fn: Callable[[Any, Any], Any],
        available_status: str | Iterable[str] = ("ready",),
    ) -> pa.Table:
        """Run ``fn(rows, model)`` with the newest model of ``batch`` whose status is in
        ``available_status``; store its outputs as inference samples of ``batch`` (a column
        ``model_version``: the model's id) and return them with their ``ts``.

        ``fn`` may return a DataFrame, a pyarrow Table, a dict of columns, a list of dicts or
        a 1-D array (the column ``prediction``). Call it with different ``available_status``
        sets to combine inference processes (e.g. 'ready' and 'canary' models)."""
        statuses = _statuses(available_status)
        if not callable(fn):
            raise InvalidInput(f"fn must be a function fn(rows, model), not {fn!r}")
        model = self.hub.models.latest(batch, statuses)
        if model is None:
            have = sorted({m.status for m in self.hub.models.list(batch)})
            found = (
                f"its models' statuses are {', '.join(map(repr, have))}"
                if have
                else "it has no model yet (train one with @hub.trainer, or hub.models.save)"
            )
            raise InvalidInput(f"batch {batch!r} has no model with status in {statuses}: {found}")
        outputs = _outputs_table(fn(rows, self._load(model)))
        if INFERENCE_COLUMN in outputs.column_names:
            raise InvalidInput(
                f"the outputs of fn have a column {INFERENCE_COLUMN!r}; learnhub adds it "
                "(the model's id): rename yours"
            )
        outputs = outputs.append_column(
            INFERENCE_COLUMN, pa.array(np.full(outputs.num_rows, model.id, dtype=np.int64))
        )
        added = self.hub.samples.add(batch, outputs, kind="inference")
        if "ts" not in outputs.column_names:
            ts = np.arange(added.first_ts, added.last_ts + 1, dtype=np.int64)
            outputs = outputs.add_column(0, "ts", pa.array(ts))
        return outputs

    def _load(self, model: Model) -> Any:
        with self._lock:
            if model.id in self._loaded:
                return self._loaded[model.id]
        loaded = model.load()
        with self._lock:
            self._loaded[model.id] = loaded
            while len(self._loaded) > _LOADED_MODELS:
                del self._loaded[next(iter(self._loaded))]
        return loaded


class _Raced(Exception):
    """Rolls back a task another planner made unnecessary."""


def _outputs_table(out: Any) -> pa.Table:
    """An inference function's outputs as a table."""
    try:
        if isinstance(out, pa.Table):
            return out
        if isinstance(out, pa.RecordBatch):
            return pa.Table.from_batches([out])
        if type(out).__name__ == "DataFrame" and hasattr(out, "columns"):  # pandas
            return pa.Table.from_pandas(out, preserve_index=False)
        if isinstance(out, Mapping):
            return pa.table({str(k): np.asarray(v) for k, v in out.items()})
        if isinstance(out, list) and out and all(isinstance(r, Mapping) for r in out):
            return pa.Table.from_pylist(out)
        array = np.asarray(out)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InvalidInput(f"the outputs of fn cannot be made a table: {exc}") from None
    if array.ndim != 1 or array.dtype == object:
        raise InvalidInput(
            f"fn returned {type(out).__name__} of shape {array.shape}: return a DataFrame, a "
            "pyarrow Table, a dict of columns, a list of dicts or a 1-D array of predictions"
        )
    return pa.table({"prediction": array})


def _task(row: dict[str, Any]) -> TrainTask:
    def time_(ns: int | None) -> datetime | None:
        return None if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC)

    return TrainTask(
        id=row["id"],
        batch=row["batch"],
        mode=row["mode"],
        status=row["status"],
        job_id=row["job_id"],
        base_model_id=row["base_model_id"],
        since_ts=row["since_ts"],
        model_id=row["model_id"],
        error=row["error"],
        traceback=row["traceback"],
        created_at=time_(row["created_ns"]),  # type: ignore[arg-type]
        started_at=time_(row["started_ns"]),
        finished_at=time_(row["finished_ns"]),
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
