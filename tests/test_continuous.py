"""Continuous learning: the planner, training tasks (hung, failing, killed), models, inference.

Worker processes load tests/continuous_app.py (``--app continuous_app:hub``); in-process
workers run on threads. Nothing waits by sleeping: ``wait_for`` polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import learnhub
from conftest import wait_for
from learnhub import InvalidInput
from learnhub.continuous.training import (
    FINETUNE,
    PLAN_TASK,
    QUEUES,
    SCRATCH,
    TRAIN_TASK,
    Decision,
    TaskStopped,
    TrainContext,
    TrainTask,
    make_config,
)
from learnhub.jobs import Worker

TESTS_DIR = Path(__file__).resolve().parent
MIN_START = 10  # continuous_app.MIN_START
MIN_UPDATE = 5  # continuous_app.MIN_UPDATE
ODD_BATCH = "plant 7/sensor ü 'α' %_;"


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[learnhub.Hub]:
    """For tests of plain logic: SQLite only."""
    with learnhub.open(f"sqlite:///{tmp_path / 'hub.db'}") as h:
        yield h


@contextmanager
def running(hub: learnhub.Hub, **options: object) -> Iterator[tuple[Worker, threading.Thread]]:
    """A worker of ``hub`` on a thread, stopped (after its running jobs) at the end."""
    worker = hub.worker(**options)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker, thread
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


def add(hub: learnhub.Hub, batch: str, n: int, start: float = 0.0) -> None:
    hub.samples.add(batch, {"y": np.arange(start, start + n)}, seed=1)


def mean_trainer(hub: learnhub.Hub, **options: object) -> None:
    """A trainer that fits the mean of y (thresholds of continuous_app unless given)."""
    settings: dict[str, object] = {"min_start_count": MIN_START, "min_update_count": MIN_UPDATE}

    @hub.trainer(**{**settings, **options})  # type: ignore[arg-type]
    def train(ctx: TrainContext) -> None:
        y = ctx.train().column("y").to_numpy()
        ctx.save_model({"mean": float(y.mean())}, metrics={"val_loss": 1.0})


def tasks_of(hub: learnhub.Hub, batch: str) -> list[TrainTask]:
    return hub.continuous.tasks(batch)


# --- the planner's decisions ---------------------------------------------------------------


def make_task(hub: learnhub.Hub, batch: str, status: str, started_ago_s: float = 0.0) -> int:
    """A task row in ``status`` ('queued', 'training', or a final one), without a job."""
    now = time.time_ns()
    with hub.store.transaction() as tx:
        row = tx.one(
            "insert_train_task",
            batch=batch,
            mode=SCRATCH,
            status="queued",
            base_model_id=None,
            since_ts=None,
            created_ns=now,
        )
        assert row is not None
        if status != "queued":
            started = now - int(started_ago_s * 1e9)
            tx.one(
                "start_train_task",
                id=row["id"],
                status="training",
                now_ns=started,
                resumable='["queued"]',
            )
        if status in ("done", "failed", "dead"):
            tx.one(
                "finish_train_task",
                id=row["id"],
                status=status,
                model_id=None,
                error=None,
                traceback=None,
                now_ns=now,
                working='["training"]',
            )
    return row["id"]


LIMIT_S = 60.0
# (model?, samples: all without a model / newer than the model, task, actions for the batch)
PLAN_CASES = {
    "no model, below": (False, MIN_START - 1, None, ["wait"]),
    "no model, at": (False, MIN_START, None, ["wait"]),
    "no model, above": (False, MIN_START + 1, None, [SCRATCH]),
    "model, below": (True, MIN_UPDATE - 1, None, ["wait"]),
    "model, at": (True, MIN_UPDATE, None, ["wait"]),
    "model, above": (True, MIN_UPDATE + 1, None, [FINETUNE]),
    "model, none newer": (True, 0, None, ["wait"]),
    "no model, above, queued task": (False, MIN_START + 1, "queued", ["busy"]),
    "no model, above, working task": (False, MIN_START + 1, "training", ["busy"]),
    "model, above, working task": (True, MIN_UPDATE + 1, "training", ["busy"]),
    "no model, above, zombie task": (False, MIN_START + 1, "zombie", ["dead", SCRATCH]),
    "model, below, zombie task": (True, MIN_UPDATE, "zombie", ["dead", "wait"]),
    "no model, above, dead task": (False, MIN_START + 1, "dead", [SCRATCH]),
    "no model, above, failed task": (False, MIN_START + 1, "failed", [SCRATCH]),
    "model, above, done task": (True, MIN_UPDATE + 1, "done", [FINETUNE]),
    "model, below, done task": (True, MIN_UPDATE - 1, "done", ["wait"]),
}


@pytest.mark.parametrize("case", PLAN_CASES)
def test_planner_decisions(hub: learnhub.Hub, case: str) -> None:
    has_model, samples, task, expected = PLAN_CASES[case]
    mean_trainer(hub, limit_time=LIMIT_S)
    batch = "b"
    model = None
    if has_model:
        add(hub, batch, 3)
        model = hub.models.save(batch, b"m", data_to_ts=hub.samples.last_ts(batch))
        if samples:
            add(hub, batch, samples, start=100)
    else:
        add(hub, batch, samples)
    old = None
    if task is not None:
        ago = 2 * LIMIT_S if task == "zombie" else 0.0
        old = make_task(hub, batch, "training" if task == "zombie" else task, ago)

    decisions = [d for d in hub.continuous.plan() if d.batch == batch]

    assert [d.action for d in decisions] == expected, decisions
    tasks = tasks_of(hub, batch)
    if task == "zombie":
        assert tasks[0].id == old and tasks[0].status == "dead"
        assert "limit_time is 60s" in (tasks[0].error or "")
    made = expected[-1] in (SCRATCH, FINETUNE)
    assert len(tasks) == (1 if task else 0) + made
    if made:
        new = tasks[-1]
        assert (new.mode, new.status, new.id) == (expected[-1], "queued", decisions[-1].task_id)
        assert decisions[-1].samples == samples
        job = hub.jobs.get(new.job_id)  # type: ignore[arg-type]
        assert job is not None and job.id == decisions[-1].job_id
        assert (job.task, job.queue, job.args) == (
            TRAIN_TASK,
            QUEUES[new.mode],
            {"task_id": new.id},
        )
        assert (job.dedupe_key, job.timeout, job.state) == (f"train:{batch}", LIMIT_S, "queued")
        if new.mode == FINETUNE:
            assert model is not None and new.base_model_id == model.id
            assert new.since_ts == model.data_to_ts + 1  # type: ignore[operator]
        else:
            assert new.base_model_id is None and new.since_ts is None
    # Planning again changes nothing: the new task is live, or nothing is due.
    again = [d.action for d in hub.continuous.plan() if d.batch == batch]
    assert again == (["busy"] if made or task in ("queued", "training") else ["wait"])
    assert len(tasks_of(hub, batch)) == len(tasks)


def test_a_model_saved_by_hand_counts_samples_after_it(sqlite_hub: learnhub.Hub) -> None:
    hub = sqlite_hub
    mean_trainer(hub)
    add(hub, "b", 3 * MIN_START)
    hub.models.save("b", b"imported")  # no data range: the samples so far are its
    assert [d.action for d in hub.continuous.plan()] == ["wait"]
    add(hub, "b", MIN_UPDATE + 1)
    assert [d.action for d in hub.continuous.plan()] == [FINETUNE]


def test_plan_needs_a_trainer_and_the_schedule_carries_its_settings(
    sqlite_hub: learnhub.Hub, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="no trainer to plan for"):
        sqlite_hub.continuous.plan()
    mean_trainer(sqlite_hub, limit_time="2m", plan_every="90s")
    sqlite_hub.worker()  # stores the planner's schedule
    (schedule,) = [s for s in sqlite_hub.jobs.schedules() if s["name"] == PLAN_TASK]
    assert schedule["every_s"] == 90.0 and schedule["queue"] == "learnhub"
    assert json.loads(schedule["args"])["limit_s"] == 120.0
    add(sqlite_hub, "b", MIN_START + 1)
    # Another hub on the database, without the trainer's code, plans with those settings.
    with learnhub.open(sqlite_hub.store.url) as other:
        assert [d.action for d in other.continuous.plan()] == [SCRATCH]
        # ... and runs the scheduled planner job.
        job = other.jobs.enqueue(PLAN_TASK, json.loads(schedule["args"]), queue="learnhub")
        other.worker(queues=["learnhub"], burst=True).run()
        done = other.jobs.get(job.id)
        assert done is not None and done.state == "succeeded" and done.result == {"busy": 1}


def test_trainer_settings_are_checked(sqlite_hub: learnhub.Hub) -> None:
    with pytest.raises(InvalidInput, match="limit_time must be a positive duration"):
        sqlite_hub.trainer(limit_time="soon")
    with pytest.raises(InvalidInput, match="limit_time"):
        sqlite_hub.trainer(limit_time=0)
    with pytest.raises(InvalidInput, match="working_status may not use 'done'"):
        sqlite_hub.trainer(working_status=("training", "done"))
    with pytest.raises(InvalidInput, match="min_start_count must be an integer"):
        sqlite_hub.trainer(min_start_count=-1)
    with pytest.raises(InvalidInput, match="give at least one status"):
        sqlite_hub.trainer(working_status=())
    assert make_config(1, 1, "1.5h", "fitting", "500ms").limit_s == 5400.0
    assert sqlite_hub.continuous.config is None  # nothing was registered


# --- training runs -------------------------------------------------------------------------


def test_scratch_then_finetune_records_the_data_range(sqlite_hub: learnhub.Hub) -> None:
    hub = sqlite_hub
    seen: list[tuple[str, int | None, int | None, int]] = []

    @hub.trainer(
        min_start_count=MIN_START, min_update_count=MIN_UPDATE, working_status=("fit", "eval")
    )
    def train(ctx: TrainContext) -> None:
        ctx.set_status("eval")
        table = pa.concat_tables([ctx.train(), ctx.validation()])
        base = ctx.base_model.id if ctx.base_model else None
        seen.append((ctx.mode, base, ctx.since, table.num_rows))
        ctx.save_model({"n": table.num_rows}, metrics={"rows": table.num_rows}, status="candidate")

    first = hub.samples.add("b", {"y": np.zeros(MIN_START + 1)})
    hub.continuous.plan()
    hub.worker(burst=True).run()
    second = hub.samples.add("b", {"y": np.ones(MIN_UPDATE + 1)})
    hub.continuous.plan()
    hub.worker(burst=True).run()

    m1, m2 = hub.models.list("b")
    assert seen == [
        (SCRATCH, None, None, MIN_START + 1),
        (FINETUNE, m1.id, first.last_ts + 1, MIN_UPDATE + 1),
    ]
    assert (m1.mode, m1.data_from_ts, m1.data_to_ts) == (SCRATCH, first.first_ts, first.last_ts)
    assert (m2.mode, m2.data_from_ts, m2.data_to_ts) == (FINETUNE, second.first_ts, second.last_ts)
    assert m2.load() == {"n": MIN_UPDATE + 1} and m2.status == "candidate"
    t1, t2 = tasks_of(hub, "b")
    assert (t1.status, t1.model_id, t2.status, t2.model_id) == ("done", m1.id, "done", m2.id)
    assert t2.started_at is not None and t2.finished_at is not None


def test_working_statuses_and_a_stopped_task(sqlite_hub: learnhub.Hub) -> None:
    hub = sqlite_hub
    errors: list[BaseException] = []

    @hub.trainer(min_start_count=MIN_START, working_status=("fit",))
    def train(ctx: TrainContext) -> None:
        for bad in ("ready", "done"):
            try:
                ctx.set_status(bad)
            except InvalidInput as exc:
                errors.append(exc)
        # The planner gave up on this task meanwhile (e.g. it ran past limit_time).
        hub.continuous._finish(ctx.task_id, "dead", hub.continuous.config, error="too slow")  # type: ignore[arg-type]
        try:
            ctx.save_model(b"late")
        except TaskStopped as exc:
            errors.append(exc)
            raise

    add(hub, "b", MIN_START + 1)
    (decision,) = hub.continuous.plan()
    hub.worker(burst=True).run()
    assert [type(e) for e in errors] == [InvalidInput, InvalidInput, TaskStopped]
    assert "not one of the trainer's working_status ['fit']" in str(errors[0])
    assert "is no longer running (dead: too slow)" in str(errors[2])
    assert hub.models.list("b") == []
    job = hub.jobs.get(decision.job_id)  # type: ignore[arg-type]
    assert job is not None and (job.state, job.attempts) == ("failed", 1)


def test_a_hung_trainer_is_marked_dead_and_its_job_stopped(hub: learnhub.Hub) -> None:
    release = threading.Event()
    calls: list[int] = []

    # limit_time is also all the second task gets to be claimed and done: under a loaded CI
    # machine 1 s was too little, and the planner marked it dead too.
    @hub.trainer(min_start_count=MIN_START, limit_time=3.0)
    def train(ctx: TrainContext) -> None:
        calls.append(ctx.task_id)
        if len(calls) == 1:
            release.wait(timeout=60)  # hangs until the end of the test
        ctx.save_model(b"fitted")

    add(hub, "b", MIN_START + 1)
    (first,) = hub.continuous.plan()
    try:
        with running(hub):
            wait_for(lambda: tasks_of(hub, "b")[0].status == "training", what="training")
            dead = wait_for(
                lambda: [d for d in hub.continuous.plan() if d.action == "dead"],
                timeout=15,
                what="the planner to mark the task dead",
            )
            zombie = hub.continuous.task(first.task_id)  # type: ignore[arg-type]
            assert zombie is not None and zombie.status == "dead"
            assert "limit_time is 3s" in (zombie.error or "")
            assert dead[0].task_id == first.task_id
            job = hub.jobs.wait(first.job_id, timeout=15)  # type: ignore[arg-type]
            assert job.state in ("failed", "cancelled"), job  # timed out, or cancelled
            # A dead task no longer blocks its batch: the same plan made a new one.
            second = tasks_of(hub, "b")[-1]
            assert second.id != first.task_id
            release.set()
            wait_for(lambda: hub.continuous.task(second.id).status == "done", what="task 2")  # type: ignore[union-attr]
    finally:
        release.set()
    # The hung run, released, saved nothing: its task was dead.
    (model,) = hub.models.list("b")
    assert model.task_id == second.id
    assert hub.continuous.task(first.task_id).status == "dead"  # type: ignore[arg-type, union-attr]


def test_a_trainer_past_limit_time_is_interrupted_by_its_worker(sqlite_hub: learnhub.Hub) -> None:
    hub = sqlite_hub

    @hub.trainer(min_start_count=MIN_START, limit_time=0.5)
    def train(ctx: TrainContext) -> None:
        while True:  # an endless training loop, alive and busy
            time.sleep(0.01)

    @hub.task("add")
    def add_task(ctx: object, a: int, b: int) -> int:
        return a + b

    add(hub, "b", MIN_START + 1)
    (decision,) = hub.continuous.plan()
    with running(hub, concurrency=1):
        job = hub.jobs.wait(decision.job_id, timeout=30)  # type: ignore[arg-type]
        # The one job thread is free again: the endless loop was interrupted.
        later = hub.jobs.wait(hub.jobs.enqueue("add", {"a": 1, "b": 1}).id, timeout=30)
    assert (job.state, job.error, job.attempts) == ("failed", "timed out after 0.5s", 1)
    assert later.state == "succeeded"
    (task,) = tasks_of(hub, "b")
    assert (task.status, task.error) == ("dead", "timed out after limit_time 0.5s")


def test_a_failing_trainer_fails_its_task_and_the_worker_goes_on(hub: learnhub.Hub) -> None:
    @hub.trainer(min_start_count=MIN_START)
    def train(ctx: TrainContext) -> None:
        if ctx.batch == "bad":
            raise ValueError("bad sensor data")
        ctx.save_model(b"ok")

    @hub.task("add")
    def add_task(ctx: object, a: int, b: int) -> int:
        return a + b

    add(hub, "bad", MIN_START + 1)
    add(hub, "good", MIN_START + 1)
    with running(hub, concurrency=2) as (_, thread):
        decisions = {d.batch: d for d in hub.continuous.plan()}
        bad_job = hub.jobs.wait(decisions["bad"].job_id, timeout=30)  # type: ignore[arg-type]
        good_job = hub.jobs.wait(decisions["good"].job_id, timeout=30)  # type: ignore[arg-type]
        later = hub.jobs.wait(hub.jobs.enqueue("add", {"a": 2, "b": 3}).id, timeout=30)
        assert thread.is_alive()
    assert (later.state, later.result) == ("succeeded", 5)
    assert (good_job.state, bad_job.state, bad_job.attempts) == ("succeeded", "failed", 1)
    assert "training batch 'bad'" in (bad_job.error or "")
    (task,) = tasks_of(hub, "bad")
    assert task.status == "failed" and task.error == "ValueError: bad sensor data"
    assert 'raise ValueError("bad sensor data")' in (task.traceback or "")
    assert tasks_of(hub, "good")[0].status == "done"
    # The failed task does not block the batch: the next plan tries again.
    assert [d.action for d in hub.continuous.plan() if d.batch == "bad"] == [SCRATCH]


def test_two_planners_at_once_make_one_task_per_batch(store_url: str) -> None:
    batches = [f"b{i}" for i in range(6)]
    with learnhub.open(store_url) as one, learnhub.open(store_url) as two:
        for hub in (one, two):
            mean_trainer(hub)
        for batch in batches:
            add(one, batch, MIN_START + 1)
        barrier = threading.Barrier(2)
        results: dict[int, list[Decision]] = {}

        def plan(i: int, hub: learnhub.Hub) -> None:
            barrier.wait(timeout=10)
            results[i] = hub.continuous.plan()

        threads = [threading.Thread(target=plan, args=(i, h)) for i, h in enumerate((one, two))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(results) == [0, 1]
        for batch in batches:
            actions = sorted(d.action for r in results.values() for d in r if d.batch == batch)
            assert actions == ["busy", SCRATCH], (batch, results)
            (task,) = tasks_of(one, batch)
            assert task.status == "queued"
        live = one.jobs.list(queue=QUEUES[SCRATCH])
        assert sorted(j.dedupe_key for j in live) == sorted(f"train:{b}" for b in batches)


def test_a_live_training_job_of_the_batch_blocks_a_new_task(hub: learnhub.Hub) -> None:
    """What a second planner meets on the job's dedupe key: its task is rolled back."""
    mean_trainer(hub)
    add(hub, "b", MIN_START + 1)
    other = hub.jobs.enqueue(TRAIN_TASK, {"task_id": 999}, dedupe_key="train:b", queue="x")
    (decision,) = hub.continuous.plan()
    assert decision.action == "busy" and f"job {other.id} holds train:b" in decision.reason
    assert tasks_of(hub, "b") == []
    hub.jobs.cancel(other.id)
    assert [d.action for d in hub.continuous.plan()] == [SCRATCH]


def test_a_task_whose_job_ended_without_it_is_failed(sqlite_hub: learnhub.Hub) -> None:
    mean_trainer(sqlite_hub)
    add(sqlite_hub, "b", MIN_START + 1)
    (first,) = sqlite_hub.continuous.plan()
    sqlite_hub.jobs.cancel(first.job_id)  # type: ignore[arg-type]
    failed, again = sqlite_hub.continuous.plan()
    assert (failed.action, failed.task_id) == ("failed", first.task_id)
    assert f"its job {first.job_id} cancelled" in failed.reason
    assert again.action == SCRATCH


# --- a worker killed mid-training ----------------------------------------------------------


def app_env(store_url: str, folder: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "LEARNHUB_DB": store_url,
        "LEARNHUB_JOBS_LEASE_SECONDS": "1.5",
        "CONT_APP_DIR": str(folder),
        "CONT_APP_HANG_ATTEMPTS": "1",
        "PYTHONPATH": str(TESTS_DIR) + (os.pathsep + path if path else ""),
    }


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        cmd = [sys.executable, "-m", "learnhub", "worker", "--app", "continuous_app:hub"]
        proc = subprocess.Popen(
            [*cmd, "-q", QUEUES[SCRATCH], "-q", QUEUES[FINETUNE]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_killed_mid_training_is_taken_over_not_duplicated(
    store_url: str, tmp_path: Path, worker_process: Callable[[dict[str, str]], subprocess.Popen]
) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    env = app_env(store_url, folder)
    with learnhub.open(store_url) as hub:
        add(hub, "b", MIN_START + 1)
        config = make_config(MIN_START, MIN_UPDATE, "10m", ("training",), "1h")
        (decision,) = hub.continuous.plan(config)
        task_id = decision.task_id
        first = worker_process(env)
        started = folder / f"started-{task_id}-1"
        wait_for(started.exists, timeout=60, what="the first attempt to start training")
        assert int(started.read_text()) == first.pid
        assert tasks_of(hub, "b")[0].status == "training"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

        second = worker_process(env)
        job = hub.jobs.wait(decision.job_id, timeout=60)  # type: ignore[arg-type]
        assert int((folder / f"started-{task_id}-2").read_text()) == second.pid
        assert (job.state, job.attempts) == ("succeeded", 2), job
        (task,) = tasks_of(hub, "b")
        (model,) = hub.models.list("b")
        assert (task.id, task.status, task.model_id) == (task_id, "done", model.id)
        train_y = hub.samples.read("b", split="train").column("y").to_numpy()
        assert model.task_id == task_id and model.load() == {"mean": train_y.mean()}
        assert [d.action for d in hub.continuous.plan(config)] == ["wait"]


def test_cli_plan_tasks_and_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    env = app_env(url, tmp_path)
    with learnhub.open(url) as hub:
        add(hub, ODD_BATCH, MIN_START + 1)

    def cli(*args: str) -> object:
        done = subprocess.run(
            [sys.executable, "-m", "learnhub", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    (decision,) = cli("train", "plan", "--app", "continuous_app:hub", "--json")
    assert (decision["batch"], decision["action"]) == (ODD_BATCH, SCRATCH)  # type: ignore[index]
    (task,) = cli("train", "tasks", ODD_BATCH, "--json")
    assert (task["id"], task["status"]) == (decision["task_id"], "queued")  # type: ignore[index]
    assert cli("models", "ls", ODD_BATCH, "--json") == []
    failed = subprocess.run(
        [sys.executable, "-m", "learnhub", "train", "plan", "--db", url],
        env={k: v for k, v in env.items() if k != "LEARNHUB_DB"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "no trainer to plan for" in failed.stderr


# --- models and inference ------------------------------------------------------------------


def test_models_are_learning_artifacts(hub: learnhub.Hub) -> None:
    blob = hub.models.save(ODD_BATCH, b"\x00weights", {"val_loss": 0.25, "acc": 0.9})
    obj = hub.models.save(ODD_BATCH, {"w": [1.0, 2.0]}, {"acc": np.float32(0.5)}, "staging")
    artifact = hub.learning.lookup(f"model/{ODD_BATCH}")
    assert artifact is not None and artifact.files["model"] == b"\x00weights"
    assert artifact.version == blob.version and artifact.metric == 0.25
    assert {v.version for v in hub.learning.versions(f"model/{ODD_BATCH}")} == {
        blob.version,
        obj.version,
    }
    assert blob.load() == b"\x00weights" and obj.load() == {"w": [1.0, 2.0]}
    assert obj.metrics == {"acc": 0.5}
    assert hub.models.latest(ODD_BATCH).id == blob.id  # type: ignore[union-attr]
    assert hub.models.latest(ODD_BATCH, status=None).id == obj.id  # type: ignore[union-attr]
    assert hub.models.latest(ODD_BATCH, "staging").id == obj.id  # type: ignore[union-attr]
    assert hub.models.latest("nothing here") is None
    retired = hub.models.set_status(blob.id, "retired")
    assert retired.status == "retired" and hub.models.latest(ODD_BATCH) is None
    assert [m.id for m in hub.models.list(ODD_BATCH)] == [blob.id, obj.id]
    assert hub.models.get(obj.id) == obj and hub.models.get(10**9) is None
    with pytest.raises(InvalidInput, match="there is no model"):
        hub.models.set_status(10**9, "ready")
    with pytest.raises(InvalidInput, match="metrics must be JSON with finite numbers"):
        hub.models.save("b", b"x", {"val_loss": float("nan")})
    with pytest.raises(InvalidInput, match="cannot pickle the model"):
        hub.models.save("b", threading.Lock())
    assert hub.models.list("b") == []


def test_infer_without_a_model_says_why(hub: learnhub.Hub) -> None:
    def fn(rows: object, model: object) -> list[int]:
        return [0]

    with pytest.raises(
        InvalidInput,
        match=r"batch 'b' has no model with status in \['ready'\]: it has no model yet",
    ):
        hub.infer("b", [1], fn)
    hub.models.save("b", b"x", status="training")
    with pytest.raises(
        InvalidInput, match=r"in \['ready', 'canary'\]: its models' statuses are 'training'"
    ):
        hub.infer("b", [1], fn, available_status=("ready", "canary"))
    assert hub.samples.count("b", kind="inference") == 0


def test_infer_combines_status_sets(hub: learnhub.Hub) -> None:
    stable = hub.models.save("b", {"bias": 1.0}, status="ready")
    canary = hub.models.save("b", {"bias": 2.0}, status="canary")

    def predict(rows: list[float], model: dict[str, float]) -> np.ndarray:
        return np.asarray(rows) + model["bias"]

    out_stable = hub.infer("b", [10.0, 20.0], predict)
    out_canary = hub.infer("b", [10.0, 20.0], predict, available_status="canary")
    out_newest = hub.infer("b", [30.0], predict, available_status=("ready", "canary"))
    assert out_stable.column("prediction").to_pylist() == [11.0, 21.0]
    assert out_canary.column("prediction").to_pylist() == [12.0, 22.0]
    assert out_newest.column("prediction").to_pylist() == [32.0]
    assert out_stable.column("model_version").to_pylist() == [stable.id] * 2
    assert out_newest.column("model_version").to_pylist() == [canary.id]
    stored = hub.samples.read("b", kind="inference")
    assert stored.column("model_version").to_pylist() == [stable.id] * 2 + [canary.id] * 3
    assert stored.column("ts").to_pylist() == (
        out_stable.column("ts").to_pylist()
        + out_canary.column("ts").to_pylist()
        + out_newest.column("ts").to_pylist()
    )
    assert len(set(stored.column("ts").to_pylist())) == 5
    assert hub.samples.count("b") == 0  # training samples are another series


@pytest.mark.parametrize(
    "outputs",
    [
        pytest.param(lambda: pa.table({"p": [1.0, 2.0]}), id="table"),
        pytest.param(lambda: {"p": [1.0, 2.0]}, id="dict"),
        pytest.param(lambda: [{"p": 1.0}, {"p": 2.0}], id="records"),
        pytest.param(lambda: __import__("pandas").DataFrame({"p": [1.0, 2.0]}), id="pandas"),
    ],
)
def test_infer_output_shapes(sqlite_hub: learnhub.Hub, outputs: Callable[[], object]) -> None:
    sqlite_hub.models.save("b", b"m")
    out = sqlite_hub.infer("b", None, lambda rows, model: outputs())
    assert out.column_names == ["ts", "p", "model_version"]
    assert out.column("p").to_pylist() == [1.0, 2.0]


def test_infer_rejects_bad_outputs(sqlite_hub: learnhub.Hub) -> None:
    sqlite_hub.models.save("b", b"m")
    with pytest.raises(InvalidInput, match=r"fn returned ndarray of shape \(2, 2\)"):
        sqlite_hub.infer("b", None, lambda rows, model: np.zeros((2, 2)))
    with pytest.raises(InvalidInput, match="have a column 'model_version'"):
        sqlite_hub.infer("b", None, lambda rows, model: {"model_version": [1]})
    with pytest.raises(InvalidInput, match="fn must be a function"):
        sqlite_hub.infer("b", None, "predict")  # type: ignore[arg-type]
    assert sqlite_hub.samples.count("b", kind="inference") == 0
