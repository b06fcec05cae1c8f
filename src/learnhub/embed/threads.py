"""How many threads a model call should use, chosen from what recent calls cost.

torch splits each matrix product evenly over its intra-op threads, so when another process
holds one of the cores, every product waits for the thread that runs on it: on this 2-core
machine minilm fell from 169 to 53 documents/s with both threads, and kept 124 with one.
Which count is best depends on the load of the moment, so :class:`ThreadChooser` measures.
A call costs a fixed ~4 ms plus time per token (about 32 tokens' worth of fixed cost here),
so each call's seconds are divided by its tokens plus :data:`CALL_TOKENS`, which makes calls
of different lengths comparable; costs are kept per thread count and call size (within a
factor of 4 in tokens: parallel work pays better on longer calls). The most threads whose
median cost over their last three calls is within :attr:`ThreadChooser.margin` of the lowest
are used (timing noise must not send an idle machine to one thread; a busy core costs 2-3x,
far beyond it), and every :attr:`ThreadChooser.probe_every` calls of a size another count is
tried again, so a core that frees up is used again. A count's first call is not kept (it
pays for preparing kernels), and the median shrugs off one slow call.
"""

from __future__ import annotations

import statistics
from collections import deque

__all__ = ["CALL_TOKENS", "ThreadChooser"]

#: A call's fixed cost, in tokens' worth of time (minilm on this machine: ~4 ms, ~0.12 ms a
#: token with two threads).
CALL_TOKENS = 32


class ThreadChooser:
    """Chooses among all cores, half of them and one, from measured cost per token."""

    probe_every = 32
    margin = 1.15

    def __init__(self, cores: int) -> None:
        self.options = sorted({max(1, cores), max(1, cores // 2), 1}, reverse=True)
        # (size class, threads) -> normalised cost of the last calls; None: warming up
        self._costs: dict[tuple[int, int], deque[float] | None] = {}
        self._calls: dict[int, int] = {}  # size class -> calls so far

    @staticmethod
    def size_class(tokens: int) -> int:
        """Calls within a factor of ~4 in tokens are compared with each other."""
        return max(1, tokens).bit_length() // 2

    def choose(self, tokens: int) -> int:
        """The thread count for a call of ``tokens`` (padded) tokens."""
        size = self.size_class(tokens)
        calls = self._calls[size] = self._calls.get(size, 0) + 1
        known = {}
        for n in self.options:
            costs = self._costs.get((size, n))
            if not costs:
                return n  # not measured yet
            known[n] = statistics.median(costs)
        cheapest = min(known.values())
        best = next(n for n in self.options if known[n] <= cheapest * self.margin)
        others = [n for n in self.options if n != best]
        if others and calls % self.probe_every == 0:
            return others[(calls // self.probe_every) % len(others)]
        return best

    def record(self, tokens: int, threads: int, seconds: float) -> None:
        """What a call of ``tokens`` tokens on ``threads`` threads took."""
        key = (self.size_class(tokens), threads)
        if key not in self._costs:
            self._costs[key] = None  # the first call prepared kernels: not representative
            return
        costs = self._costs[key]
        if costs is None:
            costs = self._costs[key] = deque(maxlen=3)
        costs.append(seconds / (max(0, tokens) + CALL_TOKENS))
