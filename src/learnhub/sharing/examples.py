"""Learned examples: ``hub.examples`` (add, get, ls, rm, nearest) and their file format.

An example is what an assistant learned from one interaction: the input (query and
context), the output (the answer), who learned it and when, and tags. ``add`` makes it
durable in the store, embeds its input (ref ``example/<id>``) and, in the same transaction
as the example, enqueues the job that backs it up; that job is retried until the backup
location takes it, so nothing learned is lost while the location is down.

On a location each example is one file, ``<id>.example.json`` (UTF-8 JSON)::

    {"format": "learnhub.example/1", "id": "...", "input": "...", "output": "...",
     "author": "alice", "tags": ["deploy"], "created_ns": ..., "updated_ns": ...,
     "created": "2026-11-23T08:00:00+00:00",
     "embedding": {"model": "minilm", "dim": 384, "vector": "<base64 float32 LE>"}}

``embedding`` is optional: a loader with the same model uses it as is, others embed the
input again. ``created``/``updated`` (ISO-8601) stand in for the ``_ns`` fields in files
written by hand.
"""

from __future__ import annotations

import base64
import getpass
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from learnhub.embed import default_name, get_embedder
from learnhub.errors import InvalidInput
from learnhub.store import Store

if TYPE_CHECKING:
    from learnhub.embed import Embeddings
    from learnhub.jobs.queue import Jobs

FORMAT = "learnhub.example/1"
SUFFIX = ".example.json"
REF_PREFIX = "example/"
BACKUP_TASK = "learnhub.sharing.backup"
MAX_TEXT = 1_000_000  # characters of input or output
MAX_TAGS = 64
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Example:
    """One learned example. ``score`` is set by ``nearest`` (cosine similarity)."""

    id: str
    input: str
    output: str
    author: str
    created: datetime
    tags: tuple[str, ...] = ()
    updated: datetime | None = None
    local: bool = True
    source: str | None = field(default=None, compare=False)
    score: float | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        return REF_PREFIX + self.id

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "input": self.input,
            "output": self.output,
            "author": self.author,
            "tags": list(self.tags),
            "created": self.created.isoformat(),
            "local": self.local,
            "source": self.source,
        }
        if self.score is not None:
            d["score"] = self.score
        return d


def check_id(example_id: Any) -> str:
    if not isinstance(example_id, str) or not _ID.match(example_id):
        raise InvalidInput(
            f"example id {example_id!r} must be 1-128 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit): it names the example's file"
        )
    return example_id


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(f"{name} is empty; an example needs both an input and an output")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{name} is {len(value):,} characters; the limit is {MAX_TEXT:,}")
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character")
    return value


def _check_tags(tags: Any) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise InvalidInput(f"tags must be a list of strings: write [{tags!r}]")
    if not isinstance(tags, Iterable):
        raise InvalidInput(f"tags must be a list of strings, got {type(tags).__name__}")
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or any(ord(c) < 32 for c in tag):
            raise InvalidInput(f"tag {tag!r} must be a non-empty string without control chars")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"{len(out)} tags; the limit is {MAX_TAGS}")
    return tuple(out)


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def from_row(row: Mapping[str, Any], score: float | None = None) -> Example:
    return Example(
        id=row["id"],
        input=row["input"],
        output=row["output"],
        author=row["author"],
        created=_time(row["created_ns"]),
        tags=tuple(json.loads(row["tags"])),
        updated=_time(row["updated_ns"]),
        local=bool(row["local"]),
        source=None if row["local"] else row["src_location"],
        score=score,
    )


# --- the file format ---------------------------------------------------------------------------


def to_file(row: Mapping[str, Any], model: str | None, vector: np.ndarray | None) -> bytes:
    """The bytes of an example's file (from its store row and, if any, its embedding)."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "id": row["id"],
        "input": row["input"],
        "output": row["output"],
        "author": row["author"],
        "tags": json.loads(row["tags"]),
        "created_ns": int(row["created_ns"]),
        "updated_ns": int(row["updated_ns"]),
        "created": _time(row["created_ns"]).isoformat(),
    }
    if model is not None and vector is not None:
        doc["embedding"] = {
            "model": model,
            "dim": int(vector.shape[0]),
            "vector": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii"),
        }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")


@dataclass
class Loaded:
    """An example read from a file: its row for the store, and its embedding if it has one."""

    row: dict[str, Any]
    model: str | None = None
    vector: np.ndarray | None = None


def _ns(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(f"{key}_ns")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = doc.get(key)
    if isinstance(text, str):
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{key!r} is not an ISO-8601 time: {text!r}") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1e9)
    raise ValueError(f"missing {key}_ns (or {key} as ISO-8601)")


def parse_file(data: bytes, name: str) -> Loaded:
    """An example from a file's bytes; ValueError saying what is wrong with a bad one."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"unknown format {fmt!r} (this learnhub reads {FORMAT})")
    try:
        example_id = check_id(doc.get("id"))
        text_in = _check_text("input", doc.get("input"))
        text_out = _check_text("output", doc.get("output"))
        tags = _check_tags(doc.get("tags", []))
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    if name.endswith(SUFFIX) and name.rsplit("/", 1)[-1] != example_id + SUFFIX:
        raise ValueError(f"holds example {example_id!r}, but is named for another id")
    author = doc.get("author", "")
    if not isinstance(author, str):
        raise ValueError(f"author must be a string, got {type(author).__name__}")
    created = _ns(doc, "created")
    updated = _ns(doc, "updated") if ("updated_ns" in doc or "updated" in doc) else created
    loaded = Loaded(
        {
            "id": example_id,
            "input": text_in,
            "output": text_out,
            "author": author,
            "tags": json.dumps(list(tags)),
            "created_ns": created,
            "updated_ns": max(updated, created),
        }
    )
    emb = doc.get("embedding")
    if isinstance(emb, dict) and isinstance(emb.get("model"), str):
        try:
            vec = np.frombuffer(base64.b64decode(emb["vector"], validate=True), dtype="<f4")
        except (TypeError, ValueError, KeyError):
            vec = None  # a bad embedding is not fatal: the input is embedded again
        if vec is not None and vec.shape == (emb.get("dim"),) and np.isfinite(vec).all():
            norm = float(np.linalg.norm(vec))
            if norm > 0:
                loaded.model, loaded.vector = emb["model"], (vec / norm).astype(np.float32)
    return loaded


# --- hub.examples --------------------------------------------------------------------------------


class Examples:
    """``hub.examples``: learned examples in the store, searched by similarity."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        embed: Embeddings,
        model: str | None = None,
        backup: bool = False,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._embed = embed
        self._model = model
        self._backup = backup  # a backup location is configured: add/rm enqueue a backup job

    @property
    def model(self) -> str:
        """The embedder examples are embedded with (configured, else the default)."""
        return get_embedder(self._model or default_name()).name

    def add(
        self,
        input: str,  # noqa: A002 - the issue's name for it
        output: str,
        author: str | None = None,
        tags: Iterable[str] | None = None,
        id: str | None = None,  # noqa: A002
    ) -> Example:
        """Learn an example: stored (durable) when this returns, embedded, and its backup
        scheduled. The same ``id`` again replaces the example (a newer version)."""
        text_in = _check_text("input", input)
        text_out = _check_text("output", output)
        checked_tags = _check_tags(tags)
        if author is None:
            author = _user()
        if not isinstance(author, str) or any(ord(c) < 32 for c in author):
            raise InvalidInput(f"author must be a string without control chars, got {author!r}")
        example_id = check_id(id) if id is not None else _new_id()
        model = self.model
        now = time.time_ns()
        with self._store.transaction(readonly=True) as tx:
            old = tx.one("example_get", id=example_id)
        created = int(old["created_ns"]) if old else now
        updated = max(now, int(old["updated_ns"]) + 1) if old else now
        # Embed first: a model that fails leaves nothing written.
        self._embed.put(REF_PREFIX + example_id, text_in, model=model)
        row = {
            "id": example_id,
            "input": text_in,
            "output": text_out,
            "author": author,
            "tags": json.dumps(list(checked_tags)),
            "created_ns": created,
            "updated_ns": updated,
            "local": 1,
            "src_location": None,
            "src_path": None,
        }
        with self._store.transaction() as tx:
            tx.execute("example_put", **row)
            if self._backup:
                self._enqueue_backup(tx, example_id)
        self._jobs._wake()
        return from_row(row)

    def _enqueue_backup(self, tx: Any, example_id: str) -> None:
        """The backup job, in the caller's transaction: the example and the promise to back
        it up commit together."""
        spec = self._jobs._spec(
            BACKUP_TASK, {"id": example_id}, dedupe_key=f"sharing-backup:{example_id}"
        )
        self._jobs._insert(tx, spec, f"{BACKUP_TASK}-{secrets.token_hex(4)}", time.time_ns())

    def get(self, example_id: str) -> Example | None:
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("example_get", id=check_id(example_id))
        return None if row is None else from_row(row)

    def ls(
        self,
        author: str | None = None,
        tag: str | None = None,
        local: bool | None = None,
        limit: int = 100,
    ) -> list[Example]:
        """Examples, newest first; ``local``: True for those learned here, False for loaded
        ones, None for both."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        with self._store.transaction(readonly=True) as tx:
            rows = tx.all(
                "examples_list",
                author=author,
                tag=tag,
                local=None if local is None else int(bool(local)),
                limit=limit,
            )
        return [from_row(r) for r in rows]

    def count(self) -> dict[str, int]:
        """How many examples: total, learned here (local), and of those backed up."""
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("example_counts")
        assert row is not None
        return {k: int(row[k]) for k in ("total", "local", "backed_up")}

    def rm(self, example_id: str) -> bool:
        """Forget an example; False if there was none. One learned here is also removed from
        the backup (by a job). One loaded from elsewhere stays away: polls skip that version
        and older ones wherever they are found (a file touched, copied or rewritten with the
        same content); a newer version its author writes is new learning and loads."""
        check_id(example_id)
        with self._store.transaction() as tx:
            old = tx.one("example_get", id=example_id)
            row = tx.one("example_delete", id=example_id)
            if row is not None and row["local"] and self._backup:
                self._enqueue_backup(tx, example_id)
            elif row is not None and old is not None:
                removed = [removal_row(example_id, int(old["updated_ns"]))]
                tx.execute("shared_files_put_many", rows=json.dumps(removed))
        if row is None:
            return False
        self._jobs._wake()
        self._embed.delete(REF_PREFIX + example_id, self.model)
        return True

    def nearest(self, query: str, k: int = 3) -> list[Example]:
        """The ``k`` examples whose input is most similar to ``query``, best first, each
        with its cosine ``score``."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be a non-empty text")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        found = self._embed.search(query, k=k, model=self.model, filter=REF_PREFIX)
        scores = {ref[len(REF_PREFIX) :]: score for ref, score in found}
        if not scores:
            return []
        with self._store.transaction(readonly=True) as tx:
            rows = {r["id"]: r for r in tx.all("examples_by_ids", ids=json.dumps(list(scores)))}
        # An embedding whose example is gone (removed meanwhile) is left out.
        return [from_row(rows[i], s) for i, s in scores.items() if i in rows]


# A loaded example removed here: a row of shared_files under this pseudo-location (never a
# configured location: those are URLs or paths), its path the example's id, its updated_ns
# the version removed. Polls skip copies of that version or older.
REMOVED = "(removed here)"


def removal_row(example_id: str, updated_ns: int) -> dict[str, Any]:
    return {
        "location": REMOVED,
        "path": example_id,
        "stamp": "",
        "kind": "removed",
        "item_id": None,  # not a copy of anything: never used to replace a vanished file
        "updated_ns": updated_ns,
        "error": None,
    }


def _new_id() -> str:
    # time first: ids (and file names) sort by creation; random bits: unique across users
    return f"{time.time_ns():x}-{secrets.token_hex(6)}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


__all__ = ["Example", "Examples", "Loaded", "parse_file", "to_file"]
