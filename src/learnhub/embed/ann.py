"""The approximate index of a model's vectors, for sets too large to scan at every search.

A faiss inverted-file index (IVF): k-means centroids trained on a sample of the vectors, each
vector filed under its nearest centroid, and a search that scores only the vectors of the
:data:`PROBES` lists nearest to the query. It builds far faster than a graph index (100k
vectors of 384 on this project's busy 2-core machine: 5 s against 77 s for usearch's HNSW;
~90 s at 1M), and its recall is measured against exact search by
``benchmarks/bench_embed.py``. Its ids are the row numbers of the exact matrix it mirrors.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from learnhub.errors import InvalidInput

__all__ = ["PROBES", "IVFIndex", "available"]

PROBES = 48  # lists scanned per search: recall against speed
TRAIN_PER_LIST = 40  # faiss wants at least 39 training vectors per centroid


def available() -> bool:
    """Whether faiss (the ``ann`` extra) is installed."""
    return importlib.util.find_spec("faiss") is not None


class IVFIndex:
    """An IVF index over the rows of ``mat``; rows are then kept in step by ``set``/``remove``."""

    def __init__(self, mat: np.ndarray) -> None:
        if not available():
            raise InvalidInput(
                "approximate search needs faiss: pip install -c constraints.txt 'learnhub[ann]'"
            )
        import faiss

        n, dim = mat.shape
        self.trained_n = n
        self.lists = max(1, min(int(4 * math.sqrt(n)), n // TRAIN_PER_LIST))
        self._quantizer = faiss.IndexFlatIP(dim)  # the index refers to it: keep it alive
        self._ivf = faiss.IndexIVFFlat(self._quantizer, dim, self.lists, faiss.METRIC_INNER_PRODUCT)
        sample = min(n, TRAIN_PER_LIST * self.lists * 2)
        rows = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
        self._ivf.train(np.ascontiguousarray(mat[rows], dtype=np.float32))
        self._ivf.add_with_ids(np.ascontiguousarray(mat, dtype=np.float32), np.arange(n))
        self._ivf.nprobe = min(self.lists, PROBES)

    def __len__(self) -> int:
        return int(self._ivf.ntotal)

    def set(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        """File ``vecs`` under row ids ``rows``, replacing what those rows held."""
        rows = np.asarray(rows, dtype=np.int64)
        self._ivf.remove_ids(rows)
        self._ivf.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), rows)

    def remove(self, rows: np.ndarray) -> None:
        self._ivf.remove_ids(np.asarray(rows, dtype=np.int64))

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows of (about) the ``k`` best inner products with ``q`` and their scores, best
        first; fewer when the probed lists hold fewer."""
        scores, rows = self._ivf.search(q.reshape(1, -1).astype(np.float32), k)
        found = rows[0] >= 0
        return rows[0][found], scores[0][found]
