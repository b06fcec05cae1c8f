"""Store and look up learning data.

A version is the content hash of an artifact's files and attributes, so storing the same
learning twice is a no-op and a version names exactly one content everywhere (peers rely on
that to verify what they fetch). The best version of a key has the lowest metric; ties go to
the newest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from learnhub.errors import InvalidInput, StoreError
from learnhub.learning.elsewhere import Elsewhere, UpstreamHub
from learnhub.learning.policies import LearningConfig, MergeFn, Policies
from learnhub.store import Store, Tx

AttrValue = str | int | float | bool
MAX_KEY_BYTES = 1024
# A merge that keeps finding its key moved on gives up after this many rounds.
MAX_MERGE_ROUNDS = 100

log = logging.getLogger("learnhub.learning")


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


@dataclass(frozen=True)
class VerifiedArtifact(Artifact):
    """An artifact whose files' sha256 digests (``hashes``) were computed from the very bytes
    it holds, and its version checked against them (``content_version``), by whoever made it
    (a peer fetch hashes the chunks as they arrive): ``Learning.adopt`` stores it without
    hashing 50 MB again. Its files may be any bytes-like objects (stored without a copy)."""

    hashes: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Combination:
    """A store that found its key moved on since its base, and what the policy made of it."""

    key: str
    policy: str
    base: str | None
    """The version the writer started from (None: it started from a miss)."""
    current: str
    """The key's current version when the store arrived."""
    incoming: str
    """The version the writer stored (kept in the history whatever the outcome)."""
    result: str
    """The key's current version afterwards."""
    detail: str | None
    created: datetime

    @property
    def inputs(self) -> list[str]:
        """The versions that went in."""
        return [v for v in (self.base, self.current, self.incoming) if v is not None]


@dataclass(frozen=True)
class Stored:
    """What a store did: the version it wrote, and the key's current version afterwards."""

    version: str
    current: str
    combination: Combination | None = None


class Learning:
    """``hub.learning``: the learning-data API.

    The *current* version of a key is what ``lookup`` returns and what ``STORE`` replies:
    under the ``best`` policy (the default) the lowest metric, else the last version made
    current (see ``learnhub.learning.policies``).
    """

    def __init__(self, store: Store, node_id: str, config: LearningConfig | None = None) -> None:
        self._store = store
        self._node_id = node_id
        self.policies = Policies(config)
        # Where a lookup miss is asked (an upstream hub; later, peers).
        self.elsewhere = Elsewhere(self.policies.config.lookup_timeout)
        self._upstream: UpstreamHub | None = None
        self.configure(self.policies.config)

    def configure(self, config: LearningConfig) -> None:
        """Apply a ``[learning]`` configuration: policies, upstream hub, lookup budget."""
        self.policies.configure(config)
        self.elsewhere.timeout = float(config.lookup_timeout)
        if self._upstream is not None and self._upstream.url != config.upstream:
            self.elsewhere.remove(self._upstream)
            self._upstream.close()
            self._upstream = None
        if config.upstream and self._upstream is None:
            self._upstream = UpstreamHub(config.upstream)
            self.elsewhere.add(self._upstream)

    def register_merge(self, pattern: str, fn: MergeFn) -> None:
        """Combine concurrent stores of keys matching ``pattern`` with
        ``fn(key, base, current, incoming) -> (files, metric, attrs)``."""
        self.policies.register_merge(pattern, fn)

    def close(self) -> None:
        self.elsewhere.close()

    # --- writing ------------------------------------------------------------------------

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
        See ``put`` for what happens when the key moved on since.
        """
        return self.put(key, files, metric, attrs, base).version

    def put(
        self,
        key: str,
        files: Mapping[str, bytes],
        metric: float,
        attrs: Mapping[str, AttrValue] | None = None,
        base: str | None = None,
        *,
        origin: str | None = None,
    ) -> Stored:
        """Store a version of ``key``; when the key's current version is no longer ``base``
        (another run stored since this one's lookup, or it started from a miss and the key
        now exists), apply the key's policy instead of replacing, and record the combination.

        The incoming version is always kept in the history. The policy decision and the
        writes are one transaction; a merge function runs outside it and its result is
        written only if the key has not moved again meanwhile (else it merges again).
        """
        _check_key(key)
        return self._put(
            key, _checked_files(files), metric, attrs, base, origin=origin, hashes=None
        )

    def _put(
        self,
        key: str,
        files: dict[str, bytes],
        metric: float,
        attrs: Mapping[str, AttrValue] | None,
        base: str | None,
        *,
        origin: str | None,
        hashes: Mapping[str, str] | None,
    ) -> Stored:
        """``put`` of checked files; ``hashes``: their sha256 digests if already known."""
        _check_key(key)
        metric = _checked_metric(metric)
        attrs = _checked_attrs(attrs)
        rule = self.policies.rule_for(key)
        if rule.policy == "merge" and rule.merge is None:
            raise InvalidInput(
                f"key {key!r} has the merge policy (pattern {rule.pattern!r}) but no merge "
                f"function: call hub.learning.register_merge({rule.pattern!r}, fn) or name one "
                'in config as "merge:package.module:function"; nothing was stored'
            )
        if hashes is None:
            hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        else:
            hashes = {name: hashes[name] for name in files}
        version = content_version(hashes, attrs)
        with self._store.transaction() as tx:
            tx.execute("lock_learning_key", key=key)
            if base is not None and tx.one("artifact_version", key=key, version=base) is None:
                raise InvalidInput(
                    f"base version {base!r} is not a version of {key!r}: "
                    "pass the version a lookup of this key returned, or no base"
                )
            current = self._current(tx, key, rule.policy)
            new = self._insert(tx, key, version, files, hashes, metric, attrs, origin, base)
            if current is None or current.version in (base, version):
                # No one else stored since this writer's lookup: a plain store.
                head = version
                if rule.policy == "best" and current is not None:
                    if not new:  # an old version stored again: its old time may lose a tie
                        best = self._current(tx, key, "best")
                        assert best is not None
                        head = best.version
                    elif metric > current.metric:  # the lowest metric, the newest on ties
                        head = current.version
                self._set_head(tx, key, head)
                return Stored(version, head)
            if rule.policy != "merge":
                incoming = self._version_row(tx, key, version)
                result_version = self._choose(tx, rule.policy, key, current, incoming)
                combination = self._combine(
                    tx, key, rule.policy, base, current.version, version, result_version, None
                )
                return Stored(version, result_version, combination)
        assert rule.merge is not None
        return self._merge(key, rule.merge, base, current.version, version)

    def _insert(
        self,
        tx: Tx,
        key: str,
        version: str,
        files: dict[str, bytes],
        hashes: dict[str, str],
        metric: float,
        attrs: dict[str, AttrValue],
        origin: str | None,
        base: str | None,
    ) -> bool:
        """Write a version (its blobs, files and attributes); False if it was there already."""
        for name, data in files.items():
            tx.execute("insert_blob", hash=hashes[name], size=len(data), data=data)
        new = tx.execute(
            "insert_artifact",
            key=key,
            version=version,
            metric=metric,
            attrs=json.dumps(attrs, sort_keys=True),
            origin=origin or self._node_id,
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
                value_text = attr_text(value)
                tx.execute(
                    "insert_artifact_attr", key=key, version=version, name=name, value=value_text
                )
        return bool(new)

    def _choose(
        self, tx: Tx, policy: str, key: str, current: ArtifactVersion, incoming: ArtifactVersion
    ) -> str:
        """The version that comes out of combining ``current`` and ``incoming``."""
        if policy == "best":
            best = self._current(tx, key, "best")  # the incoming version is in already
            assert best is not None
            return best.version
        if policy == "newest":
            return incoming.version
        size_in, size_cur = sum(incoming.sizes.values()), sum(current.sizes.values())
        if policy == "smallest":
            return incoming.version if size_in < size_cur else current.version
        if policy == "largest":
            return incoming.version if size_in > size_cur else current.version
        raise AssertionError(f"no choice rule for policy {policy!r}")

    def _merge(
        self, key: str, fn: MergeFn, base: str | None, current: str, incoming: str
    ) -> Stored:
        for _ in range(MAX_MERGE_ROUNDS):
            merged, detail = self._run_merge(key, fn, base, current, incoming)
            with self._store.transaction() as tx:
                tx.execute("lock_learning_key", key=key)
                now = self._current(tx, key, "merge")
                assert now is not None  # the incoming version is stored
                if now.version in (base, incoming):
                    # The key came back to where this writer started, or to its own content.
                    self._set_head(tx, key, incoming)
                    return Stored(incoming, incoming)
                if now.version != current:
                    current = now.version  # moved again while merging: merge with that
                    continue
                if merged is not None:
                    files, metric, attrs = merged
                    hashes = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
                    result = content_version(hashes, attrs)
                    self._insert(tx, key, result, files, hashes, metric, attrs, None, current)
                else:  # the merge function failed: the lower metric wins, as under best
                    cur = self._version_row(tx, key, current)
                    inc = self._version_row(tx, key, incoming)
                    result = current if cur.metric < inc.metric else incoming
                combination = self._combine(
                    tx, key, "merge", base, current, incoming, result, detail
                )
                return Stored(incoming, result, combination)
        raise StoreError(
            f"key {key!r} kept moving while merging ({MAX_MERGE_ROUNDS} rounds); the incoming "
            f"version {incoming} is stored but not merged: store it again to retry"
        )

    def _run_merge(
        self, key: str, fn: MergeFn, base: str | None, current: str, incoming: str
    ) -> tuple[tuple[dict[str, bytes], float, dict[str, AttrValue]] | None, str | None]:
        """The merge function's checked output, or None and why it failed."""
        base_art = self.get(key, base) if base else None
        cur, inc = self.get(key, current), self.get(key, incoming)
        assert cur is not None and inc is not None
        try:
            out = fn(key, base_art, cur, inc)
            if not isinstance(out, tuple) or len(out) != 3:
                raise InvalidInput(
                    f"a merge function must return (files, metric, attrs), got {type(out).__name__}"
                )
            files, metric, attrs = out
            return (_checked_files(files), _checked_metric(metric), _checked_attrs(attrs)), None
        except Exception as exc:
            log.exception("merge function for %r failed; the lower metric wins", key)
            why = f"merge function failed ({type(exc).__name__}: {exc}); kept the lower metric"
            return None, why

    def _combine(
        self,
        tx: Tx,
        key: str,
        policy: str,
        base: str | None,
        current: str,
        incoming: str,
        result: str,
        detail: str | None,
    ) -> Combination:
        created_ns = time.time_ns()
        tx.execute(
            "insert_combination",
            key=key,
            policy=policy,
            base=base,
            current_version=current,
            incoming_version=incoming,
            result_version=result,
            detail=detail,
            created_ns=created_ns,
        )
        self._set_head(tx, key, result)
        log.info(
            "%s: %s combined current %s with incoming %s -> %s",
            key, policy, current[:12], incoming[:12], result[:12],
        )  # fmt: skip
        return Combination(key, policy, base, current, incoming, result, detail, _time(created_ns))

    def _set_head(self, tx: Tx, key: str, version: str) -> None:
        tx.execute("set_head", key=key, version=version, created_ns=time.time_ns())

    def _current(self, tx: Tx, key: str, policy: str) -> ArtifactVersion | None:
        """The key's current version under ``policy`` (None: the key has no version)."""
        if policy == "best":
            row = tx.one("best_artifact", key=key)
        else:  # the last version made current; keys stored some other way: the newest
            row = tx.one("head_artifact", key=key) or tx.one("newest_artifact", key=key)
        return None if row is None else _version(key, row)

    def _version_row(self, tx: Tx, key: str, version: str) -> ArtifactVersion:
        row = tx.one("artifact_version", key=key, version=version)
        assert row is not None
        return _version(key, row)

    # --- reading ------------------------------------------------------------------------

    def lookup(
        self, key: str, where: Mapping[str, Any] | None = None, *, local: bool = False
    ) -> Artifact | None:
        """The current version of ``key`` whose attributes match ``where``, with its files.
        Its ``version`` is the token to pass as ``base`` when storing what was learned from it.

        On a miss, unless ``local``, the hub asks elsewhere (``self.elsewhere``: an upstream
        hub, later peers) within ``lookup_timeout`` and stores what it gets.

        Attributes match by their text on the wire (``attr_text``): ``{"period": 10}`` and
        ``{"period": "10"}`` match either. A ``where`` field that no version of the key has
        is an error, not a silent miss.
        """
        with self._store.transaction(readonly=True) as tx:
            found = self._find(tx, key, where)
            if found is not None:
                return _with_files(found, tx.all("artifact_files", key=key, version=found.version))
        if local or not self.elsewhere.sources:
            return None
        wanted = {name: attr_text(value) for name, value in (where or {}).items()}
        fetched = self.elsewhere.ask(key, wanted, self.adopt)
        if fetched is None:
            return None
        # What the store holds now (the fetched version, or what a policy made of it); when
        # that is the fetched version, verified, its bytes are at hand: not read back.
        if not isinstance(fetched, VerifiedArtifact):
            return self.lookup(key, where, local=True)
        with self._store.transaction(readonly=True) as tx:
            found = self._find(tx, key, where)
        if found is None or found.version != fetched.version:
            return self.lookup(key, where, local=True)
        return Artifact(**vars(found), files={n: bytes(d) for n, d in fetched.files.items()})

    def adopt(self, artifact: Artifact) -> None:
        """Store a version found elsewhere (an upstream hub, a peer) under its origin, once:
        a version already here is left as it is. A ``VerifiedArtifact`` is not hashed again
        (nor copied). Bad content is logged and not stored, never raised."""
        try:
            if isinstance(artifact, VerifiedArtifact):
                files = _checked_files(artifact.files, copy=False)
                hashes: dict[str, str] | None = artifact.hashes
                version = artifact.version
                if set(hashes) != set(files):
                    raise InvalidInput("a verified artifact needs the hash of each of its files")
            else:
                files, attrs = _checked_files(artifact.files), _checked_attrs(artifact.attrs)
                hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
                version = content_version(hashes, attrs)
            with self._store.transaction(readonly=True) as tx:
                if tx.one("artifact_version", key=artifact.key, version=version) is not None:
                    return
            self._put(
                artifact.key, files, artifact.metric, artifact.attrs, None,
                origin=artifact.origin, hashes=hashes,
            )  # fmt: skip
        except InvalidInput as exc:
            log.warning("a version of %r found elsewhere was not stored: %s", artifact.key, exc)

    def best(self, key: str, where: Mapping[str, Any] | None = None) -> ArtifactVersion | None:
        """The current version of ``key`` (as ``lookup`` with ``local``), without its files.
        Under the default policy, the best: lowest metric, newest on ties."""
        with self._store.transaction(readonly=True) as tx:
            return self._find(tx, key, where)

    current = best

    def _find(self, tx: Tx, key: str, where: Mapping[str, Any] | None) -> ArtifactVersion | None:
        _check_key(key)
        policy = self.policies.rule_for(key).policy
        if policy == "best":
            return self._best(tx, key, where)
        wanted = {name: attr_text(value) for name, value in (where or {}).items()}
        if not wanted:
            return self._current(tx, key, policy)
        row = tx.one("head_artifact_where", key=key, where=json.dumps(wanted), n_where=len(wanted))
        if row is not None:
            return _version(key, row)
        # No version made current matches: the best that does (or the unknown-field error).
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

    def combinations(self, key: str) -> list[Combination]:
        """Every combination of concurrent stores of ``key``, newest first."""
        _check_key(key)
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all("artifact_combinations", key=key)
        return [
            Combination(
                key=key,
                policy=r["policy"],
                base=r["base"],
                current=r["current_version"],
                incoming=r["incoming_version"],
                result=r["result_version"],
                detail=r["detail"],
                created=_time(r["created_ns"]),
            )
            for r in rows
        ]

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

    def info(self, key: str, version: str) -> ArtifactVersion | None:
        """One exact version of ``key`` without its file contents, or None."""
        _check_key(key)
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("artifact_version", key=key, version=version)
        return None if row is None else _version(key, row)

    def iter_file(
        self, key: str, version: str, name: str, part: int, offset: int = 0
    ) -> Iterator[bytes]:
        """File ``name`` of a version in parts of ``part`` bytes from ``offset``, read from the
        store as they are taken rather than loaded whole: serving a large file costs one pass
        over its bytes. Raises InvalidInput if the version has no such file.

        The parts are read in one read transaction: take them all on one thread (the one
        that started), and close the iterator when done with it early."""
        _check_key(key)
        if part <= 0 or offset < 0:
            raise InvalidInput(f"part {part} must be positive and offset {offset} not negative")
        with self._store.transaction(readonly=True) as tx:
            row = tx.one(
                "peers_file_part", key=key, version=version, name=name, offset=offset, count=part
            )
            if row is None:
                raise InvalidInput(f"version {version} of {key!r} has no file {name!r}")
            size = int(row["size"])
            if row["blob_rowid"] is None:  # PostgreSQL: each part is a query of its own
                while offset < size:
                    yield bytes(row["data"])
                    offset += part
                    if offset < size:
                        row = tx.one("peers_file_part", key=key, version=version, name=name,
                                     offset=offset, count=part)  # fmt: skip
                        assert row is not None  # versions are immutable
                return
            # SQLite: one incremental blob handle, read in order; it keeps its place in the
            # blob's chain of overflow pages, which a handle per part would walk from the start.
            with tx.conn.blobopen("blobs", "data", row["blob_rowid"], readonly=True) as blob:
                blob.seek(min(offset, size))
                while data := blob.read(part):
                    yield data

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


def _checked_files(files: Mapping[str, bytes], copy: bool = True) -> dict[str, bytes]:
    """The files, checked; each a bytes object (a copy of a mutable buffer), or as given
    without ``copy``: the caller vouches its buffers do not change until stored."""
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
        checked[name] = bytes(data) if copy else data
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
