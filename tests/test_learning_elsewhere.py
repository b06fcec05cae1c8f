"""The "ask elsewhere on a miss" hook (hub.learning.elsewhere), with sources written against
its Source interface, as the peers layer will be. Both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from conftest import wait_for
from learnhub.learning import Artifact, LearningConfig


def artifact(key: str, data: bytes, metric: float, origin: str = "elsewhere") -> Artifact:
    return Artifact(
        key=key,
        version="ignored: the hub computes its own",
        metric=metric,
        attrs={"mode": "x"},
        origin=origin,
        updated=datetime.now(UTC),
        base=None,
        sizes={"f": len(data)},
        files={"f": data},
    )


class Source:
    """Answers from a dict once ``release`` is set; counts what it was asked."""

    def __init__(self, name: str, found: dict[str, Artifact], wait: bool = False) -> None:
        self.name = name
        self.found = found
        self.asked: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        if not wait:
            self.release.set()
        self.closed = False

    def fetch(self, key: str, where: dict[str, str], timeout: float) -> Artifact | None:
        self.asked.append((key, dict(where)))
        self.release.wait(30)
        return self.found.get(key)

    def close(self) -> None:
        self.closed = True


class Broken(Source):
    def fetch(self, key: str, where: dict[str, str], timeout: float) -> Artifact | None:
        self.asked.append((key, dict(where)))
        raise ConnectionError("peer reset the connection")


def test_a_miss_is_asked_elsewhere_and_what_comes_back_is_stored(hub):
    there = Source("peer-a", {"k": artifact("k", b"learned", 0.3)})
    hub.learning.elsewhere.add(there)
    got = hub.learning.lookup("k", {"mode": "x"})
    assert got.files == {"f": b"learned"} and got.origin == "elsewhere"
    assert there.asked == [("k", {"mode": "x"})]  # where goes along, as wire text
    assert hub.learning.lookup("k", local=True).version == got.version
    assert hub.learning.lookup("k").version == got.version
    assert len(there.asked) == 1  # a hit is never asked elsewhere again
    assert hub.learning.lookup("other") is None and len(there.asked) == 2


def test_local_lookups_never_ask(hub):
    there = Source("peer-a", {"k": artifact("k", b"x", 0.3)})
    hub.learning.elsewhere.add(there)
    assert hub.learning.lookup("k", local=True) is None
    assert hub.learning.best("k") is None
    assert there.asked == []


def test_a_broken_source_is_a_miss_there_and_another_still_answers(hub):
    broken = Broken("peer-down", {})
    good = Source("peer-b", {"k": artifact("k", b"ok", 0.2)})
    hub.learning.elsewhere.add(broken)
    hub.learning.elsewhere.add(good)
    assert hub.learning.lookup("k").files == {"f": b"ok"}
    assert broken.asked and good.asked
    hub.learning.elsewhere.remove(good)
    assert hub.learning.lookup("nothing") is None  # only the broken one left: a miss


def test_concurrent_misses_share_one_ask_and_a_late_answer_is_kept(hub):
    hub.learning.configure(LearningConfig(lookup_timeout="50ms"))
    slow = Source("peer-slow", {"k": artifact("k", b"late", 0.4)}, wait=True)
    hub.learning.elsewhere.add(slow)
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(hub.learning.lookup("k"))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None] * 4  # the budget ran out for every one of them
    assert len(slow.asked) == 1  # but the source was asked once
    slow.release.set()
    found = wait_for(lambda: hub.learning.lookup("k", local=True), what="the late answer")
    assert found.files == {"f": b"late"}


def test_what_comes_back_for_a_key_held_here_goes_through_its_policy(hub):
    hub.learning.configure(LearningConfig(policies={"*": "smallest"}))
    mine = hub.learning.store("k", {"f": b"small"}, 0.9, {"mode": "y"})
    there = Source("peer-a", {"k": artifact("k", b"much bigger", 0.1)})
    hub.learning.elsewhere.add(there)
    got = hub.learning.lookup("k", {"mode": "x"})  # no mode=x here: asked elsewhere
    assert got.files == {"f": b"much bigger"}
    (combo,) = hub.learning.combinations("k")
    assert combo.current == mine and combo.result == mine  # smaller stays current
    assert hub.learning.lookup("k").version == mine


def test_close_closes_the_sources(hub):
    there = Source("peer-a", {})
    hub.learning.elsewhere.add(there)
    hub.learning.close()
    assert there.closed


class StoresItself(Source):
    """A source that stores what it fetches before answering (as the peers layer does)."""

    def __init__(self, name: str, found: dict[str, Artifact], hub) -> None:
        super().__init__(name, found)
        self.hub = hub

    def fetch(self, key: str, where: dict[str, str], timeout: float) -> Artifact | None:
        got = super().fetch(key, where, timeout)
        if got is not None:
            self.hub.learning.put(key, got.files, got.metric, got.attrs, origin=got.origin)
        return got


def test_a_source_that_stores_itself_is_not_stored_twice(hub):
    hub.learning.configure(LearningConfig(policies={"*": "smallest"}))
    mine = hub.learning.store("k", {"f": b"small"}, 0.9, {"mode": "y"})
    hub.learning.elsewhere.add(StoresItself("peers", {"k": artifact("k", b"bigger", 0.1)}, hub))
    assert hub.learning.lookup("k", {"mode": "x"}).files == {"f": b"bigger"}
    assert len(hub.learning.combinations("k")) == 1  # one combination, not two
    assert hub.learning.lookup("k").version == mine
