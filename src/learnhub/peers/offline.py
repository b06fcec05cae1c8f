"""Offline training: when the machine is idle, improve learning data no run is computing now.

Training functions are registered per key pattern::

    @service.offline.register("asc/*")
    def retrain(key, current):          # current: the key's Artifact, or None
        ...
        return files, metric, attrs     # a new version; None: nothing better this time

Every ``idle_interval``, if the load average (1 min) is below ``idle_load``, the hub picks
the keys worth it first (those peers asked for most, then the worst metric), runs the
function for up to ``idle_batch`` of them, and stores what comes out with the current version
as its base: a run that stored meanwhile is combined by the key's policy, never overwritten.
A new version is then offered and announced like any other.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from learnhub._glob import glob_match
from learnhub.errors import ConfigError

if TYPE_CHECKING:
    from learnhub.hub import Hub
    from learnhub.learning import Artifact
    from learnhub.peers.table import PeerTable

log = logging.getLogger("learnhub.peers.offline")

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
    ) -> None:
        self.hub = hub
        self.table = table
        self.idle_load = idle_load
        self.batch = batch
        self.load_average = load_average
        self.functions: dict[str, TrainFn] = {}

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

    def run_once(self) -> list[str]:
        """One round if the machine is idle; the versions stored."""
        if not self.functions or not self.idle():
            return []
        stored = []
        for key in self.candidates()[: self.batch]:
            fn = self.function_for(key)
            assert fn is not None
            current = self.hub.learning.lookup(key, local=True)
            try:
                out = fn(key, current)
            except Exception:
                log.exception("offline training of %r failed", key)
                continue
            if out is None:
                continue
            files, metric, attrs = out
            try:
                result = self.hub.learning.put(
                    key, files, metric, attrs, base=current.version if current else None
                )
            except Exception as exc:
                log.warning(
                    "offline training of %r made a version that was not stored: %s", key, exc
                )
                continue
            log.info(
                "offline training of %r stored %s (metric %s)", key, result.version[:12], metric
            )
            stored.append(result.version)
        return stored
