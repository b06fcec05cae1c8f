"""The thread-count chooser of model calls: pure logic, driven with made-up timings."""

from __future__ import annotations

from learnhub.embed.threads import ThreadChooser

TOKENS = 64  # one short text


def settle(chooser: ThreadChooser, cost: dict[int, float], calls: int) -> list[int]:
    """Run ``calls`` calls where ``threads`` threads cost ``cost[threads]`` s per token."""
    used = []
    for _ in range(calls):
        n = chooser.choose(TOKENS)
        chooser.record(TOKENS, n, cost[n] * TOKENS)
        used.append(n)
    return used


def test_options_are_all_cores_half_and_one() -> None:
    assert ThreadChooser(8).options == [8, 4, 1]
    assert ThreadChooser(2).options == [2, 1]
    assert ThreadChooser(1).options == [1]
    assert ThreadChooser(0).options == [1]


def test_one_core_is_only_ever_one_thread() -> None:
    assert set(settle(ThreadChooser(1), {1: 1.0}, 40)) == {1}


def test_uses_the_cheaper_count_and_probes_the_other() -> None:
    chooser = ThreadChooser(2)
    used = settle(chooser, {2: 1.0, 1: 3.0}, 128)
    # both counts measured twice (the first call of each is warm-up) ...
    assert used[:4] == [2, 2, 1, 1]
    # ... then all cores, except one probe of one thread every probe_every calls of this size
    steady = used[4:]
    assert steady.count(1) == sum(1 for i in range(5, 129) if i % chooser.probe_every == 0)
    assert steady.count(2) == len(steady) - steady.count(1)


def test_a_busy_core_moves_it_to_one_thread_and_back() -> None:
    chooser = ThreadChooser(2)
    settle(chooser, {2: 1.0, 1: 1.4}, 20)  # idle: two threads win
    busy = settle(chooser, {2: 3.0, 1: 1.4}, 40)  # another process takes a core
    assert busy[:2] == [2, 2] and busy[2] == 1  # the median of three turns after two calls
    assert busy[-16:].count(1) >= 15
    idle = settle(chooser, {2: 1.0, 1: 1.4}, 3 * chooser.probe_every)  # the core is free again
    assert idle[-16:].count(2) >= 15  # found by the probes


def test_one_slow_call_does_not_switch() -> None:
    chooser = ThreadChooser(2)
    settle(chooser, {2: 1.0, 1: 1.4}, 20)
    n = chooser.choose(TOKENS)
    chooser.record(TOKENS, n, 50.0 * TOKENS)  # a new text length built kernels
    assert settle(chooser, {2: 1.0, 1: 1.4}, 10).count(2) == 10


def test_call_sizes_are_judged_apart() -> None:
    chooser = ThreadChooser(2)
    for _ in range(30):  # batches: two threads pay; single texts: one thread is cheaper
        for tokens, cost in ((64, {2: 2.0, 1: 1.0}), (4096, {2: 1.0, 1: 2.0})):
            n = chooser.choose(tokens)
            chooser.record(tokens, n, cost[n] * tokens)
    assert chooser.choose(64) == 1
    assert chooser.choose(4096) == 2
    assert ThreadChooser.size_class(64) != ThreadChooser.size_class(4096)


def test_timing_noise_does_not_give_up_cores() -> None:
    chooser = ThreadChooser(2)
    used = settle(chooser, {2: 1.1, 1: 1.0}, 40)  # one thread 10% cheaper: within the margin
    assert used[4:].count(2) >= len(used[4:]) - 2
    assert settle(chooser, {2: 1.3, 1: 1.0}, 40)[-16:].count(1) >= 15  # beyond it
