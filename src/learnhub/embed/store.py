"""Persisted embeddings and exact vector search: ``hub.embed``.

Each (model, ref) has one row: the sha256 of the text it was computed from, and the vector
(float32, little-endian). ``put`` with the same text and model does not call the model again.

Search is exact: a float32 matrix per model, in memory, scored with one matrix-vector product
(vectors are unit-norm, so the dot product is the cosine) and ``argpartition`` for the top k.
The matrix is loaded from the store on the first search of a model, then kept up to date
before each search with only the rows written since (``updated_ns``), so embeddings written
by other processes are found. Writers take a lock and stamp ``updated_ns`` above the newest
stored one, so stamps grow in commit order and no row is skipped. A row count check catches
what the stamps cannot: a ref deleted by another process makes the index reload. The count
costs ~80 ms at 100k rows on PostgreSQL, so it runs at most every ``recount_seconds`` (1 s):
another process's deletes can show up in search for up to that long.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from learnhub.embed import related as related_flow
from learnhub.embed.embedders import Embedder, get_embedder
from learnhub.errors import InvalidInput
from learnhub.jobs.queue import Jobs
from learnhub.store import Store

__all__ = ["Embeddings"]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_ref(ref: object) -> str:
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(f"a ref must be a non-empty string, got {ref!r}")
    return ref


def _check_text(ref: str, text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"the text of {ref!r} is {type(text).__name__}, not str")
    if not text.strip():
        raise InvalidInput(f"the text of {ref!r} is empty; pass some words to embed")
    return text


def _vector(blob: Any, dim: int) -> np.ndarray:
    vec = np.frombuffer(bytes(blob), dtype="<f4")
    if vec.shape != (dim,):
        raise InvalidInput(f"stored vector has {vec.size} values, expected {dim}")
    return vec


class _Index:
    """The in-memory matrix of one model: rows ``[:n]``, ``refs[i]`` naming row ``i``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.mat = np.zeros((0, dim), dtype=np.float32)
        self.n = 0
        self.refs: list[str] = []
        self.pos: dict[str, int] = {}
        self.since = -1  # the newest updated_ns seen
        self.counted_at = -float("inf")  # time.monotonic() of the last count check
        self.skipped: set[str] = set()  # stored refs of another dimension, left out
        self.version = 0  # bumped when the set of refs changes (invalidates filter masks)
        self._masks: dict[str, tuple[int, np.ndarray]] = {}

    def upsert(self, ref: str, vec: np.ndarray) -> None:
        i = self.pos.get(ref)
        if i is None:
            if self.n == len(self.mat):
                grown = np.zeros((max(16, 2 * len(self.mat)), self.dim), dtype=np.float32)
                grown[: self.n] = self.mat[: self.n]
                self.mat = grown
            i = self.n
            self.n += 1
            self.refs.append(ref)
            self.pos[ref] = i
            self.version += 1
        self.mat[i] = vec

    def upsert_many(self, refs: list[str], vecs: np.ndarray) -> None:
        if not self.n and len(refs) == len(set(refs)):  # the first load: no per-row work
            self.mat = np.array(vecs, dtype=np.float32, copy=True).reshape(-1, self.dim)
            self.n = len(refs)
            self.refs = list(refs)
            self.pos = {r: i for i, r in enumerate(refs)}
            self.version += 1
            return
        for ref, vec in zip(refs, vecs, strict=True):
            self.upsert(ref, vec)

    def remove(self, ref: str) -> None:
        self.skipped.discard(ref)
        i = self.pos.pop(ref, None)
        if i is None:
            return
        last = self.n - 1
        if i != last:  # move the last row into the hole
            moved = self.refs[last]
            self.mat[i] = self.mat[last]
            self.refs[i] = moved
            self.pos[moved] = i
        self.refs.pop()
        self.n = last
        self.version += 1

    def prefix_rows(self, prefix: str) -> np.ndarray:
        cached = self._masks.get(prefix)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        rows = np.fromiter(
            (i for i, r in enumerate(self.refs) if r.startswith(prefix)), dtype=np.int64
        )
        if len(self._masks) > 64:
            self._masks.clear()
        self._masks[prefix] = (self.version, rows)
        return rows


class Embeddings:
    """``hub.embed``: persisted embeddings of texts by ref, and exact search over them."""

    def __init__(self, store: Store, jobs: Jobs) -> None:
        self.store = store
        self._jobs = jobs
        for task in related_flow.TASKS:  # embed, similar, rerank: the related-items flow
            jobs.register(task)
        self._lock = threading.RLock()
        self._indexes: dict[str, _Index] = {}
        self.recount_seconds = 1.0

    # --- writing ---------------------------------------------------------------------------

    def _embedder(self, model: str | None) -> Embedder:
        if model is not None and not isinstance(model, str):
            raise InvalidInput(f"model must be an embedder name, got {model!r}")
        return get_embedder(model)

    def put(self, ref: str, text: str, model: str | None = None, force: bool = False) -> bool:
        """Embed ``text`` as ``ref`` under ``model``; True if the model was called (False: the
        same text was already stored and ``force`` is not set)."""
        return self.put_many({_check_ref(ref): text}, model, force) == 1

    def put_many(
        self, items: Mapping[str, str], model: str | None = None, force: bool = False
    ) -> int:
        """Embed many ``{ref: text}``: one model call for the texts that changed (or all, with
        ``force``), written in one transaction. Returns how many refs were (re)computed."""
        if not isinstance(items, Mapping):
            raise InvalidInput(
                f"items must be a mapping of ref to text, got {type(items).__name__}"
            )
        checked = {_check_ref(ref): _check_text(ref, text) for ref, text in items.items()}
        embedder = self._embedder(model)
        if not checked:
            return 0
        hashes = {ref: text_hash(text) for ref, text in checked.items()}
        if force:
            todo = list(checked)
        else:
            with self.store.transaction(readonly=True) as tx:
                rows = tx.all("embed_hashes", model=embedder.name, refs=json.dumps(list(checked)))
            stored = {r["ref"]: r["hash"] for r in rows}
            todo = [ref for ref in checked if stored.get(ref) != hashes[ref]]
        if not todo:
            return 0
        texts = list(dict.fromkeys(checked[ref] for ref in todo))  # each distinct text once
        vecs = np.asarray(embedder.embed(texts), dtype=np.float32)
        if vecs.shape != (len(texts), embedder.dim):
            raise InvalidInput(
                f"embedder {embedder.name!r} returned shape {vecs.shape}, "
                f"expected ({len(texts)}, {embedder.dim})"
            )
        row_of = {text: i for i, text in enumerate(texts)}
        with self.store.transaction() as tx:
            tx.one("embed_lock")
            newest = tx.one("embed_max_ns", model=embedder.name)
            now = max(time.time_ns(), int((newest or {}).get("ns") or 0) + 1)
            for i, ref in enumerate(todo):
                vec = vecs[row_of[checked[ref]]]
                tx.execute(
                    "embed_put",
                    model=embedder.name,
                    ref=ref,
                    hash=hashes[ref],
                    dim=embedder.dim,
                    vector=vec.astype("<f4").tobytes(),
                    updated_ns=now + i,
                )
        return len(todo)

    def delete(self, ref: str, model: str | None = None) -> bool:
        """Forget ``ref``'s embedding under ``model``; True if there was one."""
        name = self._embedder(model).name
        with self.store.transaction() as tx:
            gone = tx.execute("embed_delete", model=name, ref=_check_ref(ref)) > 0
        with self._lock:
            index = self._indexes.get(name)
            if index is not None:
                index.remove(ref)
        return gone

    # --- the related-items flow ----------------------------------------------------------

    def related(
        self,
        group: str,
        items: Mapping[str, str],
        publish: str | Callable[..., Any],
        k: int = 5,
        rerank_template: str | None = None,
        model: str | None = None,
        priority: int = related_flow.MEETING_PRIORITY,
        candidates: int | None = None,
        texts: str | None = None,
    ) -> str:
        """Submit the related-items flow of ``group`` and return its flow id: see
        :mod:`learnhub.embed.related`."""
        return related_flow.related(
            self._jobs, group, items, publish, k, rerank_template, model, priority,
            candidates, texts,
        )  # fmt: skip

    def backlog(
        self,
        items: Mapping[str, str],
        model: str | None = None,
        rerank_template: str | None = None,
        priority: int = related_flow.BACKLOG_PRIORITY,
        batch: int = related_flow.BATCH_SIZE,
    ) -> list[int]:
        """Enqueue ``embed`` jobs for a backlog ``{ref: text}``, ``batch`` texts each (at
        backlog priority); returns their job ids. Unchanged texts are not embedded again."""
        return related_flow.embed_backlog(
            self._jobs, items, model, rerank_template, priority, batch
        )

    # --- reading ---------------------------------------------------------------------------

    def get(self, ref: str, model: str | None = None) -> np.ndarray | None:
        """The stored vector of ``ref`` under ``model`` (float32, unit norm), or None."""
        name = self._embedder(model).name
        with self.store.transaction(readonly=True) as tx:
            row = tx.one("embed_get", model=name, ref=_check_ref(ref))
        return None if row is None else _vector(row["vector"], row["dim"]).copy()

    def count(self, model: str | None = None) -> int:
        """How many refs have an embedding under ``model``."""
        name = self._embedder(model).name
        with self.store.transaction(readonly=True) as tx:
            row = tx.one("embed_count", model=name)
        return 0 if row is None else int(row["n"])

    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        model: str | None = None,
        filter: str | None = None,  # noqa: A002 - the issue's name for it
        exclude: Iterable[str] = (),
    ) -> list[tuple[str, float]]:
        """The ``k`` refs most similar to ``query`` (a text, embedded with ``model``, or a
        vector of the model's dimension), best first, as ``(ref, cosine)``. ``filter``: only
        refs starting with this prefix; ``exclude``: refs to leave out."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        if filter is not None and not isinstance(filter, str):
            raise InvalidInput(f"filter must be a ref prefix (str) or None, got {filter!r}")
        if isinstance(exclude, str):
            raise InvalidInput("exclude takes a list of refs, not a single string; wrap it")
        excluded = set(exclude)
        embedder = self._embedder(model)
        q = self._query_vector(query, embedder)
        with self._lock:
            index = self._refresh(embedder)
            return self._top_k(index, q, int(k), filter, excluded)

    def _query_vector(self, query: str | np.ndarray, embedder: Embedder) -> np.ndarray:
        if isinstance(query, str):
            return embedder.embed([_check_text("query", query)])[0].astype(np.float32)
        try:
            q = np.asarray(query, dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"query must be a text or a vector, got {type(query).__name__}"
            ) from None
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        if q.ndim != 1 or q.shape[0] != embedder.dim:
            raise InvalidInput(
                f"query vector has dimension {q.shape[-1] if q.ndim else 0} "
                f"(shape {q.shape}), but model {embedder.name!r} has dimension {embedder.dim}"
            )
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidInput("query vector must be finite and non-zero")
        return q / norm

    def _top_k(
        self, index: _Index, q: np.ndarray, k: int, prefix: str | None, excluded: set[str]
    ) -> list[tuple[str, float]]:
        if index.n == 0:
            return []
        scores = index.mat[: index.n] @ q
        rows = None if prefix is None else index.prefix_rows(prefix)
        if excluded:
            drop = [index.pos[r] for r in excluded if r in index.pos]
            if drop:
                scores[drop] = -np.inf
        cand = scores if rows is None else scores[rows]
        kk = min(k + len(excluded), len(cand))  # room for excluded refs among the best
        top = np.argpartition(-cand, kk - 1)[:kk] if kk < len(cand) else np.arange(len(cand))
        top = top[np.argsort(-cand[top], kind="stable")]
        out = []
        for j in top:
            score = float(cand[j])
            if score == -np.inf:
                break
            out.append((index.refs[j if rows is None else int(rows[j])], score))
            if len(out) == k:
                break
        return out

    # --- the index -------------------------------------------------------------------------

    def _refresh(self, embedder: Embedder) -> _Index:
        """The model's index, brought up to date with the store (caller holds the lock)."""
        name = embedder.name
        index = self._indexes.get(name)
        if index is None or index.dim != embedder.dim:
            index = self._indexes[name] = _Index(embedder.dim)
        recount = time.monotonic() - index.counted_at >= self.recount_seconds
        with self.store.transaction(readonly=True) as tx:
            rows = tx.all("embed_since", model=name, since=index.since)
            count = tx.one("embed_count", model=name) if recount else None
        self._apply(index, rows)
        if not recount:
            return index
        index.counted_at = time.monotonic()
        n_stored = 0 if count is None else int(count["n"])
        if n_stored != index.n + len(index.skipped):  # deleted elsewhere: load everything again
            index = self._indexes[name] = _Index(embedder.dim)
            with self.store.transaction(readonly=True) as tx:
                self._apply(index, tx.all("embed_since", model=name, since=-1))
            index.counted_at = time.monotonic()
        return index

    @staticmethod
    def _apply(index: _Index, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        index.since = max(index.since, max(int(r["updated_ns"]) for r in rows))
        kept = [r for r in rows if r["dim"] == index.dim]
        index.skipped.difference_update(r["ref"] for r in kept)
        index.skipped.update(r["ref"] for r in rows if r["dim"] != index.dim)
        if kept:
            blob = b"".join(bytes(r["vector"]) for r in kept)
            vecs = np.frombuffer(blob, dtype="<f4").reshape(len(kept), index.dim)
            index.upsert_many([r["ref"] for r in kept], vecs)
