"""``hub.models``: the models of batches, with user-defined statuses.

A model's bytes are a learning-data artifact, key ``model/<batch>`` (file ``model``), so the
peers can share them like any learning; the ``models`` row adds what the artifact cannot
carry: its status (which changes), its metrics, and the data it was trained on. Objects that
are not bytes are pickled, and ``Model.load()`` unpickles them (load only models you trust).
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from learnhub.errors import InvalidInput
from learnhub.learning import Learning
from learnhub.store import Store, Tx

MODEL_FILE = "model"
# The artifact attribute that says how to read the file back.
FORMAT_BYTES, FORMAT_PICKLE = "bytes", "pickle"


def model_key(batch: str) -> str:
    """The learning-data key of a batch's models."""
    return f"model/{batch}"


@dataclass(frozen=True)
class Model:
    """One saved model of a batch. ``version`` is its artifact version under ``model/<batch>``;
    ``data_from_ts``/``data_to_ts`` the ns timestamps of the first and last sample it learned
    from; ``mode`` 'scratch' or 'finetune' when a training task made it."""

    id: int
    batch: str
    version: str
    status: str
    metrics: dict[str, Any]
    mode: str | None
    data_from_ts: int | None
    data_to_ts: int | None
    task_id: int | None
    created_at: datetime
    _learning: Learning | None = field(default=None, repr=False, compare=False)

    @property
    def created_ns(self) -> int:
        return int(self.created_at.timestamp() * 1e9)

    def load(self) -> Any:
        """The model: the object it was saved as (unpickled), or its bytes."""
        if self._learning is None:
            raise InvalidInput("this Model was not read from a hub; use hub.models.get(id)")
        artifact = self._learning.get(model_key(self.batch), self.version)
        if artifact is None:
            raise InvalidInput(
                f"model {self.id} of batch {self.batch!r}: artifact version {self.version} "
                "is missing from the learning data"
            )
        data = artifact.files[MODEL_FILE]
        return pickle.loads(data) if artifact.attrs.get("format") == FORMAT_PICKLE else data


class Models:
    """``hub.models``: save, find and re-tag models."""

    def __init__(self, store: Store, learning: Learning) -> None:
        self.store = store
        self.learning = learning

    def save(
        self,
        batch: str,
        blob_or_object: Any,
        metrics: Mapping[str, Any] | None = None,
        status: str = "ready",
        *,
        mode: str | None = None,
        data_from_ts: int | None = None,
        data_to_ts: int | None = None,
        task_id: int | None = None,
    ) -> Model:
        """Save a model of ``batch``: bytes as they are, any other object pickled.

        Its artifact metric (lower is better) is ``metrics["val_loss"]``, else the first
        number in ``metrics`` by name, else 0.
        """
        _check_name(batch, "batch")
        _check_name(status, "status")
        if mode is not None:
            _check_name(mode, "mode")
        for name, ts in (("data_from_ts", data_from_ts), ("data_to_ts", data_to_ts)):
            if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
                raise InvalidInput(f"{name} must be an int (ns timestamp) or None, got {ts!r}")
        if data_from_ts is not None and data_to_ts is not None and data_from_ts > data_to_ts:
            raise InvalidInput(f"data_from_ts {data_from_ts} is after data_to_ts {data_to_ts}")
        metrics_json = _metrics_json(metrics)
        if isinstance(blob_or_object, bytes | bytearray | memoryview):
            data, fmt = bytes(blob_or_object), FORMAT_BYTES
        else:
            try:
                data, fmt = pickle.dumps(blob_or_object), FORMAT_PICKLE
            except Exception as exc:
                raise InvalidInput(
                    f"cannot pickle the model ({type(blob_or_object).__name__}): {exc}; "
                    "save bytes instead (e.g. your framework's own serialisation)"
                ) from None
        attrs: dict[str, str | int] = {"format": fmt}
        if mode is not None:
            attrs["mode"] = mode
        if data_from_ts is not None:
            attrs["data_from_ts"] = data_from_ts
        if data_to_ts is not None:
            attrs["data_to_ts"] = data_to_ts
        version = self.learning.store(
            model_key(batch), {MODEL_FILE: data}, _metric(json.loads(metrics_json)), attrs
        )
        with self.store.transaction() as tx:
            row = tx.one(
                "insert_model",
                batch=batch,
                version=version,
                status=status,
                metrics=metrics_json,
                mode=mode,
                data_from_ts=data_from_ts,
                data_to_ts=data_to_ts,
                task_id=task_id,
                created_ns=time.time_ns(),
            )
            assert row is not None
            return self._model(tx.one("get_model", id=row["id"]))  # type: ignore[arg-type]

    def latest(self, batch: str, status: str | Iterable[str] | None = ("ready",)) -> Model | None:
        """The newest model of ``batch`` whose status is one of ``status`` (None: any)."""
        with self.store.transaction(readonly=True) as tx:
            return self.latest_in(tx, batch, status)

    def latest_in(self, tx: Tx, batch: str, status: str | Iterable[str] | None) -> Model | None:
        """``latest`` inside a transaction of the caller's."""
        if status is None:
            rows = tx.all("list_models", batch=batch)
            return self._model(rows[-1]) if rows else None
        statuses = _statuses(status)
        row = tx.one("latest_model", batch=batch, statuses=json.dumps(statuses))
        return None if row is None else self._model(row)

    def list(self, batch: str) -> list[Model]:
        """Every model of ``batch``, oldest first."""
        with self.store.transaction(readonly=True) as tx:
            return [self._model(r) for r in tx.all("list_models", batch=batch)]

    def get(self, model_id: int) -> Model | None:
        with self.store.transaction(readonly=True) as tx:
            row = tx.one("get_model", id=model_id)
        return None if row is None else self._model(row)

    def set_status(self, model_id: int, status: str) -> Model:
        """Re-tag a model, e.g. 'ready' once it passed your checks, 'retired' to stop
        inference from using it."""
        _check_name(status, "status")
        with self.store.transaction() as tx:
            if tx.one("set_model_status", id=model_id, status=status) is None:
                raise InvalidInput(f"there is no model {model_id}")
            return self._model(tx.one("get_model", id=model_id))  # type: ignore[arg-type]

    def _model(self, row: dict[str, Any]) -> Model:
        return Model(
            id=row["id"],
            batch=row["batch"],
            version=row["version"],
            status=row["status"],
            metrics=json.loads(row["metrics"]),
            mode=row["mode"],
            data_from_ts=row["data_from_ts"],
            data_to_ts=row["data_to_ts"],
            task_id=row["task_id"],
            created_at=datetime.fromtimestamp(row["created_ns"] / 1e9, tz=UTC),
            _learning=self.learning,
        )


def _check_name(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")


def _statuses(status: str | Iterable[str]) -> list[str]:
    statuses = [status] if isinstance(status, str) else list(status)
    if not statuses:
        raise InvalidInput("give at least one status, e.g. ('ready',)")
    for s in statuses:
        _check_name(s, "a status")
    return statuses


def _metrics_json(metrics: Mapping[str, Any] | None) -> str:
    if metrics is None:
        return "{}"
    if not isinstance(metrics, Mapping):
        raise InvalidInput(f"metrics must be a dict, not {type(metrics).__name__}")
    if not all(isinstance(k, str) for k in metrics):
        raise InvalidInput("metric names must be strings")

    def plain(value: Any) -> Any:  # numpy scalars and the like
        if hasattr(value, "item"):
            return value.item()
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        return json.dumps(dict(metrics), default=plain, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metrics must be JSON with finite numbers: {exc}") from None


def _metric(metrics: dict[str, Any]) -> float:
    """val_loss, else the first number by metric name, else 0 (metrics are finite)."""
    numbers = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return float(numbers.get("val_loss", next(iter(numbers.values()), 0.0)))
