"""hub.embed: persisted embeddings, no recomputation of unchanged texts, exact search."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

import learnhub
from learnhub.embed import HashingEmbedder, get_embedder, register
from learnhub.embed.embedders import minilm_installed, prepare_texts
from learnhub.errors import InvalidInput


class RandomEmbedder:
    """A random unit vector per text, the same for the same text: search on random data."""

    name = "test-random"
    dim = 48

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(prepare_texts(texts)):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting its calls and the texts it was given."""

    name = "test-counting"

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return super().embed(texts)


register(RandomEmbedder, "test-random")
register(CountingEmbedder, "test-counting")


@pytest.fixture
def counting() -> CountingEmbedder:
    embedder = get_embedder("test-counting")
    assert isinstance(embedder, CountingEmbedder)
    embedder.calls.clear()
    return embedder


def brute_force(
    refs: list[str], mat: np.ndarray, q: np.ndarray, k: int, prefix=None, exclude=()
) -> list[tuple[str, float]]:
    scored = [
        (ref, float(np.dot(mat[i].astype(np.float64), q.astype(np.float64))))
        for i, ref in enumerate(refs)
        if (prefix is None or ref.startswith(prefix)) and ref not in set(exclude)
    ]
    scored.sort(key=lambda rs: -rs[1])
    return scored[:k]


def assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [r for r, _ in got] == [r for r, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_search_is_exact_against_brute_force(hub: learnhub.Hub) -> None:
    n = 3000
    items = {f"{'meet' if i % 3 else 'doc'}/{i}": f"text number {i}" for i in range(n)}
    assert hub.embed.put_many(items, model="test-random") == n
    assert hub.embed.count("test-random") == n
    refs = list(items)
    mat = get_embedder("test-random").embed(list(items.values()))
    rng = np.random.default_rng(7)
    for _ in range(5):
        q = rng.standard_normal(48).astype(np.float32)
        q /= np.linalg.norm(q)
        for k in (1, 10, 57):
            got = hub.embed.search(q, k=k, model="test-random")
            assert_same(got, brute_force(refs, mat, q, k))
        excl = [r for r, _ in brute_force(refs, mat, q, 5)][::2] + ["nope/1"]
        got = hub.embed.search(q, k=10, model="test-random", filter="doc/", exclude=excl)
        want = brute_force(refs, mat, q, 10, prefix="doc/", exclude=excl)
        assert all(r.startswith("doc/") for r, _ in got)
        assert_same(got, want)
    # k beyond the number of candidates: all of them, best first
    got = hub.embed.search(q, k=5000, model="test-random", filter="doc/1")
    assert_same(got, brute_force(refs, mat, q, 5000, prefix="doc/1"))
    # a text query is embedded with the model and scored the same way
    qt = get_embedder("test-random").embed(["text number 42"])[0]
    got = hub.embed.search("text number 42", k=3, model="test-random")
    assert got[0][0] == "doc/42" and got[0][1] == pytest.approx(1.0, abs=1e-5)
    assert_same(got, brute_force(refs, mat, qt, 3))


def test_unchanged_text_is_not_embedded_again(hub: learnhub.Hub, counting) -> None:
    assert hub.embed.put("a", "the retro ran long", model="test-counting") is True
    assert counting.calls == [["the retro ran long"]]
    first = hub.embed.get("a", model="test-counting")
    assert hub.embed.put("a", "the retro ran long", model="test-counting") is False
    assert len(counting.calls) == 1
    assert hub.embed.put("a", "the retro ran long", model="test-counting", force=True) is True
    assert len(counting.calls) == 2
    assert hub.embed.put("a", "the retro ran short", model="test-counting") is True
    assert counting.calls[-1] == ["the retro ran short"]
    second = hub.embed.get("a", model="test-counting")
    assert first is not None and second is not None and not np.allclose(first, second)
    np.testing.assert_allclose(second, counting.embed(["the retro ran short"])[0], atol=1e-6)
    # the same text under another model is another embedding
    assert hub.embed.put("a", "the retro ran short", model="hashing") is True
    assert hub.embed.count("test-counting") == 1 and hub.embed.count("hashing") == 1


def test_put_many_embeds_only_what_changed_in_one_call(hub: learnhub.Hub, counting) -> None:
    items = {f"d/{i}": f"discussion about topic {i}" for i in range(6)}
    assert hub.embed.put_many(items, model="test-counting") == 6
    assert len(counting.calls) == 1 and len(counting.calls[0]) == 6
    assert hub.embed.put_many(items, model="test-counting") == 0
    assert len(counting.calls) == 1
    changed = dict(items, **{"d/1": "a new text", "d/4": "another new text", "d/9": "fresh"})
    assert hub.embed.put_many(changed, model="test-counting") == 3
    assert counting.calls[-1] == ["a new text", "another new text", "fresh"]
    assert hub.embed.put_many(changed, model="test-counting", force=True) == 7
    assert len(counting.calls) == 3 and len(counting.calls[-1]) == 7
    assert hub.embed.count("test-counting") == 7


def test_get_delete_count(hub: learnhub.Hub) -> None:
    assert hub.embed.get("x", model="hashing") is None
    hub.embed.put("x", "sprint planning notes", model="hashing")
    vec = hub.embed.get("x", model="hashing")
    assert vec is not None and vec.dtype == np.float32 and vec.shape == (1024,)
    np.testing.assert_allclose(vec, HashingEmbedder().embed(["sprint planning notes"])[0])
    assert [r for r, _ in hub.embed.search("sprint planning", model="hashing")] == ["x"]
    assert hub.embed.delete("x", model="hashing") is True
    assert hub.embed.delete("x", model="hashing") is False
    assert hub.embed.get("x", model="hashing") is None
    assert hub.embed.count("hashing") == 0
    assert hub.embed.search("sprint planning", model="hashing") == []


def test_model_none_is_the_default_embedder(hub: learnhub.Hub, monkeypatch) -> None:
    monkeypatch.setattr("learnhub.embed.embedders.default_name", lambda: "hashing")
    hub.embed.put("x", "default model text")
    assert hub.embed.count("hashing") == 1 and hub.embed.count() == 1
    assert hub.embed.get("x", model="hashing") is not None


def test_another_hub_sees_new_embeddings(store_url: str) -> None:
    with learnhub.open(store_url) as a, learnhub.open(store_url) as b:
        a.embed.put_many({f"r/{i}": f"retro item {i}" for i in range(20)}, model="test-random")
        assert len(b.embed.search("retro item 3", k=50, model="test-random")) == 20  # loaded
        a.embed.put("r/new", "brand new discussion", model="test-random")
        got = b.embed.search("brand new discussion", k=50, model="test-random")
        assert len(got) == 21 and got[0][0] == "r/new"
        assert got[0][1] == pytest.approx(1.0, abs=1e-5)
        # a re-put ref replaces its row in the other hub's index (no duplicate)
        a.embed.put("r/3", "changed completely", model="test-random")
        got = b.embed.search("changed completely", k=50, model="test-random")
        assert len(got) == 21 and got[0] == ("r/3", pytest.approx(1.0, abs=1e-5))
        assert [r for r, _ in got].count("r/3") == 1
        # a delete by the other hub is noticed at the next row count check (every 1 s by
        # default; every search here)
        b.embed.recount_seconds = 0
        a.embed.delete("r/new", model="test-random")
        got = b.embed.search("brand new discussion", k=50, model="test-random")
        assert len(got) == 20 and "r/new" not in [r for r, _ in got]


def test_bad_input(hub: learnhub.Hub) -> None:
    hub.embed.put("ok", "some text", model="hashing")
    with pytest.raises(InvalidInput, match="ref"):
        hub.embed.put("", "text", model="hashing")
    with pytest.raises(InvalidInput, match="empty"):
        hub.embed.put("r", "", model="hashing")
    with pytest.raises(InvalidInput, match="empty"):
        hub.embed.put("r", "   ", model="hashing")
    with pytest.raises(InvalidInput, match="empty"):
        hub.embed.put_many({"r1": "fine", "r2": ""}, model="hashing")
    assert hub.embed.count("hashing") == 1  # nothing of the bad batch was written
    with pytest.raises(InvalidInput, match="unknown embedder 'nope'"):
        hub.embed.put("r", "text", model="nope")
    with pytest.raises(InvalidInput, match="unknown embedder 'nope'"):
        hub.embed.search("text", model="nope")
    with pytest.raises(InvalidInput, match=r"dimension 3\b.*dimension 1024"):
        hub.embed.search(np.ones(3, dtype=np.float32), model="hashing")
    with pytest.raises(InvalidInput, match="k must be a positive integer"):
        hub.embed.search("text", k=0, model="hashing")
    with pytest.raises(InvalidInput, match="k must be a positive integer"):
        hub.embed.search("text", k=-2, model="hashing")
    with pytest.raises(InvalidInput, match="empty"):
        hub.embed.search("", model="hashing")
    with pytest.raises(InvalidInput, match="not a single string"):
        hub.embed.search("text", model="hashing", exclude="ok")
    with pytest.raises(InvalidInput, match="non-zero"):
        hub.embed.search(np.zeros(1024, dtype=np.float32), model="hashing")


@pytest.mark.skipif(not minilm_installed(), reason="the embed extra is not installed")
def test_minilm_finds_the_related_discussion(tmp_path) -> None:
    with learnhub.open(f"sqlite:///{tmp_path / 'm.db'}") as hub:
        items = {
            "m1/deploys": "Deployments to production keep failing on Friday afternoons.",
            "m1/onboarding": "New hires take weeks to get their laptop and accounts set up.",
            "m1/standup": "Daily standup runs over thirty minutes and people stop listening.",
            "m1/tests": "The end-to-end test suite is flaky and blocks merges.",
        }
        assert hub.embed.put_many(items, model="minilm") == 4
        got = hub.embed.search("Our release pipeline breaks whenever we ship", model="minilm")
        assert got[0][0] == "m1/deploys"
        assert got[0][1] > got[1][1]
        got = hub.embed.search("Meetings are too long", k=2, model="minilm", exclude=["x"])
        assert got[0][0] == "m1/standup" and len(got) == 2
