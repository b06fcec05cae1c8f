"""Persisted embeddings and exact vector search: ``hub.embed``.

Each (model, ref) has one row: the sha256 of the text it was computed from, and the vector
(float32, little-endian). ``put`` with the same text and model does not call the model again.

Exact search: a float32 matrix per model (memory-mapped), scored with one matrix-vector product
(vectors are unit-norm, so the dot product is the cosine) and ``argpartition`` for the top k.
Above ``approximate_above`` vectors, an approximate index (:mod:`learnhub.embed.ann`) that
mirrors the matrix answers instead. The matrix is loaded from the store on the first search
of a model, then kept up to date before each search with only the rows written since
(``updated_ns``), so embeddings written by other processes are found. Writers take a lock and
stamp ``updated_ns`` above the newest stored one, so stamps grow in commit order and no row is
skipped. A row count check catches what the stamps cannot: a ref deleted by another process
makes the index reload. The count costs ~80 ms at 100k rows on PostgreSQL, so it runs at most
every ``recount_seconds`` (1 s): another process's deletes can show up in search for up to
that long.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from learnhub.embed import ann
from learnhub.embed import related as related_flow
from learnhub.embed.embedders import Embedder, get_embedder
from learnhub.errors import InvalidInput
from learnhub.jobs.queue import Jobs
from learnhub.store import Store

__all__ = ["Embeddings"]

log = logging.getLogger("learnhub.embed")


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


def _unit(vector: Any, embedder: Embedder, what: str) -> np.ndarray:
    """``vector`` as a float32 unit vector of the embedder's dimension, or a clear error."""
    try:
        vec = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{what} must be a text or a vector, got {type(vector).__name__}"
        ) from None
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.shape[0] != embedder.dim:
        raise InvalidInput(
            f"{what} has dimension {vec.shape[-1] if vec.ndim else 0} "
            f"(shape {vec.shape}), but model {embedder.name!r} has dimension {embedder.dim}"
        )
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidInput(f"{what} must be finite and non-zero")
    return vec / norm


def _named(
    index: _Index, rows: np.ndarray, scores: np.ndarray, k: int, excluded: set[str]
) -> list[tuple[str, float]]:
    out = []
    for row, score in zip(rows, scores, strict=True):
        ref = index.refs[int(row)]
        if ref not in excluded:
            out.append((ref, float(score)))
            if len(out) == k:
                break
    return out


def _vector(blob: Any, dim: int) -> np.ndarray:
    vec = np.frombuffer(bytes(blob), dtype="<f4")
    if vec.shape != (dim,):
        raise InvalidInput(f"stored vector has {vec.size} values, expected {dim}")
    return vec


def _cache_dir() -> Path:
    path = platformdirs.user_cache_path("learnhub") / "embed"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Index:
    """The matrix of one model: rows ``[:n]``, ``refs[i]`` naming row ``i``, and, once the
    model is large enough, the approximate index mirroring it (``ann``).

    The matrix lives in a memory-mapped file (unlinked at creation, so nothing is left behind
    even after kill -9): a million vectors do not need 1.5 GB of heap, the kernel may page
    them out when memory is short, and growing it extends the file instead of copying it."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        # closed by close(), or with the index when the process goes
        self._file = tempfile.TemporaryFile(dir=_cache_dir(), prefix="vectors-")  # noqa: SIM115
        self.mat = np.zeros((0, dim), dtype=np.float32)
        self.n = 0
        self.refs: list[str] = []
        self.pos: dict[str, int] = {}
        self.since = -1  # the newest updated_ns seen
        self.counted_at = -float("inf")  # time.monotonic() of the last count check
        self.skipped: set[str] = set()  # stored refs of another dimension, left out
        self.version = 0  # bumped when the set of refs changes (invalidates filter masks)
        self._masks: dict[str, tuple[int, np.ndarray]] = {}
        self.ann: ann.IVFIndex | None = None
        self.building = False  # an approximate index is being built in the background
        self._dirty: set[int] = set()  # rows changed since that build began

    def close(self) -> None:
        self.mat = np.zeros((0, self.dim), dtype=np.float32)
        self.ann = None
        self._file.close()

    def _reserve(self, rows: int) -> None:
        if rows <= len(self.mat):
            return
        capacity = max(16, rows, 2 * len(self.mat))
        self._file.truncate(capacity * self.dim * 4)  # sparse: the new rows cost nothing yet
        self.mat = np.memmap(self._file, dtype=np.float32, mode="r+", shape=(capacity, self.dim))

    def upsert_many(self, refs: list[str], vecs: np.ndarray) -> None:
        if not self.n and len(refs) == len(set(refs)):  # the first load: no per-row work
            self._reserve(len(refs))
            self.mat[: len(refs)] = vecs
            self.n = len(refs)
            self.refs = list(refs)
            self.pos = {r: i for i, r in enumerate(refs)}
            self.version += 1
            return
        changed = []
        for ref, vec in zip(refs, vecs, strict=True):
            i = self.pos.get(ref)
            if i is None:
                self._reserve(self.n + 1)
                i = self.n
                self.n += 1
                self.refs.append(ref)
                self.pos[ref] = i
                self.version += 1
            self.mat[i] = vec
            changed.append(i)
        self._changed(changed)

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
        self._changed([i, last])

    def _changed(self, rows: list[int]) -> None:
        """Bring the approximate index (and the one being built) in step with these rows."""
        if self.building:
            self._dirty.update(rows)
        if self.ann is not None and rows:
            self.ann = self._updated(self.ann, set(rows))

    def _updated(self, index: ann.IVFIndex, rows: set[int]) -> ann.IVFIndex:
        ids = np.array(sorted(rows), dtype=np.int64)
        gone, kept = ids[ids >= self.n], ids[ids < self.n]
        if len(gone):
            index.remove(gone)
        if len(kept):
            index.set(kept, self.mat[kept])
        return index

    def stale(self) -> bool:
        """No approximate index yet, or the matrix grew 4x since it was trained."""
        return self.ann is None or self.n >= 4 * self.ann.trained_n

    def begin_build(self) -> tuple[int, np.ndarray]:
        self.building = True
        self._dirty.clear()
        return self.n, self.mat

    def install(self, built: ann.IVFIndex) -> None:
        """Use ``built`` (from the rows as they were at ``begin_build``) once the rows changed
        since are applied to it."""
        self.building = False
        self.ann = self._updated(built, self._dirty)
        self._dirty.clear()

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

    def __init__(self, store: Store, jobs: Jobs, approximate_above: int = 200_000) -> None:
        self.store = store
        self._jobs = jobs
        for task in related_flow.TASKS:  # embed, similar, rerank: the related-items flow
            jobs.register(task)
        self._lock = threading.RLock()
        self._indexes: dict[str, _Index] = {}
        self.recount_seconds = 1.0
        # Models with at least this many vectors are searched through the approximate index
        # (when faiss is installed): exact search stays under 20 ms up to about here.
        self.approximate_above = approximate_above

    def close(self) -> None:
        """Drop the in-memory indexes (their memory-mapped files go with them)."""
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()

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
        self._write(embedder, [(ref, hashes[ref], vecs[row_of[checked[ref]]]) for ref in todo])
        return len(todo)

    def put_vectors(self, items: Mapping[str, Any], model: str | None = None) -> int:
        """Store vectors computed elsewhere, ``{ref: vector}``, under ``model`` (its dimension;
        each is normalised to unit length). Returns how many were stored."""
        if not isinstance(items, Mapping):
            raise InvalidInput(
                f"items must be a mapping of ref to vector, got {type(items).__name__}"
            )
        embedder = self._embedder(model)
        rows = []
        for ref, vector in items.items():
            vec = _unit(vector, embedder, f"the vector of {_check_ref(ref)!r}")
            rows.append((ref, "vector:" + hashlib.sha256(vec.tobytes()).hexdigest(), vec))
        self._write(embedder, rows)
        return len(rows)

    def _write(self, embedder: Embedder, rows: list[tuple[str, str, np.ndarray]]) -> None:
        """Store ``(ref, hash, vector)`` rows in one transaction, stamped in commit order.

        Unsynced, as tensors are: a kill -9 loses nothing, a power cut at most the last
        vectors, which are derived data (a later put recomputes them; a later synced commit,
        such as the embed job's completion, makes them durable with it, the log being in
        order)."""
        if not rows:
            return
        with self.store.transaction(synced=False) as tx:
            tx.one("embed_lock")
            newest = tx.one("embed_max_ns", model=embedder.name)
            now = max(time.time_ns(), int((newest or {}).get("ns") or 0) + 1)
            tx.execute_many(
                "embed_put",
                [
                    {
                        "model": embedder.name,
                        "ref": ref,
                        "hash": content_hash,
                        "dim": embedder.dim,
                        "vector": vec.astype("<f4").tobytes(),
                        "updated_ns": now + i,
                    }
                    for i, (ref, content_hash, vec) in enumerate(rows)
                ],
            )

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
        exact: bool | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` refs most similar to ``query`` (a text, embedded with ``model``, or a
        vector of the model's dimension), best first, as ``(ref, cosine)``. ``filter``: only
        refs starting with this prefix (scored exactly); ``exclude``: refs to leave out.
        ``exact``: True scores every vector, False uses the approximate index (built on first
        use; needs the ``ann`` extra), None (default) the approximate index once the model
        has ``approximate_above`` vectors and faiss is installed."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        if filter is not None and not isinstance(filter, str):
            raise InvalidInput(f"filter must be a ref prefix (str) or None, got {filter!r}")
        if isinstance(exclude, str):
            raise InvalidInput("exclude takes a list of refs, not a single string; wrap it")
        if exact is not None and not isinstance(exact, bool):
            raise InvalidInput(f"exact must be True, False or None, got {exact!r}")
        if exact is False and not ann.available():
            raise InvalidInput(
                "approximate search needs faiss: pip install -c constraints.txt 'learnhub[ann]'"
            )
        excluded = set(exclude)
        embedder = self._embedder(model)
        q = self._query_vector(query, embedder)
        with self._lock:
            index = self._refresh(embedder)
            if index.n == 0:
                return []
            approximate = exact is False or (
                exact is None and index.n >= self.approximate_above and ann.available()
            )
            if approximate and index.stale():
                if exact is False:  # asked for by name: build it now
                    index.begin_build()
                    index.install(self._build(index.mat, index.n))
                elif not index.building:  # searches stay exact until it is ready
                    self._build_in_background(embedder.name, index)
            if approximate and filter is None and index.ann is not None:
                rows, scores = index.ann.search(q, int(k) + len(excluded))
                return _named(index, rows, scores, int(k), excluded)
            return self._top_k(index, q, int(k), filter, excluded)

    def _query_vector(self, query: str | np.ndarray, embedder: Embedder) -> np.ndarray:
        if isinstance(query, str):
            return embedder.embed([_check_text("query", query)])[0].astype(np.float32)
        return _unit(query, embedder, "query vector")

    def _top_k(
        self, index: _Index, q: np.ndarray, k: int, prefix: str | None, excluded: set[str]
    ) -> list[tuple[str, float]]:
        """Every vector (of the prefix) scored, the best ``k`` picked out."""
        rows = None if prefix is None else index.prefix_rows(prefix)
        scores = index.mat[: index.n] @ q if rows is None else index.mat[rows] @ q
        want = min(k + len(excluded), len(scores))  # room for excluded refs among the best
        if want == 0:
            return []
        top = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else None
        if top is None:
            top = np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return _named(index, top if rows is None else rows[top], scores[top], k, excluded)

    @staticmethod
    def _build(mat: np.ndarray, n: int) -> ann.IVFIndex:
        t0 = time.perf_counter()
        built = ann.IVFIndex(mat[:n])
        log.info("built the approximate index of %d vectors in %.1fs", n, time.perf_counter() - t0)
        return built

    def _build_in_background(self, name: str, index: _Index) -> None:
        n, mat = index.begin_build()

        def build() -> None:
            # Reads rows while writers may change them: the rows they change are marked
            # dirty and applied again by install().
            try:
                built = self._build(mat, n)
            except Exception:
                log.exception("building the approximate index of %s failed", name)
                built = None
            with self._lock:
                if self._indexes.get(name) is not index:  # reloaded meanwhile: drop it
                    return
                if built is None:
                    index.building = False
                else:
                    index.install(built)

        threading.Thread(target=build, name=f"learnhub-ann-{name}", daemon=True).start()

    # --- the index -------------------------------------------------------------------------

    def _refresh(self, embedder: Embedder) -> _Index:
        """The model's index, brought up to date with the store (caller holds the lock)."""
        name = embedder.name
        index = self._indexes.get(name)
        if index is None or index.dim != embedder.dim:
            if index is not None:
                index.close()
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
            index.close()
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
