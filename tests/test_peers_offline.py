"""Offline training: idle hubs enqueue training jobs for the keys peers asked for most, then
the worst; a job stores its result on top of the key's current version."""

from __future__ import annotations

import re
import threading
import time

import pytest

import learnhub
from learnhub.errors import ConfigError
from learnhub.peers.offline import TRAIN_QUEUE, TRAIN_TASK, OfflineTraining
from learnhub.peers.table import PeerTable


def run_jobs(hub: learnhub.Hub) -> None:
    hub.run_worker(queues=[TRAIN_QUEUE], burst=True, concurrency=1)


def test_idle_rounds_enqueue_jobs_for_the_most_wanted_then_the_worst(hub: learnhub.Hub) -> None:
    load = [0.1]
    trainer = OfflineTraining(hub, PeerTable(hub.store), idle_load=0.5, batch=1,
                              load_average=lambda: load[0])  # fmt: skip
    hub.learning.store("asc/good", {"f": b"g"}, 0.1)
    base = hub.learning.store("asc/bad", {"f": b"b"}, 0.9)
    hub.learning.store("other/x", {"f": b"x"}, 5.0)  # no function for it
    PeerTable(hub.store).want("peer1", "asc/good")
    seen = []

    @trainer.register("asc/*")
    def improve(key, current):
        seen.append((key, current.version if current else None))
        return {"f": current.files["f"] + b"+"}, current.metric / 2, None

    assert trainer.candidates() == ["asc/good", "asc/bad"]  # wanted first, then worst
    [job] = trainer.run_once()
    assert (job.task, job.queue, job.args) == (TRAIN_TASK, TRAIN_QUEUE, {"key": "asc/good"})
    assert job.timeout == trainer.timeout
    # Deduplicated per key: a second round while the first job waits gets that job back.
    assert [j.id for j in trainer.run_once()] == [job.id]
    assert seen == []  # nothing trained on the service's thread: the job does it
    run_jobs(hub)
    done = hub.jobs.get(job.id)
    assert done.state == "succeeded"
    assert hub.learning.best("asc/good").version == done.result["version"]
    assert hub.learning.best("asc/good").metric == 0.05
    trainer.batch = 5
    load[0] = 3.0  # busy: nothing is enqueued
    assert trainer.run_once() == []
    load[0] = 0.0
    jobs = trainer.run_once()
    assert sorted(j.args["key"] for j in jobs) == ["asc/bad", "asc/good"]
    run_jobs(hub)
    assert hub.learning.best("asc/bad").metric == 0.45
    assert hub.learning.best("asc/bad").base == base  # stored on top of what it trained from
    assert hub.learning.best("other/x").metric == 5.0


def test_a_key_that_moved_on_while_training_is_combined_by_its_policy(
    hub: learnhub.Hub,
) -> None:
    trainer = OfflineTraining(hub, PeerTable(hub.store), 1.0, load_average=lambda: 0.0)
    hub.learning.store("asc/k", {"f": b"k"}, 0.5)
    better = []

    @trainer.register("asc/*")
    def train(key, current):
        # Another run stores a better version while this one trains.
        better.append(hub.learning.store(key, {"f": b"meanwhile"}, 0.1, base=current.version))
        return {"f": b"offline"}, 0.3, None

    [job] = trainer.run_once()
    run_jobs(hub)
    done = hub.jobs.get(job.id)
    assert done.state == "succeeded"
    assert done.result["current"] == better[0]  # best policy: the lower metric stays current
    [combination] = hub.learning.combinations("asc/k")
    assert (combination.current, combination.incoming) == (better[0], done.result["version"])
    assert len(hub.learning.versions("asc/k")) == 3  # nothing lost from the history


def test_a_failing_function_fails_its_job_and_stores_nothing(hub: learnhub.Hub) -> None:
    trainer = OfflineTraining(hub, PeerTable(hub.store), 1.0, load_average=lambda: 0.0)
    version = hub.learning.store("asc/k", {"f": b"k"}, 0.5)
    cases = [
        (lambda key, current: 1 / 0, "ZeroDivisionError"),
        (lambda key, current: ({}, 0.1, None), "made no storable version"),
        (lambda key, current: "junk", "must return \\(files, metric, attrs\\) or None"),
    ]
    for fn, error in cases:
        trainer.register("asc/*", fn)
        [job] = trainer.run_once()
        run_jobs(hub)
        failed = hub.jobs.get(job.id)
        assert failed.state == "failed"
        assert failed.error is not None
        assert re.search(error, failed.error), failed.error
    trainer.register("asc/*", lambda key, current: None)  # nothing better: no version
    [job] = trainer.run_once()
    run_jobs(hub)
    assert hub.jobs.get(job.id).state == "succeeded"
    assert hub.jobs.get(job.id).result is None
    assert [v.version for v in hub.learning.versions("asc/k")] == [version]
    with pytest.raises(ConfigError, match="key glob"):
        trainer.register("", lambda key, current: None)
    disabled = OfflineTraining(hub, PeerTable(hub.store), None, load_average=lambda: 0.0)
    disabled.register("asc/*", lambda key, current: ({"f": b"z"}, 0.0, None))
    assert disabled.run_once() == []


def test_a_job_without_a_function_here_fails_with_what_to_do(hub: learnhub.Hub) -> None:
    trainer = OfflineTraining(hub, PeerTable(hub.store), 1.0, load_average=lambda: 0.0)
    version = hub.learning.store("asc/k", {"f": b"k"}, 0.5)
    job = hub.jobs.enqueue(TRAIN_TASK, {"key": "asc/k"}, queue=TRAIN_QUEUE)
    run_jobs(hub)
    failed = hub.jobs.get(job.id)
    assert failed.state == "failed"
    assert "no offline training function for 'asc/k'" in failed.error
    assert "register" in failed.error
    assert [v.version for v in hub.learning.versions("asc/k")] == [version]
    assert trainer.functions == {}


def test_a_training_run_past_its_timeout_is_failed_and_stores_nothing(hub: learnhub.Hub) -> None:
    trainer = OfflineTraining(hub, PeerTable(hub.store), 1.0, load_average=lambda: 0.0, timeout=0.5)
    version = hub.learning.store("asc/k", {"f": b"k"}, 0.5)
    released = threading.Event()

    @trainer.register("asc/*")
    def endless(key, current):
        deadline = time.monotonic() + 60  # a training run that would go on for a minute
        while time.monotonic() < deadline and not released.is_set():
            time.sleep(0.01)  # work, not synchronization: the job's timeout must stop it
        return {"f": b"late"}, 0.0, None

    [job] = trainer.run_once()
    try:
        run_jobs(hub)
    finally:
        released.set()
    failed = hub.jobs.get(job.id)
    assert failed.state == "failed"
    assert [v.version for v in hub.learning.versions("asc/k")] == [version]
