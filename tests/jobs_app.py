"""The task module that the job tests' worker processes load: ``--app jobs_app:hub``.

The store comes from LEARNHUB_DB in the process's environment (``learnhub.open()`` reads the
configuration), like a user's app. Tests put this directory on PYTHONPATH.

``crash.record`` leaves a completion record, ``<job id> <attempt> <pid>``, in a file of this
process under $JOBS_APP_RECORDS, written and fsynced *before* the task returns, that is,
before the worker acknowledges the job. A worker killed between the two leaves a record for
an attempt that the queue never saw finish; the job's lease then expires and another attempt
runs it again: the at-least-once case the crash test counts.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import learnhub
from learnhub.jobs import JobContext, PermanentError

hub = learnhub.open()
# A worker that hangs can be asked where: the crash test sends SIGUSR1 before giving up.
faulthandler.register(signal.SIGUSR1, all_threads=True)

# Not a Hub: for the CLI test of a wrong --app attribute.
notahub = "a string, not a hub"

CRASH_QUEUE = "crash"
# Killed workers cost a job an attempt each time; with a handful of kills per run a job
# might be unlucky more than the default 3 times, and the test is about losing nothing.
CRASH_MAX_ATTEMPTS = 20


@hub.task("crash.record", queue=CRASH_QUEUE, max_attempts=CRASH_MAX_ATTEMPTS, retry_delay=0.05)
def record(ctx: JobContext, n: int, busy_ms: float = 1.0) -> int:
    # A little busy work, so that a SIGKILL lands in the middle of jobs.
    until = time.perf_counter() + busy_ms / 1000
    while time.perf_counter() < until:
        pass
    folder = Path(os.environ["JOBS_APP_RECORDS"])
    line = f"{ctx.job.id} {ctx.job.attempts} {os.getpid()}\n".encode()
    fd = os.open(folder / f"{os.getpid()}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one short O_APPEND write: whole, or not at all, under SIGKILL
        os.fsync(fd)
    finally:
        os.close(fd)
    return n


@hub.task("add")
def add(ctx: JobContext, a: int, b: int) -> int:
    return a + b


@hub.task("explode", max_attempts=1)
def explode(ctx: JobContext, why: str = "boom") -> None:
    raise PermanentError(why)


@hub.task("diamond.start")
def diamond_start(ctx: JobContext) -> str:
    return "start"


@hub.task("diamond.left")
def diamond_left(ctx: JobContext) -> str:
    return "left"


@hub.task("diamond.right")
def diamond_right(ctx: JobContext) -> str:
    return "right"


@hub.task("diamond.join")
def diamond_join(ctx: JobContext) -> str:
    return "join"
