"""The ai keyspace: tensors, models and scripts by key, kept in the store.

Tensors are read from the store every time (another process, a job worker, may have written
them); loaded models and scripts are cached and reloaded when their row changes. Every write
is announced to subscribers (the server's keyspace notifications) after it commits.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from learnhub._glob import glob_regex
from learnhub.ai import tensor as tensors
from learnhub.ai.backends import Model, Script, load_model, load_script
from learnhub.ai.batcher import Batcher
from learnhub.errors import AIError, WrongType
from learnhub.store import Store

TENSOR, MODEL, SCRIPT = "tensor", "model", "script"
# What Redis's TYPE says for RedisAI's keys (module type names are nine characters).
REDIS_TYPES = {TENSOR: "AI_TENSOR", MODEL: "AI__MODEL", SCRIPT: "AI_SCRIPT"}
EMPTY = {
    TENSOR: "tensor key is empty or in a different shard",
    MODEL: "model key is empty",
    SCRIPT: "script key is empty",
}

Listener = Callable[[str, str], None]  # (key, event)


@dataclass
class LoadedModel:
    meta: dict[str, Any]
    model: Model
    batcher: Batcher | None

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.batcher.run(inputs) if self.batcher else self.model.run(inputs)


@dataclass
class LoadedScript:
    meta: dict[str, Any]
    script: Script


class Keyspace:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._loaded: dict[str, tuple[int, LoadedModel | LoadedScript]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    # --- notifications --------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _notify(self, keys: Iterable[str], event: str) -> None:
        for listener in list(self._listeners):
            for key in keys:
                listener(key, event)

    # --- tensors --------------------------------------------------------------------------

    def put_tensors(self, values: Mapping[str, np.ndarray], event: str = "tensorset") -> None:
        """Write tensors in one transaction (all or none), then announce them."""
        now = time.time_ns()
        rows = []
        for key, array in values.items():
            meta, blob = tensors.encode(array)
            rows.append(
                {
                    "key": key,
                    "type": TENSOR,
                    "meta": json.dumps(meta),
                    "blob": blob,
                    "updated_ns": now,
                }
            )
        self.store.write("ai_put", rows, synced=False)
        self._notify(values, event)

    def get_tensor(self, key: str) -> np.ndarray:
        return self.get_tensors([key])[key]

    def get_tensors(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The tensors at ``keys``, read in one query; AIError names the first missing one."""
        wanted = list(dict.fromkeys(keys))
        rows = self._rows(wanted)
        return {key: self._tensor(rows.get(key), key) for key in wanted}

    def _rows(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        return {r["key"]: r for r in self.store.read("ai_get_many", keys=json.dumps(keys))}

    @staticmethod
    def _tensor(row: dict[str, Any] | None, key: str) -> np.ndarray:
        _check(row, key, TENSOR)
        assert row is not None
        return tensors.decode(json.loads(row["meta"]), bytes(row["blob"]))

    # --- models and scripts ---------------------------------------------------------------

    def put_model(self, key: str, meta: dict[str, Any], blob: bytes) -> None:
        """Load the model first, so a blob no backend accepts is refused and nothing stored."""
        loaded = self._load(MODEL, meta, blob)
        self._put(key, MODEL, meta, blob, loaded, "modelstore")

    def put_script(self, key: str, meta: dict[str, Any], source: str) -> None:
        loaded = self._load(SCRIPT, meta, source.encode())
        self._put(key, SCRIPT, meta, source.encode(), loaded, "scriptstore")

    def _put(
        self,
        key: str,
        kind: str,
        meta: dict[str, Any],
        blob: bytes,
        loaded: LoadedModel | LoadedScript,
        event: str,
    ) -> None:
        now = time.time_ns()
        with self.store.transaction() as tx:
            tx.execute(
                "ai_put", key=key, type=kind, meta=json.dumps(meta), blob=blob, updated_ns=now
            )
        with self._lock:
            self._loaded[key] = (now, loaded)
        self._notify([key], event)

    def model(self, key: str, row: dict[str, Any] | None = None) -> LoadedModel:
        """The loaded model at ``key``; ``row`` is its ai_get_many row if the caller has it."""
        loaded = self._cached(key, MODEL, row)
        assert isinstance(loaded, LoadedModel)
        return loaded

    def script(self, key: str, row: dict[str, Any] | None = None) -> LoadedScript:
        loaded = self._cached(key, SCRIPT, row)
        assert isinstance(loaded, LoadedScript)
        return loaded

    def fetch(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Rows for ``keys`` in one query: tensors with their bytes, models and scripts
        without (for :meth:`model` and :meth:`script`). Missing keys are absent."""
        return self._rows(list(dict.fromkeys(keys)))

    def tensor_from(self, rows: dict[str, dict[str, Any]], key: str) -> np.ndarray:
        return self._tensor(rows.get(key), key)

    def _cached(
        self, key: str, kind: str, row: dict[str, Any] | None
    ) -> LoadedModel | LoadedScript:
        if row is None:
            row = self._rows([key]).get(key)
        _check(row, key, kind)
        assert row is not None
        with self._lock:
            cached = self._loaded.get(key)
        if cached is not None and cached[0] == row["updated_ns"]:
            return cached[1]
        full = self.raw(key)  # changed since we loaded it, or never loaded in this process
        _check(full, key, kind)
        assert full is not None
        loaded = self._load(kind, json.loads(full["meta"]), bytes(full["blob"]))
        with self._lock:
            self._loaded[key] = (full["updated_ns"], loaded)
        return loaded

    @staticmethod
    def _load(kind: str, meta: dict[str, Any], blob: bytes) -> LoadedModel | LoadedScript:
        if kind == SCRIPT:
            return LoadedScript(
                meta, load_script(meta["device"], blob.decode(), meta.get("entry_points"))
            )
        model = load_model(
            meta["backend"], meta["device"], blob, meta.get("inputs", []), meta.get("outputs", [])
        )
        batcher = None
        if meta.get("batchsize"):
            batcher = Batcher(
                model.run,
                meta["batchsize"],
                meta.get("minbatchsize", 0),
                meta.get("minbatchtimeout", 0),
            )
        return LoadedModel(meta, model, batcher)

    # --- any key --------------------------------------------------------------------------

    def raw(self, key: str) -> dict[str, Any] | None:
        rows = self.store.read("ai_get", key=key)
        return rows[0] if rows else None

    def row(self, key: str, kind: str) -> dict[str, Any]:
        """The key's row, checked to hold a ``kind``; AIError/WrongType otherwise."""
        row = self.raw(key)
        _check(row, key, kind)
        assert row is not None
        return row

    def delete(self, keys: Iterable[str], kind: str | None = None) -> int:
        """Delete keys (only of ``kind`` when given); how many existed."""
        deleted = []
        with self.store.transaction() as tx:
            for key in keys:
                n = (
                    tx.execute("ai_delete", key=key)
                    if kind is None
                    else tx.execute("ai_delete_typed", key=key, type=kind)
                )
                if n:
                    deleted.append(key)
        with self._lock:
            for key in deleted:
                self._loaded.pop(key, None)
        self._notify(deleted, "del")
        return len(deleted)

    def keys(self, pattern: str = "*", kind: str | None = None) -> list[tuple[str, str, dict]]:
        """(key, type, meta) of every key matching a Redis glob pattern, sorted by key."""
        regex = glob_regex(pattern)
        rows = self.store.read("ai_keys", type=kind)
        return [
            (r["key"], r["type"], json.loads(r["meta"])) for r in rows if regex.fullmatch(r["key"])
        ]

    def type_of(self, key: str) -> str | None:
        row = self.fetch([key]).get(key)
        return None if row is None else row["type"]

    def flush(self) -> None:
        with self.store.transaction() as tx:
            tx.execute("ai_flush")
        with self._lock:
            self._loaded.clear()


def _check(row: dict[str, Any] | None, key: str, kind: str) -> None:
    if row is None:
        raise AIError(EMPTY[kind])
    if row["type"] != kind:
        raise WrongType()
