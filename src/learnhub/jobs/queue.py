"""``hub.jobs``: enqueue jobs and flows, watch and steer them. Workers live in worker.py.

Every state change happens in one transaction with what it implies: a finished job
releases the jobs that wait on it (or cancels them, transitively) in the same commit, so a
crash never leaves a flow half-updated.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cronsim import CronSim, CronSimError

from learnhub.errors import InvalidInput, WaitTimeout
from learnhub.jobs.model import CANCELLED, FINAL, QUEUED, STATES, SUCCEEDED, WAITING, Job
from learnhub.jobs.model import job_from_row as _job
from learnhub.store import Store, Tx

DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 100
DEFAULT_MAX_ATTEMPTS = 3
EDGE_POLICIES = ("cancel", "ignore")
MAX_BACKOFF_S = 600.0
FALLBACK_POLL_S = 1.0


@dataclass(frozen=True)
class TaskDef:
    """A task registered with ``@hub.task``: the function and its job defaults."""

    name: str
    fn: Callable[..., Any]
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    retry_delay: float = 1.0

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: exponential, with jitter so that jobs
        failing together do not retry together."""
        return min(self.retry_delay * 2 ** (attempts - 1), MAX_BACKOFF_S) * random.uniform(0.5, 1.5)


@dataclass
class _Spec:
    """A job to insert, validated."""

    task: str
    args: str
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    dedupe_key: str | None
    run_after_ns: int
    parents: list[tuple[int, str]] = field(default_factory=list)  # (job id, on_failure)


class Jobs:
    def __init__(self, store: Store, poll_interval: float = 0.05) -> None:
        self._store = store
        # With notifications, polling only backs them up (e.g. while the listener reconnects).
        self.poll_interval = FALLBACK_POLL_S if store.notifies else poll_interval
        self.tasks: dict[str, TaskDef] = {}
        # Workers and waiters of this process are woken at once by a change; other
        # processes poll, or on PostgreSQL hear a NOTIFY.
        self._subscribers: set[threading.Event] = set()
        self._lock = threading.Lock()
        self._listening = False

    # --- tasks ------------------------------------------------------------------------

    def register(self, task: TaskDef) -> None:
        if not task.name or not isinstance(task.name, str):
            raise InvalidInput("a task needs a non-empty name")
        _check_options(task.queue, task.priority, task.max_attempts, task.timeout)
        self.tasks[task.name] = task

    # --- producing --------------------------------------------------------------------

    def enqueue(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        after: Iterable[int | Job] = (),
        on_parent_failure: str = "cancel",
        **options: Any,
    ) -> Job:
        """Add a job; it runs once every job in ``after`` has finished.

        ``options``: queue, priority, max_attempts, timeout, dedupe_key, run_after (a datetime
        or seconds from now). A live job with the same dedupe_key is returned instead.
        """
        spec = self._spec(task, args, **options)
        policy = _policy(on_parent_failure)  # checked even when there is no parent
        spec.parents = [(_job_id(p), policy) for p in after]
        now = time.time_ns()
        with self._store.transaction() as tx:
            job = _job(self._insert(tx, spec, f"{task}-{secrets.token_hex(4)}", now))
        self._wake()
        return job

    def enqueue_many(
        self,
        task: str,
        args_list: Iterable[Mapping[str, Any] | None],
        *,
        after: Iterable[int | Job] = (),
        on_parent_failure: str = "cancel",
        **options: Any,
    ) -> list[Job]:
        """Add one job of ``task`` per args, in one transaction: all or none, and much faster
        than a loop of ``enqueue``. Options as for ``enqueue``, the same for every job."""
        policy = _policy(on_parent_failure)
        parents = [(_job_id(p), policy) for p in after]
        specs = []
        for args in args_list:
            spec = self._spec(task, args, **options)
            spec.parents = list(parents)
            specs.append(spec)
        if not specs:
            return []
        now = time.time_ns()
        with self._store.transaction() as tx:
            if parents or specs[0].dedupe_key is not None:
                rows = [
                    self._insert(tx, spec, f"{task}-{secrets.token_hex(4)}", now, notify=False)
                    for spec in specs
                ]
            else:  # the common case, in one statement
                rows = sorted(
                    tx.all("insert_jobs", jobs=_json_rows(specs, task), now_ns=now),
                    key=lambda r: r["id"],
                )
            tx.execute("notify_jobs", queue=specs[0].queue)
        self._wake()
        return [_job(r) for r in rows]

    def flow(self, name: str, priority: int | None = None) -> Flow:
        """Start building a flow: jobs that share a flow id and start time, submitted at once."""
        return Flow(self, name, priority)

    # --- inspecting and steering ------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("get_job", id=job_id)
        return None if row is None else _job(row)

    def list(
        self,
        state: str | None = None,
        queue: str | None = None,
        flow: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first, filtered by state, queue and flow id."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"unknown state {state!r}; states are {', '.join(STATES)}")
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all("list_jobs", state=state, queue=queue, flow_id=flow, limit=limit)
        return [_job(r) for r in rows]

    def edges(self, flow: str) -> list[tuple[int, int, str]]:
        """(parent id, child id, on_failure) of every dependency in a flow."""
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all("flow_edges", flow_id=flow)
        return [(r["parent_id"], r["child_id"], r["on_failure"]) for r in rows]

    def stats(self) -> dict[str, dict[str, int]]:
        """How many jobs each queue has in each state."""
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all("job_stats")
        stats: dict[str, dict[str, int]] = {}
        for r in rows:
            stats.setdefault(r["queue"], dict.fromkeys(STATES, 0))[r["state"]] = r["n"]
        return stats

    def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not finished, and what depends on it; False if it had."""
        with self._store.transaction() as tx:
            row = tx.one("cancel_job", id=job_id, error="cancelled", now_ns=time.time_ns())
            if row is None:
                self._require(tx, job_id)
                return False
            self._settle(tx, job_id, row["task"], CANCELLED)
        self._wake()
        return True

    def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again, with fresh attempts; the jobs its failure
        cancelled wait for it again. False if the job had not failed."""
        now = time.time_ns()
        with self._store.transaction() as tx:
            if tx.one("retry_job", id=job_id, now_ns=now) is None:
                self._require(tx, job_id)
                return False
            blocker = self._failed_parent(tx, job_id)
            if blocker is not None:  # it would wait forever: nothing would release it
                raise InvalidInput(
                    f"job {job_id} depends on job {blocker['id']}, which {blocker['state']}; "
                    "retry that one (its dependents are revived with it)"
                )
            revived = tx.all("revive_cancelled", prefix=f"upstream failed: job {job_id} (%")
            for row in revived:
                # Another of its parents also failed: it stays cancelled, and so does what
                # depends on it.
                parent = self._failed_parent(tx, row["id"])
                if parent is None:
                    continue
                error = f"{_upstream(parent['id'], parent['task'])} {parent['state']}"
                if tx.one("cancel_job", id=row["id"], error=error, now_ns=now):
                    self._settle(tx, row["id"], row["task"], CANCELLED, error)
            tx.execute("notify_jobs", queue="")
        self._wake()
        return True

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """Block until the job is final and return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = threading.Event()
        self._subscribe(changed)
        try:
            while True:
                changed.clear()
                job = self.get(job_id)
                if job is None:
                    raise InvalidInput(f"there is no job {job_id}")
                if job.done:
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout}s")
                changed.wait(self.poll_interval if left is None else min(left, self.poll_interval))
        finally:
            self._unsubscribe(changed)

    def prune(self, older_than_days: float) -> int:
        """Delete succeeded jobs that finished more than ``older_than_days`` ago."""
        before = time.time_ns() - int(older_than_days * 86400 * 1e9)
        with self._store.transaction() as tx:
            return tx.execute("prune_jobs", before_ns=before)

    # --- schedules --------------------------------------------------------------------

    def every(
        self,
        task: str,
        seconds: float | None = None,
        *,
        cron: str | None = None,
        args: Mapping[str, Any] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        """Enqueue ``task`` every ``seconds``, or at the times of a ``cron`` expression.

        Idempotent by ``name`` (default: the task's): calling it again at every start keeps
        the schedule's next tick. When many hubs share the database, one of them enqueues
        each tick.
        """
        if (seconds is None) == (cron is None):
            raise InvalidInput("give a schedule either seconds=... or cron='...', not both")
        if seconds is not None and not (isinstance(seconds, int | float) and seconds > 0):
            raise InvalidInput(f"seconds must be a positive number, got {seconds!r}")
        spec = self._spec(task, args, **options)
        now = time.time_ns()
        with self._store.transaction() as tx:
            tx.execute(
                "upsert_schedule",
                name=name or task,
                task=task,
                args=spec.args,
                queue=spec.queue,
                priority=spec.priority,
                every_s=seconds,
                cron=cron,
                next_ns=_next_tick(seconds, cron, now),
            )

    def schedules(self) -> list[dict[str, Any]]:
        with self._store.transaction(readonly=True) as tx:
            return tx.all("list_schedules")

    def tick(self) -> int:
        """Enqueue the jobs of schedules that are due; return how many."""
        now = time.time_ns()
        enqueued = 0
        with self._store.transaction() as tx:
            for s in tx.all("due_schedules", now_ns=now):
                new_next = _next_tick(s["every_s"], s["cron"], now, after=s["next_ns"])
                moved = tx.one(
                    "advance_schedule",
                    name=s["name"],
                    old_next_ns=s["next_ns"],
                    new_next_ns=new_next,
                )
                if moved is None:
                    continue  # another hub took this tick
                spec = self._spec(
                    s["task"], json.loads(s["args"]), queue=s["queue"], priority=s["priority"]
                )
                self._insert(tx, spec, f"{s['name']}-{secrets.token_hex(4)}", now)
                enqueued += 1
        if enqueued:
            self._wake()
        return enqueued

    # --- internals shared with workers --------------------------------------------------

    def _spec(
        self,
        task: str,
        args: Mapping[str, Any] | None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        dedupe_key: str | None = None,
        run_after: datetime | float | None = None,
    ) -> _Spec:
        if not isinstance(task, str) or not task:
            raise InvalidInput(f"task must be a non-empty name, got {task!r}")
        known = self.tasks.get(task)
        if queue is None:  # an empty name is an error, not the default queue
            queue = known.queue if known else DEFAULT_QUEUE
        priority = (known.priority if known else DEFAULT_PRIORITY) if priority is None else priority
        if max_attempts is None:
            max_attempts = known.max_attempts if known else DEFAULT_MAX_ATTEMPTS
        timeout = (known.timeout if known else None) if timeout is None else timeout
        _check_options(queue, priority, max_attempts, timeout)
        if args is not None and not isinstance(args, Mapping):
            raise InvalidInput(
                f"args must be a dict of keyword arguments, not {type(args).__name__}"
            )
        try:
            args_json = json.dumps(dict(args or {}), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"args of {task!r} must be JSON: {exc}") from None
        if dedupe_key is not None and not isinstance(dedupe_key, str):
            raise InvalidInput(f"dedupe_key must be a string, got {dedupe_key!r}")
        return _Spec(
            task,
            args_json,
            queue,
            priority,
            max_attempts,
            timeout,
            dedupe_key,
            _run_after_ns(run_after),
        )

    def _insert(
        self, tx: Tx, spec: _Spec, flow_id: str, flow_started_ns: int, notify: bool = True
    ) -> dict[str, Any]:
        """Insert one job and its edges; return its row (an existing job's on a dedupe hit).
        ``notify=False``: the caller notifies the queue once for many jobs."""
        parents = {}
        ids = [p for p, _ in spec.parents]
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        if twice:
            raise InvalidInput(
                f"job(s) {', '.join(map(str, twice))} listed more than once as a parent"
            )
        if ids:
            parents = {r["id"]: r for r in tx.all("jobs_by_ids", ids=json.dumps(ids))}
            missing = sorted(set(ids) - set(parents))
            if missing:
                raise InvalidInput(
                    f"cannot wait on job(s) {', '.join(map(str, missing))}: no such job"
                )
        waiting_on = 0
        error = None
        for parent_id, on_failure in spec.parents:
            state = parents[parent_id]["state"]
            if state not in FINAL:
                waiting_on += 1
            elif state != SUCCEEDED and on_failure == "cancel" and error is None:
                error = _upstream(parent_id, parents[parent_id]["task"]) + f" {state}"
        state = CANCELLED if error else (WAITING if waiting_on else QUEUED)
        now = time.time_ns()
        row = tx.one(
            "insert_job",
            queue=spec.queue,
            task=spec.task,
            args=spec.args,
            priority=spec.priority,
            flow_id=flow_id,
            flow_started_ns=flow_started_ns,
            state=state,
            waiting_on=waiting_on,
            max_attempts=spec.max_attempts,
            run_after_ns=spec.run_after_ns,
            timeout_s=spec.timeout,
            dedupe_key=spec.dedupe_key,
            error=error,
            created_ns=now,
            finished_ns=now if error else None,
        )
        if row is None:  # a live job holds this dedupe key
            existing = tx.one("live_job_by_dedupe_key", dedupe_key=spec.dedupe_key)
            assert existing is not None
            return existing
        for parent_id, on_failure in spec.parents:
            tx.execute(
                "insert_edge", parent_id=parent_id, child_id=row["id"], on_failure=on_failure
            )
        if state == QUEUED and notify:
            tx.execute("notify_jobs", queue=spec.queue)
        return row

    def _settle(self, tx: Tx, job_id: int, task: str, state: str, error: str | None = None) -> None:
        """Job ``job_id`` became ``state``: release what waits on it, or, if it did not
        succeed, cancel what depends on it through 'cancel' edges, and so on down the graph."""
        error = error or f"{_upstream(job_id, task)} {state}"
        pending = [(job_id, state == SUCCEEDED)]
        now = time.time_ns()
        while pending:
            parent, parent_ok = pending.pop()
            for edge in tx.all("job_children", id=parent):
                child = edge["child_id"]
                if parent_ok or edge["on_failure"] == "ignore":
                    released = tx.one("release_child", id=child)
                    if released and released["state"] == QUEUED:
                        tx.execute("notify_jobs", queue=released["queue"])
                elif tx.one("cancel_job", id=child, error=error, now_ns=now):
                    pending.append((child, False))

    def _failed_parent(self, tx: Tx, job_id: int) -> dict[str, Any] | None:
        """A parent whose failure cancels job ``job_id`` (a 'cancel' edge), if there is one."""
        for edge in tx.all("job_parents", id=job_id):
            if edge["on_failure"] == "cancel":
                parent = tx.one("get_job", id=edge["parent_id"])
                if parent is not None and parent["state"] in FINAL - {SUCCEEDED}:
                    return parent
        return None

    def _require(self, tx: Tx, job_id: int) -> None:
        if tx.one("get_job", id=job_id) is None:
            raise InvalidInput(f"there is no job {job_id}")

    def _subscribe(self, event: threading.Event) -> None:
        """Set ``event`` whenever jobs change (here, or, on PostgreSQL, anywhere)."""
        with self._lock:
            if not self._listening:
                self._listening = True
                self._store.listen("learnhub_jobs", self._wake)
            self._subscribers.add(event)

    def _unsubscribe(self, event: threading.Event) -> None:
        with self._lock:
            self._subscribers.discard(event)

    def _wake(self, skip: threading.Event | None = None) -> None:
        """Wake every subscriber but ``skip`` (a worker need not wake itself)."""
        with self._lock:
            for event in self._subscribers:
                if event is not skip:
                    event.set()


class Flow:
    """Jobs submitted together: ``add`` them, then ``submit()`` inserts all in one
    transaction, with one flow id and start time so the flow's jobs run before newer flows'."""

    def __init__(self, jobs: Jobs, name: str, priority: int | None) -> None:
        if not name or not isinstance(name, str):
            raise InvalidInput("a flow needs a non-empty name")
        self._jobs = jobs
        self.name = name
        self.priority = priority
        self.nodes: list[FlowNode] = []
        self.id: str | None = None

    def add(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        after: Iterable[FlowNode | int | Job] = (),
        on_parent_failure: str = "cancel",
        **options: Any,
    ) -> FlowNode:
        if self.id is not None:
            raise InvalidInput(f"flow {self.id} is already submitted")
        options.setdefault("priority", self.priority)
        _policy(on_parent_failure)  # checked even when there is no parent
        node = FlowNode(self, len(self.nodes), self._jobs._spec(task, args, **options))
        self.nodes.append(node)
        for parent in after:
            self.link(parent, node, on_parent_failure)
        return node

    def link(
        self, parent: FlowNode | int | Job, child: FlowNode, on_failure: str = "cancel"
    ) -> None:
        """Make ``child`` wait for ``parent`` (a node of this flow or an existing job)."""
        if child.flow is not self or (isinstance(parent, FlowNode) and parent.flow is not self):
            raise InvalidInput("link nodes of this flow (or existing jobs as parents)")
        child.parents.append(
            (parent if isinstance(parent, FlowNode) else _job_id(parent), _policy(on_failure))
        )

    def submit(self) -> Flow:
        """Insert every job of the flow at once; node.id is then set."""
        if self.id is not None:
            raise InvalidInput(f"flow {self.id} is already submitted")
        if not self.nodes:
            raise InvalidInput(f"flow {self.name!r} has no jobs")
        order = _topological(self.nodes)
        flow_id = f"{self.name}-{secrets.token_hex(4)}"
        now = time.time_ns()
        with self._jobs._store.transaction() as tx:
            for node in order:
                node.spec.parents = [
                    (p.id if isinstance(p, FlowNode) else p, policy)  # type: ignore[misc]
                    for p, policy in node.parents
                ]
                node.id = self._jobs._insert(tx, node.spec, flow_id, now)["id"]
        self.id = flow_id
        self._jobs._wake()
        return self


@dataclass(eq=False)
class FlowNode:
    flow: Flow
    index: int
    spec: _Spec
    parents: list[tuple[FlowNode | int, str]] = field(default_factory=list)
    id: int | None = None

    def __repr__(self) -> str:
        return f"<FlowNode {self.index} {self.spec.task} id={self.id}>"


def _topological(nodes: list[FlowNode]) -> list[FlowNode]:
    """Nodes with every parent before its children, otherwise in the order they were added
    (so their ids, and their claim order, follow it); a cycle is an error naming it."""
    children: dict[int, list[FlowNode]] = {n.index: [] for n in nodes}
    blocking = {n.index: 0 for n in nodes}
    for node in nodes:
        for parent, _ in node.parents:
            if isinstance(parent, FlowNode):
                children[parent.index].append(node)
                blocking[node.index] += 1
    ready = [(n.index, n) for n in nodes if blocking[n.index] == 0]
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in children[node.index]:
            blocking[child.index] -= 1
            if blocking[child.index] == 0:
                heapq.heappush(ready, (child.index, child))
    if len(order) < len(nodes):
        stuck = [f"{n.spec.task}#{n.index}" for n in nodes if blocking[n.index]]
        raise InvalidInput(f"the flow has a cycle among: {', '.join(stuck)}; nothing was submitted")
    return order


def _json_rows(specs: list[_Spec], task: str) -> str:
    return json.dumps(
        [
            {
                "i": i,
                "queue": s.queue,
                "task": s.task,
                "args": s.args,
                "priority": s.priority,
                "flow_id": f"{task}-{secrets.token_hex(4)}",
                "max_attempts": s.max_attempts,
                "run_after_ns": s.run_after_ns,
                "timeout_s": s.timeout,
            }
            for i, s in enumerate(specs)
        ]
    )


def _upstream(job_id: int, task: str) -> str:
    return f"upstream failed: job {job_id} ({task})"


def _job_id(job: int | Job) -> int:
    if isinstance(job, Job):
        return job.id
    if isinstance(job, bool) or not isinstance(job, int):
        raise InvalidInput(f"after= takes jobs or job ids, not {job!r}")
    return job


def _policy(on_failure: str) -> str:
    if on_failure not in EDGE_POLICIES:
        raise InvalidInput(f"on_parent_failure must be 'cancel' or 'ignore', not {on_failure!r}")
    return on_failure


def _check_options(queue: Any, priority: Any, max_attempts: Any, timeout: Any) -> None:
    if not isinstance(queue, str) or not queue:
        raise InvalidInput(f"queue must be a non-empty name, got {queue!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidInput(f"priority must be an integer (smaller runs first), got {priority!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidInput(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}")


def _run_after_ns(run_after: datetime | float | None) -> int:
    now = time.time_ns()
    if run_after is None:
        return now
    if isinstance(run_after, datetime):
        if run_after.tzinfo is None:
            raise InvalidInput("run_after must be timezone-aware (e.g. datetime.now(UTC))")
        return int(run_after.timestamp() * 1e9)
    if isinstance(run_after, int | float) and not isinstance(run_after, bool) and run_after >= 0:
        return now + int(run_after * 1e9)
    raise InvalidInput(f"run_after must be a datetime or seconds from now, got {run_after!r}")


def _next_tick(
    every_s: float | None, cron: str | None, now_ns: int, after: int | None = None
) -> int:
    """The first tick after now; a schedule that fell behind skips ticks, never bursts."""
    if every_s is not None:
        step = int(every_s * 1e9)
        if after is None:
            return now_ns + step
        return after + step * max(1, (now_ns - after) // step + 1)
    assert cron is not None
    try:
        sim = CronSim(cron, datetime.fromtimestamp(now_ns / 1e9).astimezone())
        return int(next(sim).timestamp() * 1e9)
    except (CronSimError, StopIteration) as exc:
        raise InvalidInput(f"cron expression {cron!r} is not valid: {exc}") from None
