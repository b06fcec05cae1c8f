"""Time-series samples of a batch, stored in columnar chunks.

A write is one transaction. The first write of a batch creates its row, which fixes the
batch's column schema. Each write reserves its timestamps on that row: the row lock (BEGIN
IMMEDIATE on SQLite) serialises writers in every process, so a timestamp is never given out
twice. The rows then go in chunks of at most CHUNK_ROWS, sorted by ts: ts as little-endian
int64, is_train as one byte per row, the user's columns as one Arrow IPC stream. A chunk row
also keeps its first/last ts and its row and train counts, so "samples since t" is a sum over
whole chunks plus a binary search in the one or two chunks that straddle t.
"""

from __future__ import annotations

import json
import operator
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from learnhub.errors import InvalidInput
from learnhub.store import Store
from learnhub.store.base import Tx, queries

if TYPE_CHECKING:
    import pandas as pd

    Rows = pd.DataFrame | pa.Table | Mapping[str, Any] | Sequence[Mapping[str, Any]]

# 64k rows: 512 KB of ts per chunk keeps a straddling chunk cheap to search, and a 10M-row
# batch is ~150 chunk rows to sum.
CHUNK_ROWS = 65_536
KINDS = ("training", "inference")
SPLITS = ("train", "validation")
TS_MIN = -(2**63)
TS_MAX = 2**63 - 1
RESERVED = ("ts", "is_train")


@dataclass(frozen=True)
class Added:
    """What one ``add`` wrote: ``rows`` samples with timestamps in [first_ts, last_ts]."""

    batch: str
    rows: int
    first_ts: int
    last_ts: int


@dataclass(frozen=True)
class BatchInfo:
    name: str
    kind: str
    rows: int
    train_rows: int
    first_ts: int | None
    last_ts: int | None
    columns: dict[str, str]  # column name -> Arrow type, in the batch's order


class Samples:
    """``hub.samples``: add, count and read the samples of named batches."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        batch: str,
        rows: Rows,
        *,
        validation_ratio: float = 0.2,
        seed: int | None = None,
        kind: str = "training",
    ) -> Added:
        """Append ``rows`` (a pandas DataFrame, a pyarrow Table, a dict of columns or a list
        of dicts) to ``batch``, all or nothing.

        Each row gets a unique int64 ns timestamp: the arrival time, +1 ns per row, above
        every timestamp the batch gave out before. A ``ts`` column (integers in ns, or Arrow/
        pandas timestamps) gives them instead; a ts already in the call or in the batch is
        rejected. Each row is a training row when a uniform draw in [0, 1) is at least
        ``validation_ratio`` (``seed`` makes the draws reproducible).

        The first write fixes the batch's columns and types; later writes must have the same
        columns (in any order) with the same types, except for safe conversions: null to any
        type, integer to integer or float, float32 to float64, string to large_string and
        back, a timestamp to another unit (values that do not fit are rejected).
        """
        _check_batch(batch, kind)
        if not 0.0 <= validation_ratio <= 1.0:
            raise InvalidInput(f"validation_ratio must be in [0, 1], not {validation_ratio!r}")
        table = _to_table(rows)
        user_ts = None
        if "ts" in table.column_names:
            user_ts = _user_ts(table.column("ts"))
            table = table.drop_columns(["ts"])
        if "is_train" in table.column_names:
            raise InvalidInput(
                "is_train is set by learnhub from validation_ratio; rename that column"
            )
        n = table.num_rows
        if n == 0:
            raise InvalidInput(f"no rows to add to batch {batch!r}")
        if table.num_columns == 0:
            raise InvalidInput(f"the rows for batch {batch!r} have no columns besides ts")
        if user_ts is not None and not bool(np.all(user_ts[1:] > user_ts[:-1])):
            order = np.argsort(user_ts, kind="stable")
            user_ts = user_ts[order]
            same = user_ts[1:] == user_ts[:-1]
            if same.any():
                raise InvalidInput(
                    f"duplicate ts in the rows for batch {batch!r}: {_few(user_ts[1:][same])}; "
                    "each sample needs its own timestamp (or leave ts out to have them assigned)"
                )
            table = table.take(order)
        is_train = np.random.default_rng(seed).random(n) >= validation_ratio
        schema = {field.name: str(field.type) for field in table.schema}
        # Encode outside the transaction, so concurrent writers wait less for each other;
        # redone inside only when the batch's schema asks for a cast.
        blobs = _encode(table)

        with self.store.transaction(synced=True) as tx:
            tx.execute(
                "create_sample_batch",
                kind=kind,
                name=batch,
                schema=json.dumps(schema),
                created_ns=time.time_ns(),
            )
            if user_ts is None:
                reserved = tx.one(
                    "reserve_sample_ts", kind=kind, name=batch, n=n, now_ns=time.time_ns()
                )
                assert reserved is not None  # the row was created above
                last = reserved["last_ts"]
                ts = np.arange(last - n + 1, last + 1, dtype=np.int64)
            else:
                # First, as it takes the batch's row lock: concurrent writers then cannot
                # slip in the same timestamps between our check and our insert.
                tx.execute("raise_sample_ts", kind=kind, name=batch, max_ts=int(user_ts[-1]))
                existing = self._blobs(
                    tx,
                    "chunk_timestamps",
                    kind=kind,
                    batch=batch,
                    since=int(user_ts[0]),
                    until=int(user_ts[-1]),
                )
                _reject_existing(existing, batch, user_ts)
                ts = user_ts
            row = tx.one("sample_batch", kind=kind, name=batch)
            assert row is not None
            fixed = json.loads(row["schema"])
            if list(fixed.items()) != list(schema.items()):  # another order or type
                blobs = _encode(_conform(table, fixed, batch))
            for i, data in enumerate(blobs):
                part = slice(i * CHUNK_ROWS, (i + 1) * CHUNK_ROWS)
                part_ts, part_train = ts[part], is_train[part]
                tx.execute(
                    "insert_sample_chunk",
                    kind=kind,
                    batch=batch,
                    first_ts=int(part_ts[0]),
                    last_ts=int(part_ts[-1]),
                    rows=len(part_ts),
                    train_rows=int(np.count_nonzero(part_train)),
                    ts=part_ts.astype("<i8", copy=False).tobytes(),
                    is_train=part_train.tobytes(),
                    data=memoryview(data),
                )
        return Added(batch, n, int(ts[0]), int(ts[-1]))

    def count(
        self,
        batch: str,
        since: int | None = None,
        split: str | None = None,
        kind: str = "training",
    ) -> int:
        """The number of samples of ``batch`` with ts >= ``since`` (all if None), of one
        ``split`` ("train" or "validation") or both. 0 for a batch that does not exist."""
        _check_batch(batch, kind)
        _check_split(split)
        low = TS_MIN if since is None else _ts_arg(since, "since")
        with self.store.transaction(readonly=True) as tx:
            whole = tx.one("count_whole_chunks", kind=kind, batch=batch, since=low)
            assert whole is not None
            rows, train = int(whole["rows"]), int(whole["train_rows"])
            if since is not None:
                straddling = self._blobs(tx, "straddling_chunks", kind=kind, batch=batch, since=low)
                for chunk in straddling:
                    ts = np.frombuffer(chunk["ts"], "<i8")
                    first = int(ts.searchsorted(low, "left"))
                    rows += len(ts) - first
                    if split is not None:
                        flags = np.frombuffer(chunk["is_train"], np.bool_)
                        train += int(np.count_nonzero(flags[first:]))
        if split is None:
            return rows
        return train if split == "train" else rows - train

    def read(
        self,
        batch: str,
        split: str | None = None,
        since: int | None = None,
        until: int | None = None,
        kind: str = "training",
    ) -> pa.Table:
        """The samples of ``batch`` with ``since`` <= ts <= ``until`` (both optional), of one
        ``split`` or both, in ts order: columns ts (int64 ns), is_train (bool), then the
        batch's own. A batch that does not exist reads as an empty table of ts and is_train.
        """
        _check_batch(batch, kind)
        _check_split(split)
        low = TS_MIN if since is None else _ts_arg(since, "since")
        high = TS_MAX if until is None else _ts_arg(until, "until")
        with self.store.transaction(readonly=True) as tx:
            info = tx.one("sample_batch", kind=kind, name=batch)
            if info is None:
                return pa.table(
                    {"ts": pa.array([], pa.int64()), "is_train": pa.array([], pa.bool_())}
                )
            chunks = self._blobs(tx, "sample_chunks", kind=kind, batch=batch, since=low, until=high)
            if not chunks:  # none in range: the newest chunk gives the columns
                newest = info["last_ts"]
                chunks = self._blobs(
                    tx, "sample_chunks", kind=kind, batch=batch, since=newest, until=newest
                )
                low, high = TS_MAX, TS_MIN  # an empty range: keep no row
        parts = []
        newest_so_far = TS_MIN
        overlap = False  # chunks of user-given ts may interleave: then sort at the end
        for chunk in chunks:
            overlap = overlap or chunk["first_ts"] <= newest_so_far
            newest_so_far = max(newest_so_far, chunk["last_ts"])
            parts.append(_decode(chunk, low, high, split))
        table = pa.concat_tables(parts)
        return table.sort_by("ts") if overlap else table

    def batches(self, kind: str | None = "training") -> list[BatchInfo]:
        """Every batch of ``kind`` (all kinds if None), by kind and name."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)} or None, not {kind!r}")
        with self.store.transaction(readonly=True) as tx:
            rows = tx.all("sample_batches", kind=kind)
        return [
            BatchInfo(
                name=r["name"],
                kind=r["kind"],
                rows=int(r["rows"]),
                train_rows=int(r["train_rows"]),
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                columns=json.loads(r["schema"]),
            )
            for r in rows
        ]

    def _blobs(self, tx: Tx, query: str, **params: Any) -> list[dict[str, Any]]:
        """``tx.all`` for the queries that return chunks' arrays. PostgreSQL sends them in
        binary format: as text, bytea is hex, twice the bytes and ~5x slower to read."""
        if self.store.dialect == "postgres":
            sql = queries("postgres")[query]
            return tx.conn.execute(sql, params, binary=True).fetchall()
        return tx.all(query, **params)

    def last_ts(self, batch: str, kind: str = "training") -> int | None:
        """The newest sample's ts in ``batch`` (None if it has none)."""
        _check_batch(batch, kind)
        with self.store.transaction(readonly=True) as tx:
            row = tx.one("sample_batch", kind=kind, name=batch)
        # The batch's last_ts is the highest ts it gave out or was given, and every write
        # stores all of its timestamps in the same transaction: so it is the newest sample.
        return None if row is None else int(row["last_ts"])


# --- input ---------------------------------------------------------------------------------


def _check_batch(batch: str, kind: str) -> None:
    if not isinstance(batch, str) or not batch:
        raise InvalidInput(f"a batch name must be a non-empty string, not {batch!r}")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split must be 'train', 'validation' or None, not {split!r}")


def _ts_arg(value: Any, name: str) -> int:
    try:
        ts = operator.index(value)
    except TypeError:
        raise InvalidInput(f"{name} must be an int of ns since the epoch, not {value!r}") from None
    if not TS_MIN <= ts <= TS_MAX:
        raise InvalidInput(f"{name}={ts} is outside int64")
    return ts


def _to_table(rows: Any) -> pa.Table:
    """The rows as an Arrow table without schema metadata."""
    try:
        if isinstance(rows, pa.RecordBatch):
            table = pa.Table.from_batches([rows])
        elif isinstance(rows, pa.Table):
            table = rows
        elif _is_dataframe(rows):
            table = _from_pandas(rows)
        elif isinstance(rows, Mapping):
            pandas = sys.modules.get("pandas")
            table = pa.table(
                {
                    _name(k): _from_series(v) if pandas and isinstance(v, pandas.Series) else v
                    for k, v in rows.items()
                }
            )
        elif isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
            if not all(isinstance(r, Mapping) for r in rows):
                raise InvalidInput("a list of rows must hold only dicts (column -> value)")
            # Every key of every row (pa.Table.from_pylist would keep only the first row's).
            names = dict.fromkeys(_name(k) for r in rows for k in r)
            table = pa.table({k: [r.get(k) for r in rows] for k in names})
        else:
            raise InvalidInput(
                "rows must be a pandas DataFrame, a pyarrow Table, a dict of columns or a "
                f"list of dicts, not {type(rows).__name__}"
            )
    except (pa.ArrowException, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"cannot read the rows as columns: {_first_line(exc)}") from exc
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"column names must be unique; repeated: {', '.join(dupes)}")
    return table.replace_schema_metadata(None)


def _is_dataframe(rows: Any) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame implies pandas is imported already
    return pandas is not None and isinstance(rows, pandas.DataFrame)


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    """Column by column: pa.Table.from_pandas costs ~1 ms a call (it starts threads), which
    small writes feel, and it reads NaN as missing, where samples keep NaN as given."""
    if not df.columns.is_unique:
        dupes = sorted({str(n) for n in df.columns[df.columns.duplicated()]})
        raise InvalidInput(f"column names must be unique; repeated: {', '.join(dupes)}")
    arrays = [_from_series(column) for _, column in df.items()]
    return pa.Table.from_arrays(arrays, names=[str(name) for name in df.columns])


def _from_series(column: pd.Series) -> pa.Array:
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return pa.array(column.to_numpy(), from_pandas=False)  # numbers: no copy, NaN kept
    return pa.array(column, from_pandas=True)  # strings, datetimes, nullable types ...


def _name(key: Any) -> str:
    if not isinstance(key, str):
        raise InvalidInput(f"column names must be strings, not {key!r}")
    return key


def _user_ts(column: pa.ChunkedArray) -> np.ndarray:
    """A user's ts column as sorted-or-not int64 ns."""
    kind = column.type
    if column.null_count:
        raise InvalidInput(f"ts has {column.null_count} missing value(s); every row needs one")
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("ns", kind.tz)).cast(pa.int64())
    elif pa.types.is_integer(kind):
        try:
            column = column.cast(pa.int64())
        except pa.ArrowInvalid:
            raise InvalidInput("ts values must fit in int64 (ns since the epoch)") from None
    else:
        raise InvalidInput(f"ts must hold int64 ns since the epoch or timestamps, not {kind}")
    return column.to_numpy()


# --- schema --------------------------------------------------------------------------------


def _conform(table: pa.Table, fixed: dict[str, str], batch: str) -> pa.Table:
    """``table`` with the batch's columns in its order and types, or a clear InvalidInput."""
    have = {field.name: str(field.type) for field in table.schema}
    missing = {name: kind for name, kind in fixed.items() if name not in have}
    extra = {name: kind for name, kind in have.items() if name not in fixed}
    if missing or extra:
        problems = [f"missing {_columns(missing)}"] if missing else []
        problems += [f"not in the batch: {_columns(extra)}"] if extra else []
        raise InvalidInput(
            f"these rows do not have the columns of batch {batch!r} ({'; '.join(problems)}); "
            f"its columns are fixed by its first write: {_columns(fixed)}"
        )
    columns = []
    for name, want in fixed.items():
        column = table.column(name)
        if str(column.type) != want:
            target = _widening(column.type, want)
            if target is None:
                raise InvalidInput(
                    f"column {name!r} is {column.type} in these rows but {want} in batch "
                    f"{batch!r} (fixed by its first write); convert it to {want}"
                )
            try:
                column = column.cast(target)
            except pa.ArrowInvalid as exc:
                raise InvalidInput(
                    f"column {name!r} ({column.type}) does not fit batch {batch!r}'s {want}: "
                    f"{_first_line(exc)}"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, names=list(fixed))


def _widening(got: pa.DataType, want: str) -> pa.DataType | None:
    """The type to cast ``got`` to for a batch column of type ``want``, if allowed."""
    try:
        target = pa.type_for_alias(want)
    except ValueError:  # a parametrised or nested type: only an exact match will do
        return None
    t = pa.types
    if (
        t.is_null(got)
        or (t.is_integer(got) and (t.is_integer(target) or t.is_floating(target)))
        or (t.is_floating(got) and t.is_floating(target) and got.bit_width <= target.bit_width)
        or (t.is_timestamp(got) and t.is_timestamp(target) and got.tz == target.tz)
        or ({str(got), want} <= {"string", "large_string"})
        or ({str(got), want} <= {"binary", "large_binary"})
    ):
        return target
    return None


def _columns(schema: dict[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in schema.items())


# --- chunks --------------------------------------------------------------------------------


def _encode(table: pa.Table) -> list[pa.Buffer]:
    """The user's columns of each chunk as an Arrow IPC stream (uncompressed: measured
    features rarely compress enough to pay for the time)."""
    blobs = []
    for start in range(0, table.num_rows, CHUNK_ROWS):
        part = table.slice(start, CHUNK_ROWS)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, part.schema) as writer:
            writer.write_table(part)
        blobs.append(sink.getvalue())
    return blobs


def _decode(chunk: dict[str, Any], low: int, high: int, split: str | None) -> pa.Table:
    """The rows of a chunk with ``low`` <= ts <= ``high``, of ``split`` (or both)."""
    ts = np.frombuffer(chunk["ts"], "<i8")
    is_train = np.frombuffer(chunk["is_train"], np.bool_)
    data = pa.ipc.open_stream(chunk["data"]).read_all()
    first, end = int(ts.searchsorted(low, "left")), int(ts.searchsorted(high, "right"))
    if (first, end) != (0, len(ts)):
        ts, is_train, data = ts[first:end], is_train[first:end], data.slice(first, end - first)
    if split is not None:
        keep = is_train if split == "train" else ~is_train
        ts, is_train, data = ts[keep], is_train[keep], data.filter(pa.array(keep))
    return pa.Table.from_arrays(
        [pa.array(ts, pa.int64()), pa.array(is_train, pa.bool_()), *data.columns],
        names=["ts", "is_train", *data.column_names],
    )


def _reject_existing(chunks: list[dict[str, Any]], batch: str, ts: np.ndarray) -> None:
    """InvalidInput if a sorted ``ts`` has a timestamp of the batch's ``chunks``."""
    clashes = []
    for chunk in chunks:
        old = np.frombuffer(chunk["ts"], "<i8")
        at = ts.searchsorted(old).clip(max=len(ts) - 1)
        clashes.append(old[ts[at] == old])
    found = np.concatenate(clashes) if clashes else np.empty(0, np.int64)
    if found.size:
        raise InvalidInput(
            f"batch {batch!r} already has samples at ts {_few(np.unique(found))}; nothing was "
            "written: give timestamps the batch does not have, or leave ts out to have them "
            "assigned"
        )


def _few(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
