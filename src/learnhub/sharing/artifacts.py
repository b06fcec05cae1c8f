"""Learning-data artifacts on shared locations: the same machinery as examples, for the keys
that match ``sharing.artifacts`` patterns (e.g. ``model/*``).

One file per version, ``<key, quoted>@<version>.artifact.json``, holding the version's
metadata and its files (base64). Versions are content hashes, so a loader recomputes the
version from what it read and rejects a file that does not match (corrupt or tampered), and
loading the same version twice is a no-op. The origin node is kept: a hub that loads another's
model knows where it was learned.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import math
import urllib.parse
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from learnhub.errors import InvalidInput
from learnhub.learning import Artifact, Learning
from learnhub.learning.artifacts import attr_text, content_version
from learnhub.store import Store

FORMAT = "learnhub.artifact/1"
SUFFIX = ".artifact.json"


def file_name(key: str, version: str) -> str:
    return urllib.parse.quote(key, safe="") + "@" + version + SUFFIX


def to_file(artifact: Artifact) -> bytes:
    doc = {
        "format": FORMAT,
        "key": artifact.key,
        "version": artifact.version,
        "metric": artifact.metric,
        "attrs": artifact.attrs,
        "origin": artifact.origin,
        "base": artifact.base,
        "created_ns": int(artifact.updated.astimezone(UTC).timestamp() * 1e9),
        "files": {n: base64.b64encode(d).decode("ascii") for n, d in artifact.files.items()},
    }
    return json.dumps(doc, sort_keys=True).encode("utf-8")


@dataclass
class LoadedArtifact:
    key: str
    version: str
    metric: float
    attrs: dict[str, Any]
    origin: str
    base: str | None
    created_ns: int
    files: dict[str, bytes]

    @property
    def item_id(self) -> str:
        return f"{self.key}@{self.version}"


def parse_file(data: bytes, path: str) -> LoadedArtifact:
    """An artifact version from a file; ValueError saying what is wrong with a bad one."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON artifact file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    key, version = doc.get("key"), doc.get("version")
    if not isinstance(key, str) or not key or not isinstance(version, str) or not version:
        raise ValueError("missing key or version")
    metric = doc.get("metric")
    if isinstance(metric, bool) or not isinstance(metric, int | float) or not math.isfinite(metric):
        raise ValueError(f"metric must be a finite number, got {metric!r}")
    attrs = doc.get("attrs") or {}
    raw = doc.get("files")
    if not isinstance(attrs, dict) or not isinstance(raw, dict) or not raw:
        raise ValueError("attrs must be an object and files a non-empty object")
    try:
        files = {str(n): base64.b64decode(d, validate=True) for n, d in raw.items()}
    except (TypeError, ValueError):
        raise ValueError("a file is not valid base64") from None
    hashes = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    if content_version(hashes, attrs) != version:
        raise ValueError(f"content does not match version {version} (corrupt or altered)")
    created = doc.get("created_ns")
    if isinstance(created, bool) or not isinstance(created, int):
        raise ValueError("created_ns must be an integer")
    origin = doc.get("origin") if isinstance(doc.get("origin"), str) else "unknown"
    base = doc.get("base") if isinstance(doc.get("base"), str) else None
    return LoadedArtifact(key, version, float(metric), attrs, origin, base, created, files)


def load(learning: Learning, store: Store, art: LoadedArtifact) -> bool:
    """Store a loaded version (its origin kept); False if it was already here. Through
    ``learning.put`` when it takes an origin, so the key's combination policy decides what
    becomes current, as for any other incoming version."""
    if learning.get(art.key, art.version) is not None:
        return False
    if "origin" in inspect.signature(learning.put if hasattr(learning, "put") else load).parameters:
        try:
            learning.put(art.key, art.files, art.metric, art.attrs, origin=art.origin)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return True
    hashes = {n: hashlib.sha256(d).hexdigest() for n, d in art.files.items()}
    with store.transaction() as tx:
        for name, data in art.files.items():
            tx.execute("insert_blob", hash=hashes[name], size=len(data), data=data)
        new = tx.execute(
            "insert_artifact",
            key=art.key,
            version=art.version,
            metric=art.metric,
            attrs=json.dumps(art.attrs, sort_keys=True),
            origin=art.origin,
            base=art.base,
            created_ns=art.created_ns,
        )
        if new:
            for name in art.files:
                tx.execute(
                    "insert_artifact_file",
                    key=art.key,
                    version=art.version,
                    name=name,
                    blob_hash=hashes[name],
                )
            for name, value in art.attrs.items():
                tx.execute(
                    "insert_artifact_attr",
                    key=art.key,
                    version=art.version,
                    name=name,
                    value=attr_text(value),
                )
    return bool(new)
