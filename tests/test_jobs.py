"""The job queue on both backends: the job model, claim order, DAGs and dynamic fan-in,
failure propagation, retries, dedupe, leases, timeouts, cancel/retry/wait, schedules,
concurrent workers on two hubs, bad input, stats/list/prune.

Everything is real: real stores, real workers (in burst mode in the test thread, or in a
background thread that a fixture always stops and joins). Waits are on conditions with a
deadline, never on the clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import learnhub
from conftest import wait_for
from learnhub.errors import InvalidInput
from learnhub.jobs import Job, PermanentError, Retry, WaitTimeout, Worker

WAIT_S = 30.0  # a deadline for conditions, never a duration that is asserted


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def open_hub(store_url: str) -> Iterator[Callable[[], learnhub.Hub]]:
    """Open more hubs on the same database; all are closed at the end of the test."""
    opened: list[learnhub.Hub] = []

    def open_() -> learnhub.Hub:
        h = learnhub.open(store_url)
        opened.append(h)
        return h

    yield open_
    for h in opened:
        h.close()


@pytest.fixture
def start_worker(
    hub: learnhub.Hub, open_hub: Callable[[], learnhub.Hub]
) -> Iterator[Callable[..., Worker]]:
    """Run Workers in background threads; every one is stopped and joined at the end (before
    the hubs close), and an exception in one fails the test."""
    started: list[tuple[Worker, threading.Thread]] = []
    errors: list[BaseException] = []

    def start(on: learnhub.Hub | None = None, **options: Any) -> Worker:
        worker = Worker(on or hub, **options)

        def run() -> None:
            try:
                worker.run()
            except BaseException as exc:  # reported at teardown
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"test-worker-{len(started)}", daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, _ in started:
        worker.stop()
    for worker, thread in started:
        thread.join(WAIT_S)
        assert not thread.is_alive(), f"worker {worker.id} did not stop"
    assert not errors, f"a worker crashed: {errors!r}"


class Log:
    """A thread-safe record of what tasks did, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def names(self, kind: str | None = None) -> list[Any]:
        with self._lock:
            return [e[1] for e in self.events if kind is None or e[0] == kind]

    def index(self, *event: Any) -> int:
        with self._lock:
            return self.events.index(event)


def burst(hub: learnhub.Hub, concurrency: int = 4, **options: Any) -> None:
    hub.run_worker(concurrency=concurrency, burst=True, **options)


def job(hub: learnhub.Hub, job_id: int | None) -> Job:
    assert job_id is not None
    found = hub.jobs.get(job_id)
    assert found is not None, f"job {job_id} is gone"
    return found


def state(hub: learnhub.Hub, job_id: int | None) -> str:
    return job(hub, job_id).state


def aware(t: datetime | None) -> bool:
    return t is not None and t.tzinfo is not None and t.utcoffset() == timedelta(0)


# --- 1. the job model ----------------------------------------------------------------------


def test_job_attributes_and_result_round_trip(hub: learnhub.Hub) -> None:
    result = {"a": [1, 2.5, None, "x"], "b": {"c": True, "d": "é"}, "n": -3}

    @hub.task("produce", retry_delay=0.01)
    def produce(ctx: Any, doc_id: str, n: int) -> Any:
        return result

    before = datetime.now(UTC)
    queued = hub.jobs.enqueue(
        "produce",
        {"doc_id": "d1", "n": 2},
        queue="q1",
        priority=7,
        max_attempts=4,
        timeout=12.5,
        dedupe_key="doc-d1",
    )
    j = job(hub, queued.id)
    assert j == queued
    assert isinstance(j.id, int)
    assert (j.queue, j.task, j.args) == ("q1", "produce", {"doc_id": "d1", "n": 2})
    assert (j.priority, j.max_attempts, j.timeout, j.dedupe_key) == (7, 4, 12.5, "doc-d1")
    assert j.state == "queued" and j.attempts == 0 and not j.done
    assert isinstance(j.flow_id, str) and j.flow_id
    assert j.worker_id is None and j.result is None and j.error is None
    assert j.started_at is None and j.finished_at is None
    for t in (j.created_at, j.flow_started_at, j.run_after):
        assert aware(t), t
    slack = timedelta(seconds=1)  # clock resolution only; not a timing assertion
    assert before - slack <= j.created_at <= datetime.now(UTC) + slack
    assert j.run_after <= j.created_at + slack

    burst(hub, queues=["q1"])

    done = job(hub, j.id)
    assert done.state == "succeeded" and done.done
    assert done.attempts == 1
    assert done.result == result  # JSON round trip, nested and unicode
    assert done.error is None and done.traceback is None
    assert isinstance(done.worker_id, str) and done.worker_id
    assert aware(done.started_at) and aware(done.finished_at)
    assert done.created_at <= done.started_at <= done.finished_at  # type: ignore[operator]
    # what does not change when a job runs
    assert (done.id, done.queue, done.args, done.flow_id, done.flow_started_at) == (
        j.id,
        j.queue,
        j.args,
        j.flow_id,
        j.flow_started_at,
    )
    assert hub.jobs.get(j.id + 1000) is None


def test_task_defaults_apply_to_jobs(hub: learnhub.Hub) -> None:
    @hub.task("defaults", queue="qd", priority=3, max_attempts=9, timeout=4.0)
    def defaults(ctx: Any) -> None:
        return None

    j = hub.jobs.enqueue("defaults")
    assert (j.queue, j.priority, j.max_attempts, j.timeout) == ("qd", 3, 9, 4.0)
    plain = hub.jobs.enqueue("nobody-knows-me")
    assert (plain.queue, plain.priority, plain.max_attempts, plain.timeout) == (
        "default",
        100,
        3,
        None,
    )


# --- 2. claim order --------------------------------------------------------------------------


def test_claim_order_priority_then_flow_start_then_id(hub: learnhub.Hub) -> None:
    log = Log()

    @hub.task("rec")
    def rec(ctx: Any, name: str) -> None:
        log.add("run", name)

    @hub.task("spawner")
    def spawner(ctx: Any, name: str) -> None:
        log.add("run", name)
        # a child of the oldest flow: it has the highest id so far, yet runs before the
        # jobs of newer flows of the same priority
        ctx.spawn("rec", {"name": "f1-child"}, priority=50)

    hub.jobs.enqueue("rec", {"name": "low"}, priority=200)  # lowest id, runs last
    f1 = hub.jobs.flow("f1", priority=50)
    f1.add("spawner", {"name": "f1-spawner"})
    f1.submit()
    f2 = hub.jobs.flow("f2", priority=50)
    f2.add("rec", {"name": "f2-a"})
    f2.add("rec", {"name": "f2-b"})
    f2.submit()
    hub.jobs.enqueue("rec", {"name": "f3"}, priority=50)
    hub.jobs.enqueue("rec", {"name": "urgent"}, priority=10)  # newest, runs first

    burst(hub, concurrency=1)

    assert log.names("run") == ["urgent", "f1-spawner", "f1-child", "f2-a", "f2-b", "f3", "low"]
    child = next(j for j in hub.jobs.list() if j.args == {"name": "f1-child"})
    assert child.flow_id == f1.id
    assert child.flow_started_at == job(hub, f1.nodes[0].id).flow_started_at


# --- 3. DAGs ---------------------------------------------------------------------------------


def test_diamond_dag_joins_after_both_branches(hub: learnhub.Hub) -> None:
    log = Log()

    @hub.task("step")
    def step(ctx: Any, name: str) -> str:
        log.add("start", name)
        log.add("end", name)
        return name

    flow = hub.jobs.flow("diamond")
    a = flow.add("step", {"name": "A"})
    b = flow.add("step", {"name": "B"}, after=[a])
    c = flow.add("step", {"name": "C"}, after=[a])
    d = flow.add("step", {"name": "D"}, after=[b, c])
    flow.submit()
    assert [state(hub, n.id) for n in (a, b, c, d)] == ["queued", "waiting", "waiting", "waiting"]
    assert sorted(hub.jobs.edges(flow.id)) == sorted(  # type: ignore[arg-type]
        [
            (a.id, b.id, "cancel"),
            (a.id, c.id, "cancel"),
            (b.id, d.id, "cancel"),
            (c.id, d.id, "cancel"),
        ]
    )

    burst(hub, concurrency=4)

    assert [state(hub, n.id) for n in (a, b, c, d)] == ["succeeded"] * 4
    for branch in ("B", "C"):
        assert log.index("end", "A") < log.index("start", branch)
        assert log.index("end", branch) < log.index("start", "D")
    assert sorted(log.names("start")) == ["A", "B", "C", "D"]  # each ran once
    d_job = job(hub, d.id)
    for branch in (b, c):
        assert job(hub, branch.id).finished_at <= d_job.started_at  # type: ignore[operator]


def test_wide_dag_final_job_sees_all_results(hub: learnhub.Hub) -> None:
    @hub.task("root")
    def root(ctx: Any) -> int:
        return 0

    @hub.task("mid")
    def mid(ctx: Any, i: int) -> int:
        return i * i

    @hub.task("final")
    def final(ctx: Any) -> dict[str, int]:
        mids = [j for j in ctx.hub.jobs.list(flow=ctx.job.flow_id, limit=1000) if j.task == "mid"]
        return {
            "mids": len(mids),
            "succeeded": sum(j.state == "succeeded" for j in mids),
            "total": sum(j.result for j in mids if j.state == "succeeded"),
        }

    flow = hub.jobs.flow("wide")
    r = flow.add("root")
    mids = [flow.add("mid", {"i": i}, after=[r]) for i in range(100)]
    f = flow.add("final", after=mids)
    flow.submit()
    assert job(hub, f.id).waiting_on == 100

    burst(hub, concurrency=4)

    assert job(hub, f.id).result == {
        "mids": 100,
        "succeeded": 100,
        "total": sum(i * i for i in range(100)),
    }
    assert Counter(j.state for j in hub.jobs.list(flow=flow.id, limit=1000)) == {"succeeded": 102}


# --- 4. dynamic fan-in -----------------------------------------------------------------------


def test_spawned_children_hold_the_join(hub: learnhub.Hub) -> None:
    log = Log()
    n_children = 6

    @hub.task("fan_out")
    def fan_out(ctx: Any) -> list[int]:
        (join_id,) = [c for p, c, _ in ctx.hub.jobs.edges(ctx.job.flow_id) if p == ctx.job.id]
        ids = []
        for i in range(n_children):
            # a worse priority than the join's: were the join not held by its new
            # parents, the worker would run it before them
            child = ctx.spawn("child", {"i": i}, before=[join_id], priority=500)
            assert child.flow_id == ctx.job.flow_id
            ids.append(child.id)
        log.add("spawned", ids)
        return ids

    @hub.task("child")
    def child(ctx: Any, i: int) -> int:
        log.add("start", i)
        log.add("end", i)
        return i

    @hub.task("join")
    def join(ctx: Any) -> list[str]:
        log.add("start", "join")
        parents = [p for p, c, _ in ctx.hub.jobs.edges(ctx.job.flow_id) if c == ctx.job.id]
        return [ctx.hub.jobs.get(p).state for p in parents]

    flow = hub.jobs.flow("fan-in")
    spawner = flow.add("fan_out")
    joiner = flow.add("join", after=[spawner])
    flow.submit()

    burst(hub, concurrency=4)

    child_ids = job(hub, spawner.id).result
    assert len(child_ids) == n_children
    assert [state(hub, c) for c in child_ids] == ["succeeded"] * n_children
    assert all(job(hub, c).flow_id == flow.id for c in child_ids)
    j = job(hub, joiner.id)
    assert j.state == "succeeded"
    assert j.result == ["succeeded"] * (n_children + 1)  # its parents, as the join saw them
    start_join = log.index("start", "join")
    for i in range(n_children):
        assert log.index("end", i) < start_join
    for c in child_ids:
        assert job(hub, c).finished_at <= j.started_at  # type: ignore[operator]


def test_spawn_before_a_started_or_finished_job_is_rejected(hub: learnhub.Hub) -> None:
    @hub.task("noop")
    def noop(ctx: Any) -> None:
        return None

    @hub.task("probe")
    def probe(ctx: Any, finished: int) -> dict[str, str]:
        errors = {}
        for label, target in (("running", ctx.job.id), ("finished", finished), ("missing", 10**9)):
            try:
                ctx.spawn("noop", before=[target])
            except InvalidInput as exc:
                errors[label] = str(exc)
        return errors

    first = hub.jobs.enqueue("noop")
    burst(hub)
    assert state(hub, first.id) == "succeeded"
    p = hub.jobs.enqueue("probe", {"finished": first.id})
    burst(hub)

    done = job(hub, p.id)
    assert done.state == "succeeded", done.error
    assert set(done.result) == {"running", "finished", "missing"}
    assert str(p.id) in done.result["running"] and "already started" in done.result["running"]
    assert str(first.id) in done.result["finished"]
    assert str(10**9) in done.result["missing"]
    assert len(hub.jobs.list()) == 2  # no child was left behind by a rejected spawn


# --- 5. failure propagation ------------------------------------------------------------------


def test_failure_cancels_dependents_transitively_except_ignore_edges(hub: learnhub.Hub) -> None:
    log = Log()

    @hub.task("ok")
    def ok(ctx: Any, name: str) -> None:
        log.add("run", name)

    @hub.task("fail")
    def fail(ctx: Any, name: str) -> None:
        log.add("run", name)
        raise PermanentError("the source is gone")

    flow = hub.jobs.flow("failing")
    other = flow.add("ok", {"name": "other"})
    p = flow.add("fail", {"name": "p"})
    c1 = flow.add("ok", {"name": "c1"}, after=[p])
    g1 = flow.add("ok", {"name": "g1"}, after=[c1])
    gg1 = flow.add("ok", {"name": "gg1"}, after=[g1], on_parent_failure="ignore")
    both = flow.add("ok", {"name": "both"}, after=[other, p])
    i1 = flow.add("ok", {"name": "i1"}, after=[p], on_parent_failure="ignore")
    g2 = flow.add("ok", {"name": "g2"}, after=[i1])
    flow.submit()

    burst(hub)

    assert job(hub, p.id).state == "failed"
    assert job(hub, p.id).attempts == 1
    assert "the source is gone" in (job(hub, p.id).error or "")
    for node in (c1, g1, both):
        j = job(hub, node.id)
        assert j.state == "cancelled", node
        assert f"job {p.id} (fail)" in (j.error or ""), j.error
        assert j.started_at is None and j.attempts == 0
    # an 'ignore' edge from a cancelled job still runs the child
    for node in (other, i1, g2, gg1):
        assert state(hub, node.id) == "succeeded", node
    ran = log.names("run")
    assert sorted(ran) == ["g2", "gg1", "i1", "other", "p"]


# --- 6. retries ------------------------------------------------------------------------------


def test_retries_until_success(hub: learnhub.Hub) -> None:
    calls: Counter[int] = Counter()

    @hub.task("flaky", retry_delay=0.01)
    def flaky(ctx: Any) -> str:
        calls[ctx.job.id] += 1
        assert ctx.job.attempts == calls[ctx.job.id]
        if calls[ctx.job.id] < 3:
            raise ValueError(f"flake {calls[ctx.job.id]}")
        return "finally"

    j = hub.jobs.enqueue("flaky")
    burst(hub)
    done = job(hub, j.id)
    assert (done.state, done.attempts, done.result) == ("succeeded", 3, "finally")
    assert done.error is None
    assert calls[j.id] == 3


def test_retries_exhausted_fail_with_error_and_traceback(hub: learnhub.Hub) -> None:
    calls: Counter[int] = Counter()

    @hub.task("broken", retry_delay=0.01, max_attempts=2)
    def broken(ctx: Any) -> None:
        calls[ctx.job.id] += 1
        raise ValueError("boom")

    j = hub.jobs.enqueue("broken")
    burst(hub)
    done = job(hub, j.id)
    assert (done.state, done.attempts) == ("failed", 2)
    assert calls[j.id] == 2
    assert "ValueError: boom" in (done.error or "")
    assert "2 of 2" in (done.error or "")
    assert "Traceback" in (done.traceback or "") and 'raise ValueError("boom")' in (
        done.traceback or ""
    )


def test_retry_exception_requeues_and_permanent_error_fails_at_once(hub: learnhub.Hub) -> None:
    calls: Counter[str] = Counter()

    @hub.task("again", retry_delay=60.0)  # Retry(after=0) must not wait for the backoff
    def again(ctx: Any) -> int:
        calls["again"] += 1
        if ctx.job.attempts == 1:
            raise Retry(after=0, reason="not yet")
        return ctx.job.attempts

    @hub.task("hopeless", retry_delay=0.01)
    def hopeless(ctx: Any) -> None:
        calls["hopeless"] += 1
        raise PermanentError("the document was deleted")

    a = hub.jobs.enqueue("again")
    h = hub.jobs.enqueue("hopeless")
    burst(hub)

    assert (state(hub, a.id), job(hub, a.id).attempts, job(hub, a.id).result) == (
        "succeeded",
        2,
        2,
    )
    hj = job(hub, h.id)
    assert (hj.state, hj.attempts) == ("failed", 1)
    assert "the document was deleted" in (hj.error or "")
    assert "PermanentError" in (hj.traceback or "")
    assert calls == {"again": 2, "hopeless": 1}


# --- 7. dedupe -------------------------------------------------------------------------------


def test_dedupe_while_queued_or_running_then_new_after_finish(hub: learnhub.Hub) -> None:
    @hub.task("index")
    def index(ctx: Any, doc: str) -> int | None:
        if ctx.job.dedupe_key is None:
            return None
        # while this job runs, a second enqueue with its key returns this very job
        again = ctx.hub.jobs.enqueue("index", {"doc": doc}, dedupe_key=ctx.job.dedupe_key)
        return again.id

    first = hub.jobs.enqueue("index", {"doc": "d1"}, dedupe_key="index:d1")
    second = hub.jobs.enqueue("index", {"doc": "d1"}, dedupe_key="index:d1")
    assert second.id == first.id and second.state == "queued"
    other_key = hub.jobs.enqueue("index", {"doc": "d2"}, dedupe_key="index:d2")
    no_key = hub.jobs.enqueue("index", {"doc": "d3"})
    assert len({first.id, other_key.id, no_key.id}) == 3
    assert len(hub.jobs.list()) == 3

    burst(hub)

    done = job(hub, first.id)
    assert done.state == "succeeded"
    assert done.result == first.id  # deduped while running
    assert job(hub, other_key.id).result == other_key.id
    assert len(hub.jobs.list()) == 3
    third = hub.jobs.enqueue("index", {"doc": "d1"}, dedupe_key="index:d1")
    assert third.id != first.id and third.state == "queued"
    assert len(hub.jobs.list()) == 4


def test_dedupe_on_waiting_job(hub: learnhub.Hub) -> None:
    parent = hub.jobs.enqueue("x", queue="nobody")
    w1 = hub.jobs.enqueue("x", after=[parent], dedupe_key="k", queue="nobody")
    w2 = hub.jobs.enqueue("x", after=[parent], dedupe_key="k", queue="nobody")
    assert w1.state == "waiting" and w2.id == w1.id
    assert len(hub.jobs.list()) == 2


# --- 8. leases -------------------------------------------------------------------------------


def test_lost_lease_requeues_with_attempt_counted_then_succeeds(
    hub: learnhub.Hub, start_worker: Callable[..., Worker]
) -> None:
    runs: list[str] = []

    @hub.task("survivor", queue="lease", retry_delay=0.01)
    def survivor(ctx: Any) -> str:
        runs.append(ctx.job.worker_id)
        return "ok"

    j = hub.jobs.enqueue("survivor")
    # A worker claims the job and then "dies": its loop never runs, so nothing renews
    # the lease and nothing runs the task.
    dead = Worker(hub, queues=["lease"], lease=0.3)
    (claimed,) = dead._claim(1)
    assert claimed.id == j.id
    assert (state(hub, j.id), job(hub, j.id).worker_id, job(hub, j.id).attempts) == (
        "running",
        dead.id,
        1,
    )
    # Another worker that serves other queues reaps the lost lease.
    reaper = start_worker(queues=["elsewhere"], lease=0.6)
    requeued = wait_for(
        lambda: (lambda x: x if x.state == "queued" else None)(job(hub, j.id)),
        WAIT_S,
        "the lost job to be requeued",
    )
    assert requeued.attempts == 1  # the lost attempt counts
    assert requeued.worker_id is None
    assert "lease expired" in (requeued.error or "") and dead.id in (requeued.error or "")
    assert runs == []

    live = start_worker(queues=["lease"], lease=5.0)
    done = hub.jobs.wait(j.id, timeout=WAIT_S)
    assert (done.state, done.attempts, done.worker_id, done.result) == (
        "succeeded",
        2,
        live.id,
        "ok",
    )
    assert runs == [live.id]
    assert reaper.id != live.id

    # the dead worker "comes back" and reports the job: it is not its job any more
    from learnhub.jobs.worker import _Outcome

    dead._record([_Outcome(claimed, "failed", error="late")])
    assert job(hub, j.id) == done


def test_lease_lost_max_attempts_times_fails(
    hub: learnhub.Hub, start_worker: Callable[..., Worker]
) -> None:
    @hub.task("doomed", queue="lease", max_attempts=2, retry_delay=0.01)
    def doomed(ctx: Any) -> None:
        raise AssertionError("a dead worker never runs anything")

    j = hub.jobs.enqueue("doomed")
    start_worker(queues=["elsewhere"], lease=0.6)  # reaps, never runs 'lease' jobs

    first = Worker(hub, queues=["lease"], lease=0.2)
    assert [c.id for c in first._claim(1)] == [j.id]
    wait_for(lambda: state(hub, j.id) == "queued", WAIT_S, "the first lost lease to be reaped")
    assert job(hub, j.id).attempts == 1

    second = Worker(hub, queues=["lease"], lease=0.2)
    wait_for(lambda: second._claim(1), WAIT_S, "the requeued job to be claimable again")
    assert (state(hub, j.id), job(hub, j.id).attempts) == ("running", 2)

    done = hub.jobs.wait(j.id, timeout=WAIT_S)
    assert (done.state, done.attempts) == ("failed", 2)
    assert "lease expired" in (done.error or "")
    assert second.id in (done.error or "")


# --- 9. timeouts -----------------------------------------------------------------------------


def test_timeout_stops_a_busy_task_and_the_worker_goes_on(hub: learnhub.Hub) -> None:
    log = Log()

    @hub.task("spin", timeout=0.5, max_attempts=3)
    def spin(ctx: Any) -> int:
        x = 0
        fallback = time.monotonic() + 60  # only so that a broken timeout cannot hang forever
        try:
            while time.monotonic() < fallback:
                x += 1
        except BaseException as exc:
            log.add("interrupted", type(exc).__name__)
            raise
        log.add("ran-to-fallback", x)
        return x

    @hub.task("after_spin")
    def after_spin(ctx: Any) -> str:
        log.add("next", ctx.job.id)
        return "alive"

    s = hub.jobs.enqueue("spin")
    n = hub.jobs.enqueue("after_spin", priority=500)  # after the spinner
    burst(hub, concurrency=1)

    sj = job(hub, s.id)
    assert sj.state == "failed"
    assert "timed out" in (sj.error or "")
    assert sj.attempts == 1  # a timeout is not retried
    assert log.names("interrupted") == ["JobTimeout"]
    assert log.names("ran-to-fallback") == []
    assert (state(hub, n.id), job(hub, n.id).result) == ("succeeded", "alive")
    assert log.names("next") == [n.id]


# --- 10. cancel and retry --------------------------------------------------------------------


def test_cancel_a_waiting_job_cancels_its_dependents(hub: learnhub.Hub) -> None:
    @hub.task("noop")
    def noop(ctx: Any) -> None:
        return None

    flow = hub.jobs.flow("to-cancel")
    a = flow.add("noop")
    b = flow.add("noop", after=[a])
    c = flow.add("noop", after=[b])
    d = flow.add("noop", after=[c], on_parent_failure="ignore")
    flow.submit()

    assert hub.jobs.cancel(b.id) is True
    bj = job(hub, b.id)
    assert (bj.state, bj.error) == ("cancelled", "cancelled")
    assert bj.finished_at is not None
    cj = job(hub, c.id)
    assert cj.state == "cancelled" and f"job {b.id} (noop) cancelled" in (cj.error or "")
    assert state(hub, a.id) == "queued"
    assert hub.jobs.cancel(b.id) is False  # already final
    with pytest.raises(InvalidInput, match="999999"):
        hub.jobs.cancel(999999)

    burst(hub)
    assert [state(hub, n.id) for n in (a, b, c, d)] == [
        "succeeded",
        "cancelled",
        "cancelled",
        "succeeded",  # its edge says ignore
    ]
    assert hub.jobs.cancel(a.id) is False  # succeeded


def test_retry_reruns_a_failed_job_and_revives_what_it_cancelled(hub: learnhub.Hub) -> None:
    fixed = threading.Event()
    runs: Counter[str] = Counter()

    @hub.task("source")
    def source(ctx: Any) -> str:
        runs["source"] += 1
        if not fixed.is_set():
            raise PermanentError("upstream API down")
        return "data"

    @hub.task("use")
    def use(ctx: Any, name: str) -> str:
        runs[name] += 1
        return name

    flow = hub.jobs.flow("revive")
    s = flow.add("source")
    c = flow.add("use", {"name": "c"}, after=[s])
    g = flow.add("use", {"name": "g"}, after=[c])
    flow.submit()
    unrelated = hub.jobs.enqueue("source")  # fails too, but is not retried

    burst(hub)
    assert [state(hub, n.id) for n in (s, c, g)] == ["failed", "cancelled", "cancelled"]
    assert runs == {"source": 2}

    fixed.set()
    assert hub.jobs.retry(s.id) is True
    sj = job(hub, s.id)
    assert (sj.state, sj.attempts, sj.error) == ("queued", 0, None)
    assert [state(hub, n.id) for n in (c, g)] == ["waiting", "waiting"]

    burst(hub)
    assert [state(hub, n.id) for n in (s, c, g)] == ["succeeded"] * 3
    assert (job(hub, g.id).result, job(hub, g.id).error) == ("g", None)
    assert runs == {"source": 3, "c": 1, "g": 1}
    assert state(hub, unrelated.id) == "failed"
    assert hub.jobs.retry(s.id) is False  # it succeeded
    with pytest.raises(InvalidInput):
        hub.jobs.retry(999999)


def test_retry_keeps_jobs_cancelled_by_another_failed_parent(hub: learnhub.Hub) -> None:
    fixed: set[str] = set()

    @hub.task("source")
    def source(ctx: Any, name: str) -> str:
        if name not in fixed:
            raise PermanentError(f"{name} down")
        return name

    @hub.task("use")
    def use(ctx: Any) -> str:
        return "used"

    flow = hub.jobs.flow("two-sources")
    p1 = flow.add("source", {"name": "p1"}, priority=1)  # fails first: x names it
    p2 = flow.add("source", {"name": "p2"}, priority=2)
    x = flow.add("use", after=[p1, p2])
    y = flow.add("use", after=[x])
    flow.submit()
    burst(hub, concurrency=1)
    assert [state(hub, n.id) for n in (p1, p2, x, y)] == [
        "failed",
        "failed",
        "cancelled",
        "cancelled",
    ]
    assert f"job {p1.id} (source)" in (job(hub, x.id).error or "")

    # retrying a job whose own parent failed would leave it waiting forever: refused
    with pytest.raises(InvalidInput, match=f"job {p1.id}"):
        hub.jobs.retry(x.id)
    assert state(hub, x.id) == "cancelled"

    # p1 retried and fixed; x still has a failed parent, p2: it (and y) stay cancelled
    fixed.add("p1")
    assert hub.jobs.retry(p1.id) is True
    assert [state(hub, n.id) for n in (x, y)] == ["cancelled", "cancelled"]
    assert f"job {p2.id} (source) failed" in (job(hub, x.id).error or "")
    burst(hub, concurrency=1)
    assert [state(hub, n.id) for n in (p1, p2, x, y)] == [
        "succeeded",
        "failed",
        "cancelled",
        "cancelled",
    ]

    # with p2 retried and fixed as well, the whole flow finishes
    fixed.add("p2")
    assert hub.jobs.retry(p2.id) is True
    burst(hub, concurrency=1)
    assert [state(hub, n.id) for n in (p1, p2, x, y)] == ["succeeded"] * 4
    assert job(hub, y.id).result == "used"


# --- 11. wait --------------------------------------------------------------------------------


def test_wait(hub: learnhub.Hub, start_worker: Callable[..., Worker]) -> None:
    @hub.task("double", queue="work")
    def double(ctx: Any, x: int) -> int:
        return 2 * x

    start_worker(queues=["work"])
    j = hub.jobs.enqueue("double", {"x": 21})
    done = hub.jobs.wait(j.id, timeout=WAIT_S)
    assert (done.id, done.state, done.result) == (j.id, "succeeded", 42)
    assert hub.jobs.wait(j.id, timeout=0) == done  # already final: returned at once

    orphan = hub.jobs.enqueue("double", {"x": 1}, queue="nobody-serves-this")
    with pytest.raises(WaitTimeout, match=str(orphan.id)) as caught:
        hub.jobs.wait(orphan.id, timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    assert state(hub, orphan.id) == "queued"
    with pytest.raises(InvalidInput, match="424242"):
        hub.jobs.wait(424242, timeout=1)


# --- 12. schedules ---------------------------------------------------------------------------


def test_every_seconds_enqueues_ticks(
    hub: learnhub.Hub, start_worker: Callable[..., Worker]
) -> None:
    ticks = Log()

    @hub.task("tick", queue="sched")
    def tick(ctx: Any, n: int) -> None:
        ticks.add("tick", ctx.job.id)

    hub.jobs.every("tick", seconds=0.2, args={"n": 1})
    (s,) = [s for s in hub.jobs.schedules() if s["name"] == "tick"]
    hub.jobs.every("tick", seconds=0.2, args={"n": 1})  # again, as at every start
    (again,) = [s for s in hub.jobs.schedules() if s["name"] == "tick"]
    assert again["next_ns"] == s["next_ns"]  # the schedule is kept, not restarted
    assert len(hub.jobs.schedules()) == 1

    start_worker(queues=["sched"], lease=0.6)  # maintenance (and ticking) every 0.2 s
    wait_for(lambda: len(ticks.names("tick")) >= 3, WAIT_S, "three ticks to run")
    tick_jobs = [j for j in hub.jobs.list(queue="sched") if j.task == "tick"]
    assert len(tick_jobs) >= 3
    assert all(j.args == {"n": 1} for j in tick_jobs)
    assert len({j.flow_id for j in tick_jobs}) == len(tick_jobs)
    assert len(set(ticks.names("tick"))) == len(ticks.names("tick"))  # none ran twice

    # changing the period restarts the schedule from now
    hub.jobs.every("tick", seconds=3600, args={"n": 1})
    (changed,) = [s for s in hub.jobs.schedules() if s["name"] == "tick"]
    assert changed["every_s"] == 3600
    assert changed["next_ns"] > time.time_ns() + 3000 * 10**9


def test_every_rejects_bad_schedules_and_accepts_cron(hub: learnhub.Hub) -> None:
    with pytest.raises(InvalidInput, match="seconds=... or cron"):
        hub.jobs.every("sync")
    with pytest.raises(InvalidInput):
        hub.jobs.every("sync", seconds=5, cron="* * * * *")
    for bad in (0, -1, "5", math.nan):
        with pytest.raises(InvalidInput):
            hub.jobs.every("sync", seconds=bad)
    with pytest.raises(InvalidInput, match="not a cron"):
        hub.jobs.every("sync", cron="not a cron")
    with pytest.raises(InvalidInput):
        hub.jobs.every("sync", cron="61 * * * *")
    with pytest.raises(InvalidInput):
        hub.jobs.every("sync", seconds=1, args={"bad": {1, 2}})
    assert hub.jobs.schedules() == []

    now = time.time_ns()
    hub.jobs.every("sync", cron="* * * * *", name="minutely")
    (s,) = hub.jobs.schedules()
    assert (s["name"], s["task"], s["cron"], s["every_s"]) == (
        "minutely",
        "sync",
        "* * * * *",
        None,
    )
    assert now < s["next_ns"] <= now + 60 * 10**9 + 10**9


def test_two_hubs_tick_each_schedule_once(
    hub: learnhub.Hub, open_hub: Callable[[], learnhub.Hub]
) -> None:
    """Two hubs on one database tick the same due schedule at the same moment, many times:
    every round, exactly one of them enqueues (a doubled tick would enqueue two jobs)."""
    other = open_hub()
    hubs = (hub, other)
    hub.jobs.every("sync", seconds=3600, queue="ticks")
    rounds = 25
    barrier = threading.Barrier(2)
    results: list[list[int]] = [[], []]
    failures: list[BaseException] = []

    def make_due() -> None:
        with hub.store.transaction() as tx:  # the schedule's tick is now due
            tx.conn.execute("UPDATE schedules SET next_ns = 0 WHERE name = 'sync'")

    def ticker(i: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(WAIT_S)  # both tick together
                results[i].append(hubs[i].jobs.tick())
                barrier.wait(WAIT_S)  # round over
                if i == 0 and r < rounds - 1:
                    make_due()
                barrier.wait(WAIT_S)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    make_due()
    threads = [threading.Thread(target=ticker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 4)
    assert not failures, failures
    per_round = [a + b for a, b in zip(*results, strict=True)]
    assert per_round == [1] * rounds
    assert len(hub.jobs.list(queue="ticks", limit=1000)) == rounds
    (s,) = [s for s in hub.jobs.schedules() if s["name"] == "sync"]
    assert s["next_ns"] > time.time_ns()


# --- 13. claims never overlap ----------------------------------------------------------------


def test_two_hubs_workers_never_claim_the_same_job(
    hub: learnhub.Hub, open_hub: Callable[[], learnhub.Hub]
) -> None:
    other = open_hub()
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    for h in (hub, other):

        @h.task("quick")
        def quick(ctx: Any, i: int) -> int:
            with lock:
                seen.append((ctx.job.id, ctx.job.worker_id))
            return i

    n = 300
    ids = [hub.jobs.enqueue("quick", {"i": i}).id for i in range(n)]
    workers = [Worker(hub, concurrency=4, burst=True), Worker(other, concurrency=4, burst=True)]
    errors: list[BaseException] = []

    def run(w: Worker) -> None:
        try:
            w.run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 4)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors

    counts = Counter(job_id for job_id, _ in seen)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}  # every job ran exactly once
    final = {j.id: j for j in hub.jobs.list(limit=1000)}
    assert all(final[i].state == "succeeded" and final[i].attempts == 1 for i in ids)
    for job_id, worker_id in seen:
        assert final[job_id].worker_id == worker_id
    assert {w for _, w in seen} <= {w.id for w in workers}


# --- 14. bad input ---------------------------------------------------------------------------


def test_unknown_task_fails_once_with_a_clear_error(hub: learnhub.Hub) -> None:
    j = hub.jobs.enqueue("no.such.task", {"x": 1})
    burst(hub)
    done = job(hub, j.id)
    assert (done.state, done.attempts) == ("failed", 1)
    assert "no.such.task" in (done.error or "") and "registered" in (done.error or "")


def test_bad_input_is_rejected_and_nothing_is_inserted(hub: learnhub.Hub) -> None:
    def nothing_inserted() -> None:
        assert hub.jobs.list() == []
        assert hub.jobs.stats() == {}

    for args in ({"s": {1, 2}}, {"x": math.nan}, {"x": math.inf}, {"o": object()}, [1, 2], "x"):
        with pytest.raises(InvalidInput):
            hub.jobs.enqueue("t", args)  # type: ignore[arg-type]
    nothing_inserted()

    with pytest.raises(InvalidInput, match="999999"):
        hub.jobs.enqueue("t", after=[999999])
    nothing_inserted()

    bad_options: list[dict[str, Any]] = [
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": math.inf},
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"priority": "high"},
        {"queue": ""},
        {"dedupe_key": 5},
        {"run_after": -3},
        {"run_after": datetime(2030, 1, 1)},  # naive
        {"on_parent_failure": "explode"},
    ]
    for options in bad_options:
        with pytest.raises(InvalidInput):
            hub.jobs.enqueue("t", **options)
    with pytest.raises(InvalidInput):
        hub.jobs.enqueue("", {})
    nothing_inserted()

    # a cycle, made with link, is rejected at submit
    flow = hub.jobs.flow("cyclic")
    a = flow.add("t")
    b = flow.add("t", after=[a])
    c = flow.add("t", after=[b])
    flow.link(c, a)
    with pytest.raises(InvalidInput, match="cycle"):
        flow.submit()
    assert flow.id is None and a.id is None
    nothing_inserted()

    # a flow is atomic: one bad node inserts none of the others
    flow = hub.jobs.flow("half-bad")
    first = flow.add("t")
    flow.add("t", after=[first])
    flow.add("t", after=[999999])
    with pytest.raises(InvalidInput, match="999999"):
        flow.submit()
    nothing_inserted()

    with pytest.raises(InvalidInput):
        flow.add("t", on_parent_failure="explode")
    with pytest.raises(InvalidInput):
        hub.jobs.list(state="bogus")
    with pytest.raises(InvalidInput):
        hub.jobs.flow("")
    with pytest.raises(InvalidInput):
        hub.jobs.flow("empty").submit()
    nothing_inserted()

    # a parent listed twice is an input error, not a database error
    p = hub.jobs.enqueue("t", queue="nobody")
    with pytest.raises(InvalidInput, match=f"job\\(s\\) {p.id} listed more than once"):
        hub.jobs.enqueue("t", after=[p, p], queue="nobody")
    flow = hub.jobs.flow("twice")
    x = flow.add("t", queue="nobody")
    y = flow.add("t", after=[x], queue="nobody")
    flow.link(x, y, "ignore")
    with pytest.raises(InvalidInput, match="more than once"):
        flow.submit()
    assert [j.id for j in hub.jobs.list()] == [p.id]


def test_worker_options_are_validated(hub: learnhub.Hub) -> None:
    for options in ({"concurrency": 0}, {"concurrency": 1.5}, {"lease": 0}, {"lease": -1}):
        with pytest.raises(InvalidInput):
            Worker(hub, **options)  # type: ignore[arg-type]


# --- 15. stats, list, prune ------------------------------------------------------------------


def test_stats_list_and_prune(hub: learnhub.Hub) -> None:
    @hub.task("good", queue="a")
    def good(ctx: Any) -> None:
        return None

    @hub.task("bad", queue="b")
    def bad(ctx: Any) -> None:
        raise PermanentError("no")

    goods = [hub.jobs.enqueue("good") for _ in range(3)]
    bads = [hub.jobs.enqueue("bad") for _ in range(2)]
    flow = hub.jobs.flow("f")
    fa = flow.add("good", queue="c")
    flow.add("good", after=[fa], queue="c")
    flow.submit()

    stats = hub.jobs.stats()
    assert set(stats) == {"a", "b", "c"}
    assert stats["a"]["queued"] == 3 and stats["b"]["queued"] == 2
    assert (stats["c"]["queued"], stats["c"]["waiting"]) == (1, 1)
    assert stats["a"]["succeeded"] == 0

    burst(hub, queues=["a", "b"])

    stats = hub.jobs.stats()
    assert stats["a"] == {**dict.fromkeys(stats["a"], 0), "succeeded": 3}
    assert stats["b"] == {**dict.fromkeys(stats["b"], 0), "failed": 2}
    assert (stats["c"]["queued"], stats["c"]["waiting"]) == (1, 1)

    assert {j.id for j in hub.jobs.list(state="succeeded")} == {j.id for j in goods}
    assert {j.id for j in hub.jobs.list(state="failed", queue="b")} == {j.id for j in bads}
    assert hub.jobs.list(state="failed", queue="a") == []
    assert {j.id for j in hub.jobs.list(flow=flow.id)} == {n.id for n in flow.nodes}
    assert [j.id for j in hub.jobs.list(queue="c", state="waiting")] == [flow.nodes[1].id]
    listed = [j.id for j in hub.jobs.list()]
    assert listed == sorted(listed, reverse=True)  # newest first
    assert len(hub.jobs.list(limit=2)) == 2

    pruned = hub.jobs.prune(0)
    assert pruned == 3
    assert hub.jobs.list(state="succeeded") == []
    assert {j.id for j in hub.jobs.list(state="failed")} == {j.id for j in bads}
    assert all(hub.jobs.get(j.id) is None for j in goods)
    assert len(hub.jobs.list()) == 4  # failed and unfinished jobs are kept
    assert hub.jobs.prune(1) == 0


def test_enqueue_many_is_all_or_nothing(hub: learnhub.Hub) -> None:
    @hub.task("double")
    def double(ctx: Any, n: int) -> int:
        return n * 2

    jobs = hub.jobs.enqueue_many("double", [{"n": i} for i in range(50)], priority=7)
    assert [j.args for j in jobs] == [{"n": i} for i in range(50)]
    assert {j.state for j in jobs} == {"queued"} and {j.priority for j in jobs} == {7}
    burst(hub)
    assert [job(hub, j.id).result for j in jobs] == [i * 2 for i in range(50)]

    with pytest.raises(InvalidInput, match="must be JSON"):
        hub.jobs.enqueue_many("double", [{"n": 1}, {"n": {1, 2}}])
    assert hub.jobs.enqueue_many("double", []) == []
    assert sum(hub.jobs.stats()["default"].values()) == 50


def test_workers_keep_the_builtin_prune_schedule(hub: learnhub.Hub) -> None:
    hub.worker()
    (prune,) = [s for s in hub.jobs.schedules() if s["name"] == "learnhub.prune"]
    assert prune["queue"] == "learnhub" and prune["every_s"] == 3600
    first_tick = prune["next_ns"]
    hub.worker()  # every start keeps the schedule's next tick
    assert [s["next_ns"] for s in hub.jobs.schedules() if s["name"] == "learnhub.prune"] == [
        first_tick
    ]


def test_prefetch_claims_ahead_but_runs_at_most_concurrency_at_once(hub: learnhub.Hub) -> None:
    lock = threading.Lock()
    running = [0]
    most = [0]

    @hub.task("count")
    def count(ctx: Any, n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        x = 0
        for i in range(20_000):  # long enough for the threads to overlap
            x += i
        with lock:
            running[0] -= 1
        return n

    jobs = hub.jobs.enqueue_many("count", [{"n": i} for i in range(60)])
    hub.run_worker(concurrency=2, prefetch=4, burst=True)
    assert [job(hub, j.id).result for j in jobs] == list(range(60))
    assert 1 <= most[0] <= 2
    with pytest.raises(InvalidInput, match="prefetch"):
        hub.worker(prefetch=-1)
