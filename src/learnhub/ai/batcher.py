"""Autobatching: concurrent runs of one model merged into fewer backend calls (RedisAI's rules).

A model stored with BATCHSIZE n gets a Batcher. Each caller queues its request and blocks.
Whenever no backend call of this model is in flight, one of the waiting callers takes the
oldest request plus every later one it can merge (same number of inputs, same dtypes and
shape[1:], all inputs with the same rows along dim 0) up to n rows, runs them as one call
on its own thread, and hands every request its rows of the outputs. While that call runs,
new requests queue up, which is what makes the next call a batch.

RedisAI's rules kept: a request of n rows or more, or one whose inputs disagree on dim 0,
runs alone; with MINBATCHSIZE m a batch waits until it has m rows, or, with
MINBATCHTIMEOUT t, until its oldest request has waited t ms; outputs whose dim 0 is not the
batch's row count fail every request of the batch ("Model did not generate the expected
batch size"). One deviation: RedisAI may overshoot n with the last request it adds; here a
batch never exceeds n rows.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from learnhub.errors import AIError

RunFn = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(eq=False)  # identity equality: the queue removes exactly the requests it took
class _Request:
    inputs: list[np.ndarray]
    rows: int  # rows along dim 0; 0 = cannot be merged with anything
    shape: tuple[tuple[str, tuple[int, ...]], ...]  # what must agree to merge
    queued_at: float = field(default_factory=time.monotonic)
    outputs: list[np.ndarray] | None = None
    error: BaseException | None = None
    done: bool = False


def _request(inputs: list[np.ndarray]) -> _Request:
    dims = {array.shape[0] if array.ndim else 0 for array in inputs}
    rows = dims.pop() if len(dims) == 1 else 0
    shape = tuple((array.dtype.str, array.shape[1:]) for array in inputs)
    return _Request(list(inputs), rows, shape)


class Batcher:
    """Thread-safe front of one model's ``run`` that merges concurrent requests."""

    def __init__(
        self, run: RunFn, batchsize: int, minbatchsize: int = 0, minbatchtimeout_ms: int = 0
    ) -> None:
        self._run = run
        self.batchsize = batchsize
        # A batch never exceeds batchsize, so a larger minimum could never be met.
        self.minbatchsize = min(minbatchsize, batchsize)
        self.minbatchtimeout = minbatchtimeout_ms / 1000
        self.calls = 0  # backend calls made (merged requests count once), for tests and stats
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._busy = False  # a backend call of this model is in flight

    @property
    def pending(self) -> int:
        """Requests queued and not yet taken into a backend call."""
        with self._cond:
            return len(self._queue)

    def wait_pending(self, count: int, timeout: float) -> bool:
        """Block until exactly ``count`` requests are pending; False if ``timeout`` s pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._queue) == count, timeout)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run ``inputs`` through the model, possibly merged with other callers' requests."""
        request = _request(inputs)
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
        # Until our request is done, whenever the model is idle we may be the one to run the
        # next batch (which need not contain our request: the queue is served oldest first).
        while (batch := self._next_turn(request)) is not None:
            self._execute(batch)
        if request.error is not None:
            # Every waiter raises its own copy: one exception object raised on several threads
            # would have its traceback rewritten by each of them.
            raise copy.copy(request.error) from request.error
        assert request.outputs is not None
        return request.outputs

    def _next_turn(self, request: _Request) -> list[_Request] | None:
        """Wait until ``request`` is done (None) or a batch is ours to run."""
        with self._cond:
            while not request.done:
                wait: float | None = None
                if not self._busy:
                    batch, wait = self._take(time.monotonic())
                    if batch:
                        self._busy = True
                        self.calls += 1
                        return batch
                self._cond.wait(wait)
        return None

    def _take(self, now: float) -> tuple[list[_Request], float | None]:
        """Remove and return the first ready batch, oldest request first; or no batch and how
        long until a waiting one times out (None: wait until the queue changes)."""
        pending = list(self._queue)
        wait: float | None = None
        while pending:
            batch, rows = self._gather(pending)
            head = batch[0]
            ready = head.rows == 0 or rows >= self.minbatchsize
            if not ready and self.minbatchtimeout > 0:
                left = head.queued_at + self.minbatchtimeout - now
                ready = left <= 0
                wait = left if wait is None else min(wait, left)
            if ready:
                self._queue = [r for r in self._queue if r not in batch]
                return batch, None
            # Not ready: requests that cannot join this batch may still go ahead of it.
            pending = [r for r in pending if r not in batch]
        return [], wait

    def _gather(self, pending: list[_Request]) -> tuple[list[_Request], int]:
        """The oldest pending request plus the later ones that merge with it, and their rows."""
        head = pending[0]
        batch, rows = [head], head.rows
        if 0 < rows < self.batchsize:
            for other in pending[1:]:
                if other.shape == head.shape and 0 < other.rows <= self.batchsize - rows:
                    batch.append(other)
                    rows += other.rows
                    if rows == self.batchsize:
                        break
        return batch, rows

    def _execute(self, batch: list[_Request]) -> None:
        """Run ``batch`` as one backend call (outside the lock) and hand out the results."""
        error: BaseException | None = None
        outputs: list[list[np.ndarray]] = []
        try:
            outputs = self._call(batch)
        except Exception as exc:
            error = exc
        finally:
            with self._cond:
                for i, request in enumerate(batch):
                    if error is None and outputs:
                        request.outputs = outputs[i]
                    else:
                        request.error = error or AIError("model run was interrupted")
                    request.done = True
                self._busy = False
                self._cond.notify_all()

    def _call(self, batch: list[_Request]) -> list[list[np.ndarray]]:
        if len(batch) == 1:
            return [self._run(batch[0].inputs)]
        merged = [
            np.concatenate([request.inputs[i] for request in batch])
            for i in range(len(batch[0].inputs))
        ]
        results = self._run(merged)
        total = sum(request.rows for request in batch)
        if any(result.ndim == 0 or result.shape[0] != total for result in results):
            raise AIError("Model did not generate the expected batch size")
        split, start = [], 0
        for request in batch:
            split.append([result[start : start + request.rows] for result in results])
            start += request.rows
        return split
