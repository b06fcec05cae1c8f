"""The related-items workflow (``learnhub.embed.related``) end to end, with real workers in
burst mode on SQLite and PostgreSQL, on a small corpus of retrospective discussions."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import learnhub
from learnhub.embed import (
    AD_HOC_PRIORITY,
    BACKLOG_PRIORITY,
    MEETING_PRIORITY,
    get_embedder,
    register,
)
from learnhub.embed.embedders import minilm_installed
from learnhub.embed.related import strip_header
from learnhub.errors import InvalidInput

DATA = Path(__file__).parent / "data"
CORPUS = [json.loads(line) for line in (DATA / "retro_discussions.jsonl").open()]
PAIRS = json.loads((DATA / "retro_related_pairs.json").read_text())["pairs"]
# Ten pairs where b is a reader's single clearest match for a, labelled blind by another reader.
CLEAR = [
    (p["a"], p["b"]) for p in json.loads((DATA / "retro_clear_pairs.json").read_text())["pairs"]
]
# Every discussion of the same problem, labelled blind by reading the whole corpus.
RELATIVES = {
    ref: set(group["refs"]) - {ref}
    for group in json.loads((DATA / "retro_related_groups.json").read_text())["groups"]
    for ref in group["refs"]
}


def meeting(n: int) -> dict[str, str]:
    return {d["ref"]: d["text"] for d in CORPUS if d["meeting"] == f"meeting-{n}"}


def history(*but: int) -> dict[str, str]:
    skip = {f"meeting-{n}" for n in but}
    return {d["ref"]: d["text"] for d in CORPUS if d["meeting"] not in skip}


class Published:
    """A publish task that records what it receives."""

    def __init__(self, hub: learnhub.Hub, name: str = "collect") -> None:
        self.got: dict[str, list[list[Any]]] = {}
        self.calls = 0
        self._lock = threading.Lock()

        @hub.task(name, queue="embed")
        def collect(ctx: Any, ref: str, related: list[list[Any]]) -> None:
            with self._lock:
                self.calls += 1
                self.got[ref] = related


def burst(hub: learnhub.Hub) -> None:
    hub.run_worker(concurrency=4, burst=True)


class _Boom:
    """hashing, except that a text containing BOOM is bad input."""

    name, dim = "test-boom", 1024

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if any("BOOM" in t for t in texts):
            raise InvalidInput("this text cannot be embedded")
        return get_embedder("hashing").embed(texts)


register(_Boom, "test-boom")


def test_priorities_are_ordered() -> None:
    assert AD_HOC_PRIORITY < MEETING_PRIORITY < BACKLOG_PRIORITY


def test_related_flow_end_to_end(hub: learnhub.Hub) -> None:
    published = Published(hub)
    backlog = hub.embed.backlog(history(1), model="hashing", rerank_template="strip_header")
    assert {hub.jobs.get(j).priority for j in backlog} == {BACKLOG_PRIORITY}  # type: ignore[union-attr]
    burst(hub)
    assert hub.embed.count("hashing") == len(history(1))
    assert hub.embed.count("hashing@strip_header") == len(history(1))

    items = meeting(1)
    flow_id = hub.embed.related(
        "meeting-1", items, publish="collect", k=3, rerank_template="strip_header",
        model="hashing",
    )  # fmt: skip
    burst(hub)

    jobs = hub.jobs.list(flow=flow_id, limit=1000)
    assert Counter(j.state for j in jobs) == {"succeeded": 1 + 4 * len(items)}
    assert Counter(j.task for j in jobs)["collect"] == len(items)
    assert published.calls == len(items)
    assert set(published.got) == set(items)
    for rel in published.got.values():
        assert len(rel) == 3
        assert not any(r.startswith("meeting-1/") for r, _ in rel)
        scores = [s for _, s in rel]
        assert scores == sorted(scores, reverse=True)
    # the scores are those of the rerank template (header stripped), not of the full texts
    emb = get_embedder("hashing")
    ref = "meeting-1/d1"
    best, score = published.got[ref][0]
    q, v = emb.embed([strip_header(items[ref]), strip_header(history(1)[best])])
    assert score == pytest.approx(float(q @ v), abs=1e-5)
    full = emb.embed([items[ref], history(1)[best]])
    assert abs(float(full[0] @ full[1]) - score) > 1e-3


def test_publish_may_be_a_function(hub: learnhub.Hub) -> None:
    got: dict[str, list[list[Any]]] = {}

    def post_to_channel(ctx: Any, ref: str, related: list[list[Any]]) -> None:
        got[ref] = related

    hub.embed.backlog(history(5), model="hashing")
    items = dict(list(meeting(5).items())[:2])
    hub.embed.related("meeting-5", items, publish=post_to_channel, k=2, model="hashing")
    burst(hub)
    assert set(got) == set(items)
    assert all(len(r) == 2 and not r[0][0].startswith("meeting-5/") for r in got.values())
    name = f"{__name__}.test_publish_may_be_a_function.<locals>.post_to_channel"
    assert hub.jobs.tasks[name].fn is post_to_channel
    with pytest.raises(InvalidInput, match="task name or a function"):
        hub.embed.related("meeting-5", items, publish=42, model="hashing")  # type: ignore


def test_flow_graph_is_a_real_fan_in(hub: learnhub.Hub) -> None:
    Published(hub)
    items = dict(list(meeting(2).items())[:4])
    flow_id = hub.embed.related("meeting-2", items, publish="collect", k=2, model="hashing")
    jobs = {j.id: j for j in hub.jobs.list(flow=flow_id, limit=1000)}
    by_task: dict[str, list[Any]] = {}
    for j in jobs.values():
        by_task.setdefault(j.task, []).append(j)
    assert {t: len(v) for t, v in by_task.items()} == {
        "embed.related_start": 1, "embed": 4, "similar": 4, "rerank": 4,
    }  # fmt: skip
    assert {j.priority for j in jobs.values()} == {MEETING_PRIORITY}
    assert {j.queue for j in jobs.values()} == {"embed"}
    parents: dict[int, dict[int, str]] = {}
    for p, c, policy in hub.jobs.edges(flow_id):
        parents.setdefault(c, {})[p] = policy
    start = by_task["embed.related_start"][0]
    embed_of = {next(iter(j.args["refs_texts"])): j.id for j in by_task["embed"]}
    assert set(embed_of) == set(items)
    for e in embed_of.values():
        assert parents[e] == {start.id: "cancel"}
    sim_of = {}
    for s in by_task["similar"]:
        ref = s.args["ref"]
        sim_of[ref] = s.id
        assert s.state == "waiting" and s.waiting_on == 4
        expected = {e: ("cancel" if r == ref else "ignore") for r, e in embed_of.items()}
        assert parents[s.id] == expected
    for r in by_task["rerank"]:
        assert parents[r.id] == {sim_of[r.args["ref"]]: "cancel"}


def test_failed_embeds_ignored_for_others_cancel_own_branch(hub: learnhub.Hub) -> None:
    published = Published(hub)
    hub.embed.backlog(history(3), model="test-boom", rerank_template="strip_header")
    burst(hub)
    items = meeting(3)
    bad = "meeting-3/d2"
    items[bad] = items[bad] + " BOOM"
    flow_id = hub.embed.related(
        "meeting-3", items, publish="collect", k=4, rerank_template="strip_header",
        model="test-boom",
    )  # fmt: skip
    burst(hub)

    jobs = hub.jobs.list(flow=flow_id, limit=1000)
    states = {(j.task, j.args.get("ref") or next(iter(j.args.get("refs_texts", {"": 0})))): j
              for j in jobs}  # fmt: skip
    assert states[("embed", bad)].state == "failed"
    assert states[("embed", bad)].attempts == 1  # bad input: no retries
    assert states[("similar", bad)].state == "cancelled"
    assert states[("rerank", bad)].state == "cancelled"
    assert bad not in published.got
    assert ("collect", bad) not in states
    assert set(published.got) == set(items) - {bad}
    for ref in set(items) - {bad}:
        assert states[("similar", ref)].state == "succeeded"
        assert states[("rerank", ref)].state == "succeeded"
        assert len(published.got[ref]) == 4
        assert all(not r.startswith("meeting-3/") for r, _ in published.got[ref])


def test_bad_input_is_rejected(hub: learnhub.Hub) -> None:
    Published(hub)
    items = meeting(4)
    with pytest.raises(InvalidInput, match="publish"):
        hub.embed.related("meeting-4", items, publish="nope", model="hashing")
    with pytest.raises(InvalidInput, match="template"):
        hub.embed.related(
            "meeting-4", items, publish="collect", rerank_template="x", model="hashing"
        )
    with pytest.raises(InvalidInput, match="empty"):
        hub.embed.related("meeting-4", {"meeting-4/d1": " "}, publish="collect", model="hashing")
    with pytest.raises(InvalidInput, match="unknown embedder"):
        hub.embed.related("meeting-4", items, publish="collect", model="nope")
    with pytest.raises(InvalidInput, match="k must"):
        hub.embed.related("meeting-4", items, publish="collect", k=0, model="hashing")
    assert hub.jobs.list(queue="embed") == []


@pytest.mark.skipif(not minilm_installed(), reason="the embed extra (minilm) is not installed")
def test_minilm_finds_labelled_relatives_in_the_top_3(tmp_path: Path) -> None:
    """Three sets of labels, each written blind (before any model ran, or by someone who saw
    no ranking): 10 "clear" pairs, b being a reader's single clearest match for a; 22 pairs, two
    discussions of one problem in different meetings; and the problem groups of the whole
    corpus (retro_related_groups.json). A discussion often has several relatives, so "the
    labelled one in the top 3" is strict; "a relative in the top 3" is what a reader of the
    related list sees. Measured when written: 7 of the 10 clear pairs (a -> b) held, the other
    three at ranks 4, 6 and 9 (the rank-4 one below three other discussions of the same design
    hand-off problem); 30 of the 44 directed pairs; 35 of the 44 pair members had a relative in
    their top 3. The same as ranking the whole corpus by header-less vectors (the two-stage flow
    loses none): minilm's own limit on these texts, so these are floors against regressions."""
    with learnhub.open(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        published = Published(hub)
        hub.embed.backlog(history(), model="minilm", rerank_template="strip_header")
        burst(hub)
        groups = sorted({x.split("/")[0] for pair in PAIRS + CLEAR for x in pair})
        t0 = time.perf_counter()
        for i, g in enumerate(groups):
            hub.embed.related(
                g, meeting(int(g.split("-")[1])), publish="collect", k=3,
                rerank_template="strip_header", model="minilm",
            )  # fmt: skip
            if i == 0:
                burst(hub)
                print(f"one related() flow, 6 items: {time.perf_counter() - t0:.2f}s")
        burst(hub)
        top3 = {x: {r for r, _ in got} for x, got in published.got.items()}
        misses = [(x, y) for a, b in PAIRS for x, y in ((a, b), (b, a)) if y not in top3[x]]
        alone = [x for a, b in PAIRS for x in (a, b) if not top3[x] & RELATIVES[x]]
        unclear = [(a, b) for a, b in CLEAR if b not in top3[a]]
        print(f"clear pairs with b not in a's top 3: {len(unclear)} of {len(CLEAR)}", unclear)
        print(f"labelled relative not in the top 3: {len(misses)} of {2 * len(PAIRS)}", misses)
        print(f"no relative in the top 3: {len(alone)} of {2 * len(PAIRS)}", alone)
        assert len(unclear) <= 3, unclear
        # 13-14 measured; three hits lead the 4th by <= 0.005, within bfloat16's batch noise
        assert len(misses) <= 15, misses
        assert len(alone) <= 9, alone
        # each item got the best 3 of the whole corpus by header-less vectors (up to the
        # model's batch-to-batch noise: texts embedded in another batch differ by ~1e-3)
        refs = [d["ref"] for d in CORPUS]
        vecs = get_embedder("minilm").embed([strip_header(d["text"]) for d in CORPUS])
        for x, got in published.got.items():
            group = x.split("/")[0] + "/"
            scores = vecs @ vecs[refs.index(x)]
            outside = sorted(
                (float(scores[i]) for i, r in enumerate(refs) if not r.startswith(group)),
                reverse=True,
            )
            fresh = [float(scores[refs.index(r)]) for r, _ in got]
            assert min(fresh) >= outside[2] - 0.01, (x, got, outside[:3])
