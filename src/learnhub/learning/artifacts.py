"""Store and look up learning data.

A version is the content hash of an artifact's files and attributes, so storing the same
learning twice is a no-op and a version names exactly one content everywhere (peers rely on
that to verify what they fetch). The best version of a key has the lowest metric; ties go to
the newest.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from learnhub.errors import InvalidInput
from learnhub.store import Store, Tx

AttrValue = str | int | float | bool
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ArtifactVersion:
    """One stored version of a key, without its file contents."""

    key: str
    version: str
    metric: float
    attrs: dict[str, AttrValue]
    origin: str
    updated: datetime
    base: str | None
    sizes: dict[str, int]


@dataclass(frozen=True)
class Artifact(ArtifactVersion):
    """A version with its files."""

    files: dict[str, bytes] = field(default_factory=dict, repr=False)


class Learning:
    """``hub.learning``: the learning-data API."""

    def __init__(self, store: Store, node_id: str) -> None:
        self._store = store
        self._node_id = node_id

    def store(
        self,
        key: str,
        files: Mapping[str, bytes],
        metric: float,
        attrs: Mapping[str, AttrValue] | None = None,
        base: str | None = None,
    ) -> str:
        """Store a version of ``key`` and return its version; durable when this returns.

        ``base`` is the version this one was derived from (the token a lookup returned).
        """
        _check_key(key)
        files = _checked_files(files)
        metric = _checked_metric(metric)
        attrs = _checked_attrs(attrs)
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        version = content_version(hashes, attrs)
        with self._store.transaction() as tx:
            if base is not None and tx.one("artifact_version", key=key, version=base) is None:
                raise InvalidInput(
                    f"base version {base!r} is not a version of {key!r}: "
                    "pass the version a lookup of this key returned, or no base"
                )
            for name, data in files.items():
                tx.execute("insert_blob", hash=hashes[name], size=len(data), data=data)
            new = tx.execute(
                "insert_artifact",
                key=key,
                version=version,
                metric=metric,
                attrs=json.dumps(attrs, sort_keys=True),
                origin=self._node_id,
                base=base,
                created_ns=time.time_ns(),
            )
            if new:
                for name in files:
                    tx.execute(
                        "insert_artifact_file",
                        key=key,
                        version=version,
                        name=name,
                        blob_hash=hashes[name],
                    )
                for name, value in attrs.items():
                    tx.execute(
                        "insert_artifact_attr",
                        key=key,
                        version=version,
                        name=name,
                        value=attr_text(value),
                    )
        return version

    def lookup(self, key: str, where: Mapping[str, Any] | None = None) -> Artifact | None:
        """The best version of ``key`` whose attributes match ``where``, with its files.

        Attributes match by their text on the wire (``attr_text``): ``{"period": 10}`` and
        ``{"period": "10"}`` match either. A ``where`` field that no version of the key has
        is an error, not a silent miss.
        """
        with self._store.transaction(readonly=True) as tx:
            best = self._best(tx, key, where)
            if best is None:
                return None
            return _with_files(best, tx.all("artifact_files", key=key, version=best.version))

    def best(self, key: str, where: Mapping[str, Any] | None = None) -> ArtifactVersion | None:
        """Like ``lookup`` without reading the files."""
        with self._store.transaction(readonly=True) as tx:
            return self._best(tx, key, where)

    def _best(self, tx: Tx, key: str, where: Mapping[str, Any] | None) -> ArtifactVersion | None:
        _check_key(key)
        wanted = {name: attr_text(value) for name, value in (where or {}).items()}
        if not wanted:
            row = tx.one("best_artifact", key=key)
            return None if row is None else _version(key, row)
        row = tx.one("best_artifact_where", key=key, where=json.dumps(wanted), n_where=len(wanted))
        if row is None:
            unknown = [n for n in wanted if tx.one("has_attr", key=key, name=n) is None]
            if unknown and tx.one("has_key", key=key):
                known = [r["name"] for r in tx.all("attr_names", key=key)]
                raise InvalidInput(
                    f"unknown attribute {', '.join(map(repr, unknown))} in WHERE for key "
                    f"{key!r}; its versions have: {', '.join(known) or 'no attributes'}"
                )
        return None if row is None else _version(key, row)

    def get(self, key: str, version: str) -> Artifact | None:
        """One exact version of ``key``, or None."""
        _check_key(key)
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("artifact_version", key=key, version=version)
            if row is None:
                return None
            return _with_files(
                _version(key, row), tx.all("artifact_files", key=key, version=version)
            )

    def versions(self, key: str) -> list[ArtifactVersion]:
        """Every version of ``key``, newest first."""
        _check_key(key)
        with self._store.transaction(readonly=True) as tx:
            return [_version(key, r) for r in tx.all("artifact_versions", key=key)]

    def list(self, prefix: str = "") -> list[dict[str, Any]]:
        """Keys starting with ``prefix``: how many versions each has, its best metric and
        when it was last updated."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all("artifact_keys", prefix=escaped)
        return [
            {
                "key": r["key"],
                "versions": r["versions"],
                "best_metric": r["best_metric"],
                "updated": _time(r["updated_ns"]),
            }
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("artifact_counts")
        assert row is not None
        return {"keys": row["keys"], "versions": row["versions"]}


def content_version(file_hashes: Mapping[str, str], attrs: Mapping[str, AttrValue]) -> str:
    """The version of an artifact: a hash of its file names and contents and its attributes."""
    canonical = json.dumps({"attrs": attrs, "files": file_hashes}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def attr_text(value: AttrValue) -> str:
    """How an attribute value is written on the wire."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _version(key: str, row: dict[str, Any]) -> ArtifactVersion:
    return ArtifactVersion(
        key=key,
        version=row["version"],
        metric=row["metric"],
        attrs=json.loads(row["attrs"]),
        origin=row["origin"],
        updated=_time(row["created_ns"]),
        base=row["base"],
        sizes=json.loads(row["sizes"] or "{}"),
    )


def _with_files(v: ArtifactVersion, rows: list[dict[str, Any]]) -> Artifact:
    return Artifact(**vars(v), files={r["name"]: bytes(r["data"]) for r in rows})


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInput("a key must be a non-empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidInput(f"key is {len(key.encode())} bytes long; the limit is {MAX_KEY_BYTES}")
    if any(ord(c) < 32 for c in key):
        raise InvalidInput(f"key {key!r} contains control characters")


def _checked_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    if not files:
        raise InvalidInput("an artifact needs at least one file; nothing was stored")
    checked = {}
    for name, data in files.items():
        if not isinstance(name, str) or not name or name in (".", ".."):
            raise InvalidInput(f"file name {name!r} is not a usable file name")
        if "/" in name or "\\" in name or any(ord(c) < 32 for c in name):
            raise InvalidInput(
                f"file name {name!r} may not contain slashes or control characters: "
                "files are written back under their names"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"file {name!r} must be bytes, not {type(data).__name__}")
        checked[name] = bytes(data)
    return checked


def _checked_metric(metric: Any) -> float:
    if isinstance(metric, bool) or not isinstance(metric, int | float):
        raise InvalidInput(f"metric must be a number, got {metric!r}")
    if not math.isfinite(metric):
        raise InvalidInput(f"metric must be a finite number, got {metric!r}")
    return float(metric)


def _checked_attrs(attrs: Mapping[str, Any] | None) -> dict[str, AttrValue]:
    checked: dict[str, AttrValue] = {}
    for name, value in (attrs or {}).items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"attribute name {name!r} must be a non-empty string")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInput(
                f"attribute {name!r} must be a string, number or boolean, "
                f"not {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"attribute {name!r} must be finite, got {value!r}")
        checked[name] = value
    return checked
