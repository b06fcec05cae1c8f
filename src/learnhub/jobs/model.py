"""What a job is, and what a task may raise to steer its retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

WAITING, QUEUED, RUNNING = "waiting", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATES = (WAITING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


class Retry(Exception):  # noqa: N818 - named for what the task asks for
    """Raise from a task to run it again ``after`` seconds from now (counts as an attempt)."""

    def __init__(self, after: float = 0.0, reason: str = "") -> None:
        super().__init__(reason or f"retry in {after:g}s")
        self.after = after


class PermanentError(Exception):
    """Raise from a task to fail it now, without further attempts."""


class JobTimeout(BaseException):  # noqa: N818 - BaseException: a task's `except Exception` must not swallow it
    """Raised inside a task's thread when the job runs past its timeout."""


@dataclass(frozen=True)
class Job:
    id: int
    queue: str
    task: str
    args: dict[str, Any]
    priority: int
    flow_id: str
    flow_started_at: datetime
    state: str
    attempts: int
    max_attempts: int
    run_after: datetime
    timeout: float | None
    worker_id: str | None
    dedupe_key: str | None
    result: Any
    error: str | None
    traceback: str | None
    waiting_on: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.state in FINAL


def _time(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC)


def job_from_row(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        args=json.loads(row["args"]),
        priority=row["priority"],
        flow_id=row["flow_id"],
        flow_started_at=_time(row["flow_started_ns"]),  # type: ignore[arg-type]
        state=row["state"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        run_after=_time(row["run_after_ns"]),  # type: ignore[arg-type]
        timeout=row["timeout_s"],
        worker_id=row["worker_id"],
        dedupe_key=row["dedupe_key"],
        result=None if row["result"] is None else json.loads(row["result"]),
        error=row["error"],
        traceback=row["traceback"],
        waiting_on=row["waiting_on"],
        created_at=_time(row["created_ns"]),  # type: ignore[arg-type]
        started_at=_time(row["started_ns"]),
        finished_at=_time(row["finished_ns"]),
    )
