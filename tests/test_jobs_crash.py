"""Crash safety: real ``learnhub worker`` processes, SIGKILLed at random and restarted.

5,000 jobs, 4 worker processes (4 job threads each). While jobs remain, a random worker is
killed with SIGKILL at a random moment and a fresh one takes its place. Every job's task
leaves a durable completion record (job id, attempt, pid) *before* the worker acknowledges
it, so a kill between the two shows up as a second completion of the same job: at-least-once
delivery, which is allowed only after the job's lease expired. The test checks that nothing is
lost or failed, that every repeat completion is explained by an expired lease, and reports how
many there were.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import learnhub
from conftest import wait_for
from learnhub.jobs.model import FINAL, SUCCEEDED

TESTS_DIR = Path(__file__).resolve().parent
N_JOBS = 5_000
N_FLOWS = 5
N_WORKERS = 4
CONCURRENCY = 4
LEASE_SECONDS = "1.5"
QUEUE = "crash"  # jobs_app.CRASH_QUEUE
TASK = "crash.record"
MAX_ATTEMPTS = 20  # jobs_app.CRASH_MAX_ATTEMPTS
STOP_KILLING_AT = 0.8  # fraction of jobs final after which the killing stops
MIN_KILL_ROUNDS = 1  # every worker slot is killed at least this many times
# CPU per job: 5,000 jobs then take >= 10 s of both cores, time for every slot to be killed
# and replaced (each restart ~1-3 s) while jobs remain; with 1 ms, PostgreSQL's workers
# once finished them all after three kills.
BUSY_MS = 4.0


def worker_env(store_url: str, records: Path) -> dict[str, str]:
    """The environment of a worker process: the store, a short lease, the app on the path."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,  # conftest's isolated_env has removed the user's LEARNHUB_* settings
        "LEARNHUB_DB": store_url,
        "LEARNHUB_JOBS_LEASE_SECONDS": LEASE_SECONDS,
        "JOBS_APP_RECORDS": str(records),
        "PYTHONPATH": str(TESTS_DIR) + (os.pathsep + path if path else ""),
    }


class WorkerProcess:
    """One ``learnhub worker --app jobs_app:hub``, its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "learnhub",
                    "worker",
                    "--app",
                    "jobs_app:hub",
                    "--concurrency",
                    str(CONCURRENCY),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        """True once the worker loop has started (its signal handlers are then in place)."""
        if self.proc.poll() is not None:
            raise AssertionError(
                f"worker {self.pid} exited with {self.proc.returncode}:\n{self.output()}"
            )
        return re.search(r"worker \S+: queues ", self.output()) is not None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, and its exit code; if it does not exit, fail with its threads' stacks
        (jobs_app dumps them on SIGUSR1)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)  # the dump's time to reach the log
            raise AssertionError(
                f"worker {self.pid} did not stop within 60 s of SIGTERM:\n{self.output()}"
            ) from None


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    """Start worker processes; any still alive at the end of the test are killed."""
    started: list[WorkerProcess] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(env: dict[str, str]) -> WorkerProcess:
        w = WorkerProcess(env, logs / f"worker-{len(started)}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def final_count(hub: learnhub.Hub) -> int:
    by_state = hub.jobs.stats().get(QUEUE, {})
    return sum(n for state, n in by_state.items() if state in FINAL)


def read_records(folder: Path) -> list[tuple[int, int, int]]:
    """Every completion record: (job id, attempt, pid)."""
    records = []
    for path in sorted(folder.glob("*.log")):
        data = path.read_text()
        assert data == "" or data.endswith("\n"), f"{path} ends in a torn record"
        for line in data.splitlines():
            job_id, attempt, pid = line.split()
            assert int(pid) == int(path.stem), f"{path}: record of another process: {line}"
            records.append((int(job_id), int(attempt), int(pid)))
    return records


def test_sigkilled_workers_lose_no_job(
    store_url: str,
    tmp_path: Path,
    workers: Callable[[dict[str, str]], WorkerProcess],
    record_property: Callable[[str, object], None],
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    records = tmp_path / "records"
    records.mkdir()
    env = worker_env(store_url, records)
    backend = store_url.split(":", 1)[0]

    with learnhub.open(store_url) as hub:
        # Enqueued in a few flows, each submitted in one transaction.
        ids: list[int] = []
        for f in range(N_FLOWS):
            flow = hub.jobs.flow(f"crash-{f}")
            nodes = [
                flow.add(TASK, {"n": n, "busy_ms": BUSY_MS}, queue=QUEUE, max_attempts=MAX_ATTEMPTS)
                for n in range(f * N_JOBS // N_FLOWS, (f + 1) * N_JOBS // N_FLOWS)
            ]
            flow.submit()
            ids += [node.id for node in nodes]  # type: ignore[misc]
        assert len(set(ids)) == N_JOBS
        assert hub.jobs.stats()[QUEUE]["queued"] == N_JOBS

        slots = [workers(env) for _ in range(N_WORKERS)]
        for w in slots:
            wait_for(w.running, timeout=60, what=f"worker {w.pid} to start")

        # The chaos: kill a random worker at a random moment, start another in its place.
        # Slots are picked in shuffled rounds, so every slot is killed; the killing stops
        # once most jobs are final (and every slot has been killed).
        killed: list[int] = []
        kills_per_slot: Counter[int] = Counter()
        round_: list[int] = []
        chaos_deadline = time.monotonic() + 120
        while final_count(hub) < N_JOBS:
            if (
                min(kills_per_slot[s] for s in range(N_WORKERS)) >= MIN_KILL_ROUNDS
                and final_count(hub) >= STOP_KILLING_AT * N_JOBS
            ):
                break
            assert time.monotonic() < chaos_deadline, (
                f"jobs still not final after 120s of kills: {hub.jobs.stats()}"
            )
            if not round_:
                round_ = rng.sample(range(N_WORKERS), N_WORKERS)
            slot = round_.pop()
            time.sleep(rng.uniform(0.0, 0.4))  # the random moment of the kill, not a wait
            slots[slot].kill()
            killed.append(slots[slot].pid)
            kills_per_slot[slot] += 1
            slots[slot] = workers(env)
            wait_for(slots[slot].running, timeout=60, what=f"worker {slots[slot].pid} to start")

        wait_for(
            lambda: final_count(hub) == N_JOBS,
            timeout=120,
            what=f"every job to be final (seed {seed}); last stats {hub.jobs.stats()}",
        )
        jobs = {j.id: j for j in hub.jobs.list(queue=QUEUE, limit=2 * N_JOBS)}

    # Nothing lost, nothing failed, every result right.
    assert sorted(jobs) == sorted(ids)
    not_ok = [(j.id, j.state, j.attempts, j.error) for j in jobs.values() if j.state != SUCCEEDED]
    assert not not_ok, f"{len(not_ok)} jobs did not succeed (seed {seed}), e.g. {not_ok[:5]}"
    wrong = [(j.id, j.args, j.result) for j in jobs.values() if j.result != j.args["n"]]
    assert not wrong, f"wrong results, e.g. {wrong[:5]}"
    assert all(kills_per_slot[s] >= MIN_KILL_ROUNDS for s in range(N_WORKERS)), kills_per_slot
    # The kills hit running jobs (else this test tested nothing).
    interrupted = [j.id for j in jobs.values() if j.attempts > 1]
    assert interrupted, f"no job needed a second attempt after {len(killed)} kills (seed {seed})"

    # Every job completed at least once; each attempt at most once.
    by_job: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in read_records(records):
        by_job[job_id].append((attempt, pid))
    assert set(by_job) == set(ids), (
        f"jobs without a completion record: {sorted(set(ids) - set(by_job))[:10]}, "
        f"records of unknown jobs: {sorted(set(by_job) - set(ids))[:10]}"
    )
    for job_id, done in by_job.items():
        job = jobs[job_id]
        attempts = [a for a, _ in done]
        assert len(attempts) == len(set(attempts)), f"job {job_id}: an attempt ran twice: {done}"
        assert max(attempts) <= job.attempts, f"job {job_id}: {done}, attempts {job.attempts}"
        # The acknowledged attempt left its record, from the worker that acknowledged it.
        final_pid = int(job.worker_id.split(":")[-2])  # type: ignore[union-attr]
        assert (job.attempts, final_pid) in done, (
            f"job {job_id} succeeded in attempt {job.attempts} by pid {final_pid}, "
            f"but the records are {done}"
        )

    # A second completion only after the lease of the first expired: the recovering worker
    # logged it (before committing the requeue), naming the worker whose lease it was.
    logs = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    expired = {
        (int(m[1]), int(m[2]))
        for m in re.finditer(
            r"job (\d+) \(" + re.escape(TASK) + r"\): lease expired: worker \S*?:(\d+):\w+ ", logs
        )
    }
    duplicates = {job_id: done for job_id, done in by_job.items() if len(done) > 1}
    by_killed = by_live = 0
    for job_id, done in duplicates.items():
        assert jobs[job_id].attempts > 1
        for attempt, pid in done:
            if attempt == jobs[job_id].attempts:
                continue
            assert (job_id, pid) in expired, (
                f"job {job_id} completed in attempt {attempt} by pid {pid} and again later, "
                f"but no worker recovered it from pid {pid} after its lease expired"
            )
            if pid in killed:
                by_killed += 1
            else:
                by_live += 1
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:6000]

    # The survivors stop cleanly on SIGTERM.
    for w in slots:
        assert w.stop() == 0, w.output()

    report = {
        "backend": backend,
        "seed": seed,
        "kills": len(killed),
        "jobs_with_more_than_one_attempt": len(interrupted),
        "jobs_completed_more_than_once": len(duplicates),
        "extra_completions_by_killed_workers": by_killed,
        "extra_completions_by_live_workers_that_lost_their_lease": by_live,
    }
    for name, value in report.items():
        record_property(name, value)
    print(f"\nat-least-once report: {report}")
