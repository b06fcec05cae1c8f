"""Offline training: when the machine is idle, improve learning data no run is computing now.

Training functions are registered per key pattern::

    @service.offline.register("asc/*")
    def retrain(key, current):          # current: the key's Artifact, or None
        ...
        return files, metric, attrs     # a new version; None: nothing better this time

Every ``idle_interval``, if the load average (1 min) is below ``idle_load``, the hub picks
the keys worth it first (those peers asked for most, then the worst metric) and enqueues a
job for up to ``idle_batch`` of them: task ``learnhub.peers.train`` on the hub's own queue
(``learnhub``), deduplicated per key (a key is never trained twice at once), with a timeout.
The job runs the function and stores what comes out with the current version as its base:
a run that stored meanwhile is combined by the key's policy, never overwritten. A new
version is then offered and announced like any other.

The functions are registered in this process, so the job runs on a worker of the process
that registered them (``learnhub serve`` runs one on the ``learnhub`` queue); a worker
without a function for the key fails the job with a message that says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from learnhub._glob import glob_match
from learnhub.errors import ConfigError, InvalidInput
from learnhub.jobs.model import PermanentError
from learnhub.jobs.queue import TaskDef

if TYPE_CHECKING:
    from learnhub.hub import Hub
    from learnhub.jobs import Job, JobContext
    from learnhub.learning import Artifact
    from learnhub.peers.table import PeerTable

log = logging.getLogger("learnhub.peers.offline")

TRAIN_TASK = "learnhub.peers.train"
TRAIN_QUEUE = "learnhub"  # the hub's own queue: every hub's worker runs it
TRAIN_TIMEOUT_S = 3600.0

TrainFn = Callable[
    [str, "Artifact | None"], "tuple[Mapping[str, bytes], float, Mapping[str, Any] | None] | None"
]


class OfflineTraining:
    def __init__(
        self,
        hub: Hub,
        table: PeerTable,
        idle_load: float | None,
        batch: int = 1,
        load_average: Callable[[], float] = lambda: os.getloadavg()[0],
        timeout: float = TRAIN_TIMEOUT_S,
    ) -> None:
        self.hub = hub
        self.table = table
        self.idle_load = idle_load
        self.batch = batch
        self.load_average = load_average
        self.timeout = timeout
        self.functions: dict[str, TrainFn] = {}
        hub.jobs.register(
            TaskDef(TRAIN_TASK, self.train_job, queue=TRAIN_QUEUE, max_attempts=1, timeout=timeout)
        )

    def register(self, pattern: str, fn: TrainFn | None = None) -> Any:
        """Train keys matching ``pattern`` with ``fn`` when idle (also as a decorator)."""
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"an offline training pattern must be a key glob, got {pattern!r}")

        def add(fn: TrainFn) -> TrainFn:
            if not callable(fn):
                raise ConfigError(f"the offline training function for {pattern!r} is {fn!r}")
            self.functions[pattern] = fn
            return fn

        return add if fn is None else add(fn)

    def function_for(self, key: str) -> TrainFn | None:
        for pattern, fn in self.functions.items():
            if glob_match(pattern, key):
                return fn
        return None

    def candidates(self) -> list[str]:
        """Keys a function is registered for: most wanted by peers first, then worst metric."""
        metric: dict[str, float] = {}
        after = ""
        while True:
            rows = self.table.digest(after, 1000)
            for row in rows:
                metric[row["key"]] = row["metric"]
            if len(rows) < 1000:
                break
            after = rows[-1]["key"]
        wants = self.table.key_wants()
        keys = {k for k in [*metric, *wants] if self.function_for(k) is not None}
        return sorted(keys, key=lambda k: (-wants.get(k, 0), -metric.get(k, float("inf")), k))

    def idle(self) -> bool:
        return self.idle_load is not None and self.load_average() < self.idle_load

    def run_once(self) -> list[Job]:
        """One round if the machine is idle: the training jobs enqueued (a key whose job is
        still queued or running gets that job back, not a second one)."""
        if not self.functions or not self.idle():
            return []
        return [
            self.hub.jobs.enqueue(
                TRAIN_TASK,
                {"key": key},
                queue=TRAIN_QUEUE,
                timeout=self.timeout,
                max_attempts=1,
                dedupe_key=f"{TRAIN_TASK}:{key}",
            )  # fmt: skip
            for key in self.candidates()[: self.batch]
        ]

    def train_job(self, ctx: JobContext, key: str) -> dict[str, Any] | None:
        """The job: train ``key`` once and store the result on top of its current version.
        Its result: the version stored and the key's current version afterwards (None: the
        function found nothing better)."""
        fn = self.function_for(key)
        if fn is None:
            raise PermanentError(
                f"no offline training function for {key!r} in this process: register one "
                "with service.offline.register(pattern, fn) in the process whose worker runs "
                f"the {TRAIN_QUEUE!r} queue"
            )
        current = self.hub.learning.lookup(key, local=True)
        out = fn(key, current)
        if out is None:
            log.info("offline training of %r found nothing better", key)
            return None
        if not isinstance(out, tuple) or len(out) != 3:
            raise PermanentError(
                f"an offline training function must return (files, metric, attrs) or None, "
                f"got {type(out).__name__}; nothing was stored"
            )
        files, metric, attrs = out
        try:
            result = self.hub.learning.put(
                key, files, metric, attrs, base=current.version if current else None
            )
        except InvalidInput as exc:
            raise PermanentError(
                f"offline training of {key!r} made no storable version: {exc}"
            ) from None
        log.info("offline training of %r stored %s (metric %s)", key, result.version[:12], metric)
        return {"version": result.version, "current": result.current}
