"""hub.embed's index: vectors stored as given, the memory-mapped matrix, the approximate index
(faiss IVF) against exact search, and its upkeep as vectors change."""

from __future__ import annotations

import numpy as np
import pytest

import learnhub
from conftest import wait_for
from learnhub.embed import HashingEmbedder, ann, register
from learnhub.errors import InvalidInput

DIM = 32
MODEL = "test-vectors"


class VectorModel(HashingEmbedder):
    """A model of dimension 32 for vectors put as they are."""

    name = MODEL

    def __init__(self) -> None:
        super().__init__(dim=DIM)


register(VectorModel, MODEL)

needs_faiss = pytest.mark.skipif(not ann.available(), reason="faiss (the ann extra) is missing")


def clustered(n: int, seed: int = 0, centers: int = 50) -> np.ndarray:
    """Unit vectors around ``centers`` random directions, as embeddings of topics are."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, DIM)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def put(hub: learnhub.Hub, mat: np.ndarray, prefix: str = "v/") -> list[str]:
    refs = [f"{prefix}{i}" for i in range(len(mat))]
    assert hub.embed.put_vectors(dict(zip(refs, mat, strict=True)), MODEL) == len(refs)
    return refs


def test_put_vectors_stores_unit_vectors_as_given(hub: learnhub.Hub) -> None:
    v = np.arange(1, DIM + 1, dtype=np.float32)
    assert hub.embed.put_vectors({"a": v, "b": list(-v)}, MODEL) == 2
    got = hub.embed.get("a", MODEL)
    assert got is not None
    np.testing.assert_allclose(got, v / np.linalg.norm(v), rtol=1e-6)
    assert hub.embed.search(v, k=2, model=MODEL)[0] == ("a", pytest.approx(1.0))
    # a text put later under the same ref is embedded (the stored hash is not the text's)
    assert hub.embed.put("a", "some text", MODEL) is True


def test_put_vectors_bad_input_changes_nothing(hub: learnhub.Hub) -> None:
    ok = np.ones(DIM, dtype=np.float32)
    with pytest.raises(InvalidInput, match=r"dimension 3\b.*dimension 32"):
        hub.embed.put_vectors({"a": ok, "b": np.ones(3)}, MODEL)
    with pytest.raises(InvalidInput, match="non-zero"):
        hub.embed.put_vectors({"a": ok, "b": np.zeros(DIM)}, MODEL)
    with pytest.raises(InvalidInput, match="finite"):
        hub.embed.put_vectors({"a": np.full(DIM, np.nan)}, MODEL)
    with pytest.raises(InvalidInput, match="vector"):
        hub.embed.put_vectors({"a": "not a vector"}, MODEL)
    with pytest.raises(InvalidInput, match="ref"):
        hub.embed.put_vectors({"": ok}, MODEL)
    with pytest.raises(InvalidInput, match="mapping"):
        hub.embed.put_vectors([ok], MODEL)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown embedder"):
        hub.embed.put_vectors({"a": ok}, "nope")
    assert hub.embed.count(MODEL) == 0


def test_matrix_is_memory_mapped_and_survives_growth(hub: learnhub.Hub) -> None:
    mat = clustered(1000)
    refs = put(hub, mat[:10])
    hub.embed.search(mat[0], model=MODEL)  # loads the index
    refs += put(hub, mat[10:], prefix="w/")
    assert hub.embed.search(mat[999], k=1, model=MODEL)[0][0] == "w/989"
    index = hub.embed._indexes[MODEL]
    assert isinstance(index.mat, np.memmap)
    assert index.n == 1000 and len(index.mat) >= 1000
    for i in (0, 9, 10, 500, 999):  # rows written before and after the file grew
        np.testing.assert_allclose(index.mat[index.pos[refs[i]]], mat[i], rtol=1e-6)


def test_bad_exact_argument(hub: learnhub.Hub) -> None:
    with pytest.raises(InvalidInput, match="exact must be"):
        hub.embed.search(np.ones(DIM), model=MODEL, exact="yes")  # type: ignore[arg-type]


@needs_faiss
def test_approximate_recall_against_exact(hub: learnhub.Hub) -> None:
    mat = clustered(20_000)
    put(hub, mat)
    queries = clustered(50, seed=1)
    recalls = []
    for q in queries:
        exact = {r for r, _ in hub.embed.search(q, k=10, model=MODEL, exact=True)}
        approx = hub.embed.search(q, k=10, model=MODEL, exact=False)
        assert len(approx) == 10
        scores = [s for _, s in approx]
        assert scores == sorted(scores, reverse=True)
        recalls.append(len(exact & {r for r, _ in approx}) / 10)
    assert np.mean(recalls) >= 0.9, np.mean(recalls)


@needs_faiss
def test_approximate_index_follows_writes_and_deletes(hub: learnhub.Hub) -> None:
    mat = clustered(5000)
    refs = put(hub, mat)
    q = clustered(1, seed=2)[0]
    hub.embed.search(q, model=MODEL, exact=False)  # builds the index
    # a new vector equal to the query: the best match, at once
    hub.embed.put_vectors({"new": q}, MODEL)
    assert hub.embed.search(q, k=1, model=MODEL, exact=False)[0][0] == "new"
    # an existing ref moved onto the query
    hub.embed.put_vectors({refs[7]: q}, MODEL)
    top = {r for r, _ in hub.embed.search(q, k=2, model=MODEL, exact=False)}
    assert top == {"new", refs[7]}
    # deletes: gone from the answers, and the row moved into the hole is still found
    hub.embed.delete("new", MODEL)
    hub.embed.delete(refs[7], MODEL)
    moved = refs[-1]
    top = [r for r, _ in hub.embed.search(q, k=5, model=MODEL, exact=False)]
    assert "new" not in top and refs[7] not in top
    assert hub.embed.search(mat[-1], k=1, model=MODEL, exact=False)[0][0] == moved
    assert len(hub.embed._indexes[MODEL].ann) == hub.embed.count(MODEL)


@needs_faiss
def test_above_the_threshold_the_index_builds_in_the_background(hub: learnhub.Hub) -> None:
    mat = clustered(4000)
    refs = put(hub, mat)
    hub.embed.search(mat[0], model=MODEL)
    index = hub.embed._indexes[MODEL]
    assert index.ann is None and not index.building  # below the default threshold: exact
    hub.embed.approximate_above = 1000
    exclude = [r for r, _ in hub.embed.search(mat[0], k=3, model=MODEL, exact=True)]
    got = hub.embed.search(mat[0], k=5, model=MODEL, exclude=exclude)  # starts the build
    assert index.building or index.ann is not None
    want = hub.embed.search(mat[0], k=5, model=MODEL, exclude=exclude, exact=True)
    if index.ann is None:  # still building: the answer was exact
        assert got == want
    # writes while it builds are in the index once it is installed
    hub.embed.put_vectors({"late": mat[1]}, MODEL)
    hub.embed.delete(refs[2], MODEL)
    hub.embed.search(mat[0], model=MODEL)  # applies the writes to the matrix
    wait_for(lambda: index.ann is not None, timeout=60, what="the approximate index")
    assert not index.building
    top = {r for r, _ in hub.embed.search(mat[1], k=2, model=MODEL)}
    assert top == {"late", refs[1]}
    assert refs[2] not in {r for r, _ in hub.embed.search(mat[2], k=10, model=MODEL)}
    assert len(index.ann) == hub.embed.count(MODEL)
    # a prefix filter is scored exactly, over the prefix's rows
    put(hub, mat[:10], prefix="x/")
    got = hub.embed.search(mat[3], k=3, model=MODEL, filter="x/")
    assert got[0] == ("x/3", pytest.approx(1.0))
    assert all(r.startswith("x/") for r, _ in got)
