"""Workers: claim jobs, run their tasks on threads, record the outcomes.

One coordinator thread does all the queue's bookkeeping in batches (claim up to the free
slots in one transaction, finish everything that ended in one transaction, renew every lease
in one statement); task functions run on a pool of ``concurrency`` threads.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from learnhub.errors import InvalidInput
from learnhub.jobs.model import (
    FAILED,
    FINAL,
    SUCCEEDED,
    Job,
    JobTimeout,
    PermanentError,
    Retry,
    job_from_row,
)
from learnhub.jobs.queue import _job_id, _policy

if TYPE_CHECKING:
    from learnhub.hub import Hub

log = logging.getLogger("learnhub.jobs")
RETRY = "retry"
# How often the coordinator renews leases, reaps lost jobs and ticks schedules, at most.
MAINTENANCE_S = 1.0


class JobContext:
    """What a task function gets as its first argument."""

    def __init__(self, hub: Hub, job: Job, worker_id: str, lease: float) -> None:
        self.hub = hub
        self.job = job
        self._worker_id = worker_id
        self._lease = lease

    def spawn(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        before: Iterable[int | Job] = (),
        after: Iterable[int | Job] = (),
        on_failure: str = "cancel",
        **options: Any,
    ) -> Job:
        """Create a job in this job's flow (with this job's priority unless given); every
        job in ``before`` (not started yet) waits for it too. Both happen in one
        transaction: the fan-in that cannot miss a child."""
        jobs = self.hub.jobs
        options.setdefault("priority", self.job.priority)
        spec = jobs._spec(task, args, **options)
        spec.parents = [(_job_id(p), "cancel") for p in after]
        joins = [_job_id(j) for j in before]
        policy = _policy(on_failure)
        with self.hub.store.transaction() as tx:
            for join in joins:
                if tx.one("hold_join", id=join) is None:
                    raise InvalidInput(
                        f"cannot spawn before job {join}: it does not exist or has already "
                        "started; spawn before jobs that are still waiting"
                    )
            own = tx.one("get_job", id=self.job.id)
            assert own is not None
            row = jobs._insert(tx, spec, own["flow_id"], own["flow_started_ns"])
            for join in joins:
                tx.execute("insert_edge", parent_id=row["id"], child_id=join, on_failure=policy)
            if row["state"] in FINAL:  # e.g. born cancelled: settle the joins now
                jobs._settle(tx, row["id"], task, row["state"])
        jobs._wake()
        return job_from_row(row)

    def heartbeat(self) -> bool:
        """Renew this job's lease now; False if the job is no longer ours (cancelled, or
        its lease expired and it was given to another worker)."""
        with self.hub.store.transaction() as tx:
            row = tx.one(
                "renew_lease",
                id=self.job.id,
                worker_id=self._worker_id,
                lease_until_ns=time.time_ns() + int(self._lease * 1e9),
            )
        return row is not None


@dataclass
class _Running:
    job: Job
    deadline: float | None = None  # time.monotonic() past which the job has timed out
    thread_id: int | None = None  # set while the task function may be interrupted
    timed_out: bool = False


@dataclass
class _Outcome:
    job: Job
    state: str  # SUCCEEDED, FAILED or RETRY
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    delay: float = 0.0


class Worker:
    """Runs jobs from ``queues`` (all when None), ``concurrency`` at once, until stopped, or,
    with ``burst``, until no job is left for it. ``prefetch`` jobs more may be claimed ahead."""

    def __init__(
        self,
        hub: Hub,
        queues: Iterable[str] | None = None,
        concurrency: int = 4,
        burst: bool = False,
        lease: float = 30.0,
        prefetch: int = 0,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInput(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise InvalidInput(f"prefetch must be an integer >= 0, got {prefetch!r}")
        if not lease > 0:
            raise InvalidInput(f"lease must be a positive number of seconds, got {lease!r}")
        self.hub = hub
        self.queues = sorted(set(queues)) if queues else None
        self.concurrency = concurrency
        self.burst = burst
        self.lease = lease
        # Jobs claimed beyond the free threads, waiting in the pool: fewer, larger claims for
        # short jobs, at the price of strict priority order for that many jobs.
        self.prefetch = prefetch
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._running: dict[int, _Running] = {}
        self._done: queue.SimpleQueue[tuple[int, _Outcome]] = queue.SimpleQueue()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards _Running.thread_id against late interrupts

    def stop(self) -> None:
        """Finish the jobs that are running, claim no more, return from run()."""
        self._stopping.set()
        self._wakeup.set()

    def run(self) -> None:
        jobs = self.hub.jobs
        jobs._subscribe(self._wakeup)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="learnhub-job")
        log.info(
            "worker %s: queues %s, concurrency %d", self.id, self.queues or "all", self.concurrency
        )
        with self.hub.store.transaction() as tx:
            tx.execute("refresh_job_stats")
        next_maintenance = 0.0
        abandon = False
        try:
            while True:
                self._wakeup.clear()
                outcomes = self._collect()
                if time.monotonic() >= next_maintenance:
                    self._maintain()
                    next_maintenance = time.monotonic() + min(self.lease / 3, MAINTENANCE_S)
                self._enforce_timeouts()
                stopping = self._stopping.is_set()
                # Claims come in batches: once half the room is free, or at once when idle.
                room = self.concurrency + self.prefetch
                free = room - len(self._running)
                batch = not stopping and (not self._running or 2 * free >= room)
                claimed = self._exchange(outcomes, free if batch else 0)
                for job in claimed:
                    self._start(pool, job)
                if stopping:
                    if not self._running:
                        break
                    self._wakeup.wait(jobs.poll_interval)
                    continue
                if claimed:
                    continue
                pause = jobs.poll_interval
                if not self._running:
                    idle_for = self._idle_for()
                    if self.burst and idle_for is None:
                        break
                    pause = min(pause, idle_for or pause)
                self._wakeup.wait(pause)
        except BaseException:
            abandon = True  # e.g. a second Ctrl-C: leave running jobs to their leases
            raise
        finally:
            pool.shutdown(wait=not abandon, cancel_futures=True)
            if not abandon:
                self._record(self._collect())
            jobs._unsubscribe(self._wakeup)
            log.info("worker %s stopped", self.id)

    # --- coordinator steps ----------------------------------------------------------------

    def _exchange(self, outcomes: list[_Outcome], claim: int) -> list[Job]:
        """One transaction: record what ended, and claim up to ``claim`` jobs, best first."""
        if not outcomes and not claim:
            return []
        now = time.time_ns()
        with self.hub.store.transaction() as tx:
            self._write(tx, outcomes, now)
            rows = (
                tx.all(
                    "claim_jobs",
                    queues=None if self.queues is None else json.dumps(self.queues),
                    now_ns=now,
                    lease_until_ns=now + int(self.lease * 1e9),
                    worker_id=self.id,
                    limit=claim,
                )
                if claim
                else []
            )
        if outcomes:
            self.hub.jobs._wake(skip=self._wakeup)
        jobs = [job_from_row(r) for r in rows]
        return sorted(jobs, key=lambda j: (j.priority, j.flow_started_at, j.id))

    def _start(self, pool: ThreadPoolExecutor, job: Job) -> None:
        task = self.hub.jobs.tasks.get(job.task)
        if task is None:  # enqueued by name by a producer without the code: not retried
            known = ", ".join(sorted(self.hub.jobs.tasks)) or "none"
            error = (
                f"no task named {job.task!r} is registered in worker {self.id} "
                f"(registered: {known}); register it with @hub.task({job.task!r})"
            )
            self._record([_Outcome(job, FAILED, error=error)])
            return
        running = _Running(job)
        self._running[job.id] = running
        pool.submit(self._execute, running, task.fn, task.backoff)

    def _execute(self, running: _Running, fn: Any, backoff: Any) -> None:
        """Runs on a pool thread: the task function, and what its ending means."""
        job = running.job
        ctx = JobContext(self.hub, job, self.id, self.lease)
        try:
            try:
                with self._lock:
                    running.thread_id = threading.get_ident()
                    if job.timeout is not None:  # the clock starts now, not at the claim
                        running.deadline = time.monotonic() + job.timeout
                result = fn(ctx, **job.args)
            finally:
                with self._lock:
                    running.thread_id = None  # no interrupt may arrive after this
            outcome = _Outcome(job, SUCCEEDED, result=_result_json(result))
        except JobTimeout:
            outcome = _Outcome(job, FAILED, error=f"timed out after {job.timeout:g}s")
        except Retry as exc:
            outcome = self._failure(job, exc, exc.after)
        except PermanentError as exc:
            outcome = _Outcome(job, FAILED, error=_describe(exc), traceback=traceback.format_exc())
        except Exception as exc:
            outcome = self._failure(job, exc, backoff(job.attempts))
        self._done.put((job.id, outcome))
        self._wakeup.set()

    def _failure(self, job: Job, exc: BaseException, delay: float) -> _Outcome:
        state = RETRY if job.attempts < job.max_attempts else FAILED
        error = _describe(exc)
        if state == FAILED:
            error += f" (attempt {job.attempts} of {job.max_attempts})"
        return _Outcome(job, state, error=error, traceback=traceback.format_exc(), delay=delay)

    def _collect(self) -> list[_Outcome]:
        outcomes = []
        while True:
            try:
                job_id, outcome = self._done.get_nowait()
            except queue.Empty:
                return outcomes
            self._running.pop(job_id, None)
            outcomes.append(outcome)

    def _claim(self, limit: int) -> list[Job]:
        return self._exchange([], limit)

    def _record(self, outcomes: list[_Outcome]) -> None:
        self._exchange(outcomes, 0)

    def _write(self, tx: Any, outcomes: list[_Outcome], now: int) -> None:
        """Retries one by one, every final outcome in one statement, then what waits on
        the jobs that had children."""
        finals = [
            {
                "id": o.job.id,
                "state": o.state,
                "result": o.result,
                "error": o.error,
                "traceback": o.traceback,
            }
            for o in outcomes
            if o.state != RETRY
        ]
        for o in outcomes:
            if o.state == RETRY:
                tx.one(
                    "requeue_job",
                    id=o.job.id,
                    worker_id=self.id,
                    run_after_ns=now + int(o.delay * 1e9),
                    error=o.error,
                    traceback=o.traceback,
                )
                tx.execute("notify_jobs", queue=o.job.queue)
        if finals:
            # Jobs cancelled or taken from us meanwhile are not returned: not ours to settle.
            done = tx.all("finish_jobs", outcomes=json.dumps(finals), worker_id=self.id, now_ns=now)
            tx.execute("notify_jobs", queue="")  # for waiters in other processes
            for r in done:
                if r["has_children"]:
                    self.hub.jobs._settle(tx, r["id"], r["task"], r["state"])

    def _enforce_timeouts(self) -> None:
        """Fail jobs past their timeout now, and interrupt their threads."""
        now = time.monotonic()
        late = [
            r
            for r in self._running.values()
            if r.deadline is not None and now > r.deadline and not r.timed_out
        ]
        if not late:
            return
        for r in late:
            r.timed_out = True
            with self._lock:
                if r.thread_id is not None:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(r.thread_id), ctypes.py_object(JobTimeout)
                    )
        self._record(
            [_Outcome(r.job, FAILED, error=f"timed out after {r.job.timeout:g}s") for r in late]
        )

    def _maintain(self) -> None:
        """Renew our leases, recover jobs whose workers died or overran, tick schedules."""
        jobs = self.hub.jobs
        now = time.time_ns()
        with self.hub.store.transaction() as tx:
            tx.execute(
                "renew_leases", worker_id=self.id, lease_until_ns=now + int(self.lease * 1e9)
            )
            for row in tx.all("lost_jobs", now_ns=now):
                job = job_from_row(row)
                self._recover(tx, job, row["worker_id"], now)
        jobs.tick()

    def _recover(self, tx: Any, job: Job, worker_id: str, now: int) -> None:
        jobs = self.hub.jobs
        error = f"lease expired: worker {worker_id} stopped renewing it (did it die?)"
        if job.attempts < job.max_attempts:
            task = jobs.tasks.get(job.task)
            delay = task.backoff(job.attempts) if task else 1.0
            tx.one(
                "requeue_job",
                id=job.id,
                worker_id=worker_id,
                run_after_ns=now + int(delay * 1e9),
                error=error,
                traceback=None,
            )
            log.warning("job %d (%s): %s; requeued", job.id, job.task, error)
            return
        if tx.one(
            "finish_job",
            id=job.id,
            worker_id=worker_id,
            state=FAILED,
            result=None,
            error=error,
            traceback=None,
            now_ns=now,
        ):
            jobs._settle(tx, job.id, job.task, FAILED)
        log.warning("job %d (%s): %s; failed", job.id, job.task, error)

    def _idle_for(self) -> float | None:
        """Seconds until the earliest queued job may run (0: now); None if none is queued."""
        with self.hub.store.transaction(readonly=True) as tx:
            row = tx.one(
                "next_run_after", queues=None if self.queues is None else json.dumps(self.queues)
            )
        if row is None or row["run_after_ns"] is None:
            return None
        return max(0.0, (row["run_after_ns"] - time.time_ns()) / 1e9)


def run_worker(worker: Worker) -> None:
    """Run a worker; in the main thread, SIGINT/SIGTERM stop it after its running jobs."""
    if threading.current_thread() is not threading.main_thread():
        worker.run()
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # The handler runs on this thread between any two bytecodes, possibly while the worker
    # loop holds the lock inside its wake-up Event, so setting that Event from the handler
    # could deadlock: the handler only writes to a pipe, and a thread of its own stops.
    read_fd, write_fd = os.pipe()

    def graceful(signum: int, frame: Any) -> None:
        os.write(write_fd, b"x")
        for s, handler in previous.items():
            signal.signal(s, handler)

    def stop_on_signal() -> None:
        if os.read(read_fd, 1):
            log.info("stopping after the running jobs finish (again to abandon them)")
            worker.stop()

    stopper = threading.Thread(target=stop_on_signal, name="learnhub-worker-signal")
    stopper.start()
    for s in previous:
        signal.signal(s, graceful)
    try:
        worker.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(write_fd)  # the stopper reads the end of the pipe and returns
        stopper.join()
        os.close(read_fd)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result_json(result: Any) -> str:
    try:
        return json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"the task returned a result that is not JSON: {exc}") from None
