"""Offline training: idle hubs improve the keys peers asked for most, then the worst."""

from __future__ import annotations

import pytest

import learnhub
from learnhub.errors import ConfigError
from learnhub.peers.offline import OfflineTraining
from learnhub.peers.table import PeerTable


def test_idle_rounds_train_the_most_wanted_then_the_worst(hub: learnhub.Hub) -> None:
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
    [made] = trainer.run_once()
    assert seen[0][0] == "asc/good" and seen[0][1] is not None
    assert hub.learning.best("asc/good").version == made
    assert hub.learning.best("asc/good").metric == 0.05
    trainer.batch = 5
    load[0] = 3.0  # busy: nothing runs
    assert trainer.run_once() == []
    load[0] = 0.0
    trainer.run_once()
    assert hub.learning.best("asc/bad").metric == 0.45
    assert hub.learning.best("asc/bad").base == base  # stored on top of what it trained from
    assert hub.learning.best("other/x").metric == 5.0


def test_a_failing_function_costs_nothing(hub: learnhub.Hub) -> None:
    trainer = OfflineTraining(hub, PeerTable(hub.store), 1.0, load_average=lambda: 0.0)
    version = hub.learning.store("asc/k", {"f": b"k"}, 0.5)
    trainer.register("asc/*", lambda key, current: 1 / 0)
    assert trainer.run_once() == []
    trainer.register("asc/*", lambda key, current: ({}, 0.1, None))  # no files: refused
    assert trainer.run_once() == []
    trainer.register("asc/*", lambda key, current: None)  # nothing better
    assert trainer.run_once() == []
    assert [v.version for v in hub.learning.versions("asc/k")] == [version]
    with pytest.raises(ConfigError, match="key glob"):
        trainer.register("", lambda key, current: None)
    disabled = OfflineTraining(hub, PeerTable(hub.store), None, load_average=lambda: 0.0)
    disabled.register("asc/*", lambda key, current: ({"f": b"z"}, 0.0, None))
    assert disabled.run_once() == []
