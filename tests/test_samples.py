"""hub.samples: time-series samples in chunks, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import learnhub
from learnhub.continuous import samples as samples_module
from learnhub.continuous.samples import Added, BatchInfo
from learnhub.errors import InvalidInput

ODD_NAMES = [
    " spaced  name ",
    "ünïcödé/日本語",
    "a/b\\c/../d",
    'it\'s "quoted"',
    "%(name)s ; DROP TABLE sample_chunks; --",
    "x" * 300,
]


def user_columns(table: pa.Table) -> dict[str, list]:
    return table.drop_columns(["ts", "is_train"]).to_pydict()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 10 rows, so a few hundred rows make many chunks to straddle."""
    monkeypatch.setattr(samples_module, "CHUNK_ROWS", 10)
    return 10


# --- input forms and timestamps -------------------------------------------------------------


def test_every_input_form_reads_back_the_same(hub: learnhub.Hub) -> None:
    want = {"x": [1.5, 2.5, 3.5], "label": [0, 1, 0], "name": ["a", "b", "c"]}
    forms = {
        "dataframe": pd.DataFrame(want),
        "table": pa.table(want),
        "dict": want,
        "list": [
            dict(zip(want, values, strict=True)) for values in zip(*want.values(), strict=True)
        ],
        "record batch": pa.RecordBatch.from_pydict(want),
    }
    for form, rows in forms.items():
        added = hub.samples.add(form, rows)
        assert added.rows == 3 and added.batch == form
        table = hub.samples.read(form)
        assert table.column_names == ["ts", "is_train", "x", "label", "name"], form
        assert table.schema.field("ts").type == pa.int64()
        assert table.schema.field("is_train").type == pa.bool_()
        assert user_columns(table) == want, form
        assert table["ts"].to_pylist() == list(range(added.first_ts, added.last_ts + 1))
        frame = table.to_pandas()
        assert list(frame["x"]) == want["x"]


def test_list_of_dicts_takes_every_key(hub: learnhub.Hub) -> None:
    hub.samples.add("b", [{"x": 1.0}, {"x": 2.0, "y": "late"}, {"y": "only"}])
    assert user_columns(hub.samples.read("b")) == {
        "x": [1.0, 2.0, None],
        "y": [None, "late", "only"],
    }


def test_timestamps_are_arrival_time_plus_one_ns_and_never_reused(hub: learnhub.Hub) -> None:
    before = time.time_ns()
    first = hub.samples.add("b", {"x": np.arange(1000.0)})
    after = time.time_ns()
    assert before <= first.first_ts <= after
    assert first.last_ts == first.first_ts + 999
    seen = set(hub.samples.read("b")["ts"].to_pylist())
    for _ in range(20):  # calls faster than the clock still get fresh timestamps
        added = hub.samples.add("b", {"x": [1.0, 2.0]})
        assert added.first_ts > first.last_ts
        new = set(range(added.first_ts, added.last_ts + 1))
        assert not new & seen
        seen |= new
    ts = hub.samples.read("b")["ts"].to_numpy()
    assert len(ts) == 1040 and len(np.unique(ts)) == 1040
    assert np.all(np.diff(ts) > 0)
    assert hub.samples.last_ts("b") == int(ts[-1])


WRITER = textwrap.dedent(
    """
    import sys
    import learnhub

    url, writer, calls, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with learnhub.open(url) as hub:
        print("ready", flush=True)
        sys.stdin.readline()  # all writers start together
        for call in range(calls):
            first = call * rows
            hub.samples.add(
                "shared", {"writer": [writer] * rows, "i": list(range(first, first + rows))}
            )
    print("done", flush=True)
    """
)


def test_four_processes_writing_one_batch(store_url: str) -> None:
    writers, calls, rows = 4, 30, 100
    with learnhub.open(store_url):  # migrate once, before the writers race
        pass
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, str(w), str(calls), str(rows)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, errors = proc.communicate(timeout=120)
            assert proc.returncode == 0, errors
            assert out.strip() == "done"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with learnhub.open(store_url) as hub:
        table = hub.samples.read("shared")
        assert hub.samples.count("shared") == writers * calls * rows
    ts = table["ts"].to_numpy()
    assert len(np.unique(ts)) == len(ts) == writers * calls * rows  # no duplicate
    pairs = set(zip(table["writer"].to_pylist(), table["i"].to_pylist(), strict=True))
    assert pairs == {(w, i) for w in range(writers) for i in range(calls * rows)}  # none lost


# --- user timestamps ------------------------------------------------------------------------


def test_user_timestamps_are_sorted_and_kept(hub: learnhub.Hub) -> None:
    added = hub.samples.add("b", {"ts": [30, 10, 20], "x": [3.0, 1.0, 2.0]})
    assert (added.first_ts, added.last_ts) == (10, 30)
    table = hub.samples.read("b")
    assert table["ts"].to_pylist() == [10, 20, 30]
    assert table["x"].to_pylist() == [1.0, 2.0, 3.0]
    # Automatic timestamps of later writes start above every user timestamp.
    future = time.time_ns() + 3600 * 10**9
    hub.samples.add("b", {"ts": [future], "x": [4.0]})
    auto = hub.samples.add("b", {"x": [5.0]})
    assert auto.first_ts == future + 1
    assert hub.samples.last_ts("b") == future + 1


def test_user_timestamps_fill_gaps_and_reads_stay_in_ts_order(hub: learnhub.Hub) -> None:
    hub.samples.add("b", {"ts": [1, 3, 5], "x": [1, 3, 5]})
    hub.samples.add("b", {"ts": [2, 4, 6], "x": [2, 4, 6]})  # interleaves with the first chunk
    table = hub.samples.read("b")
    assert table["ts"].to_pylist() == [1, 2, 3, 4, 5, 6]
    assert table["x"].to_pylist() == [1, 2, 3, 4, 5, 6]
    assert hub.samples.count("b", since=4) == 3
    assert hub.samples.read("b", since=2, until=4)["x"].to_pylist() == [2, 3, 4]


def test_user_timestamp_types(hub: learnhub.Hub) -> None:
    stamps = pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"])
    added = hub.samples.add("b", pd.DataFrame({"ts": stamps, "x": [1.0, 2.0]}))
    assert added.first_ts == 1704067200 * 10**9
    assert added.last_ts == 1704067201 * 10**9
    hub.samples.add("b", {"ts": np.array([5, 6], np.int32), "x": [1.0, 2.0]})
    assert hub.samples.count("b") == 4
    for bad in ([1.5, 2.5], ["a", "b"], [1, None]):
        with pytest.raises(InvalidInput, match="ts"):
            hub.samples.add("b", {"ts": bad, "x": [1.0, 2.0]})
    assert hub.samples.count("b") == 4


def test_duplicate_user_timestamps_are_rejected_and_nothing_written(hub: learnhub.Hub) -> None:
    with pytest.raises(InvalidInput, match=r"duplicate ts .*: 7"):
        hub.samples.add("b", {"ts": [5, 7, 6, 7], "x": [1.0, 2.0, 3.0, 4.0]})
    assert hub.samples.batches() == []  # not even the batch was created
    assert hub.samples.last_ts("b") is None

    hub.samples.add("b", {"ts": [10, 20, 30], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInput, match=r"already has samples at ts 20, 30"):
        hub.samples.add("b", {"ts": [15, 20, 25, 30], "x": [0.0, 0.0, 0.0, 0.0]})
    # Against automatic timestamps too.
    auto = hub.samples.add("b", {"x": [4.0, 5.0]})
    with pytest.raises(InvalidInput, match=str(auto.last_ts)):
        hub.samples.add("b", {"ts": [auto.last_ts, 1], "x": [0.0, 0.0]})
    table = hub.samples.read("b")
    assert table["ts"].to_pylist() == [10, 20, 30, auto.first_ts, auto.last_ts]
    assert hub.samples.last_ts("b") == auto.last_ts


# --- train / validation split ---------------------------------------------------------------


def test_seed_makes_the_split_reproducible(hub: learnhub.Hub) -> None:
    rows = {"x": np.arange(1000.0)}
    hub.samples.add("a", rows, seed=42)
    hub.samples.add("b", rows, seed=42)
    hub.samples.add("c", rows, seed=43)
    flags = {b: hub.samples.read(b)["is_train"].to_pylist() for b in "abc"}
    assert flags["a"] == flags["b"]
    assert flags["a"] != flags["c"]


def test_validation_ratio_is_respected(hub: learnhub.Hub) -> None:
    n = 100_000
    for batch, ratio in (("default", None), ("third", 1 / 3)):
        kwargs = {} if ratio is None else {"validation_ratio": ratio}
        hub.samples.add(batch, {"x": np.zeros(n)}, **kwargs)
        share = hub.samples.count(batch, split="validation") / n
        # The standard deviation is under 0.0015; 0.01 is over six of them.
        assert abs(share - (ratio or 0.2)) < 0.01, (batch, share)
        assert (
            hub.samples.count(batch, split="train") + hub.samples.count(batch, split="validation")
            == n
        )
    hub.samples.add("all train", {"x": np.zeros(100)}, validation_ratio=0.0)
    hub.samples.add("all validation", {"x": np.zeros(100)}, validation_ratio=1.0)
    assert hub.samples.count("all train", split="train") == 100
    assert hub.samples.count("all validation", split="validation") == 100
    for info in hub.samples.batches():
        assert info.train_rows == hub.samples.count(info.name, split="train")


# --- count and read -------------------------------------------------------------------------


def test_count_and_read_agree_with_a_plain_filter(hub: learnhub.Hub, small_chunks: int) -> None:
    for size in (7, 23, 10, 1, 44):  # chunks of up to 10 rows, with writes of odd sizes
        hub.samples.add("b", {"x": np.arange(size, dtype=np.float64)})
    hub.samples.add("b", {"ts": [5, 9], "x": [-1.0, -2.0]})  # an old chunk before the rest
    everything = hub.samples.read("b")
    ts = everything["ts"].to_numpy()
    train = everything["is_train"].to_numpy(zero_copy_only=False)
    assert len(ts) == 87 and np.all(np.diff(ts) > 0)
    assert 0 < train.sum() < 87
    # Bounds at, inside and outside chunks: the first and last ts of chunks, the ones next to
    # them, and past both ends.
    points = sorted({int(t) for t in ts[::3]} | {int(t) + 1 for t in ts[::7]} | {0, 2**62})
    for since in points:
        keep = ts >= since
        assert hub.samples.count("b", since=since) == keep.sum(), since
        assert hub.samples.count("b", since=since, split="train") == (keep & train).sum()
        assert hub.samples.count("b", since=since, split="validation") == (keep & ~train).sum()
    for since, until in [(points[1], points[5]), (points[4], points[4]), (points[9], points[-2])]:
        keep = (ts >= since) & (ts <= until)
        for split, mask in ((None, keep), ("train", keep & train), ("validation", keep & ~train)):
            table = hub.samples.read("b", split=split, since=since, until=until)
            assert table["ts"].to_pylist() == ts[mask].tolist(), (since, until, split)
            assert table["x"].to_pylist() == everything["x"].to_numpy()[mask].tolist()
            if split:
                assert set(table["is_train"].to_pylist()) <= {split == "train"}
    assert hub.samples.count("b", since=int(ts[-1]) + 1) == 0
    empty = hub.samples.read("b", since=int(ts[-1]) + 1)
    assert empty.num_rows == 0 and empty.column_names == ["ts", "is_train", "x"]
    assert hub.samples.read("b", until=-1).num_rows == 0


def test_empty_batch_and_zero_rows(hub: learnhub.Hub) -> None:
    assert hub.samples.count("nothing") == 0
    assert hub.samples.count("nothing", since=5, split="train") == 0
    assert hub.samples.last_ts("nothing") is None
    empty = hub.samples.read("nothing", split="train")
    assert empty.num_rows == 0 and empty.column_names == ["ts", "is_train"]
    assert len(empty.to_pandas()) == 0
    for rows in (
        {"x": []},
        [],
        pd.DataFrame({"x": pd.Series([], dtype=float)}),
        pa.table({"x": []}),
        [{}],
    ):
        with pytest.raises(InvalidInput, match="no rows"):
            hub.samples.add("nothing", rows)
    with pytest.raises(InvalidInput, match="no columns"):
        hub.samples.add("nothing", {"ts": [1, 2]})
    assert hub.samples.batches() == []


def test_nan_and_inf_are_stored_as_given(hub: learnhub.Hub) -> None:
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308]
    small = [*values[:5], 1e38]  # float32's range
    hub.samples.add("frame", pd.DataFrame({"x": values, "y": np.array(small, np.float32)}))
    hub.samples.add("dict", {"x": values, "y": pa.array(small, pa.float32())})
    hub.samples.add("series", {"x": pd.Series(values), "y": pd.Series(small, dtype="float32")})
    for batch in ("frame", "dict", "series"):
        table = hub.samples.read(batch)
        assert table["x"].null_count == 0  # NaN stays NaN, not a missing value
        got = table["x"].to_numpy()
        assert np.isnan(got[0]) and got[1:3].tolist() == [math.inf, -math.inf]
        assert got[3:].tolist() == [0.0, -0.0, 1e308] and math.copysign(1, got[4]) == -1
        assert table.schema.field("y").type == pa.float32()
        frame = table.to_pandas()
        assert np.isnan(frame["y"][0]) and frame["y"][1] == np.inf


# --- schema ---------------------------------------------------------------------------------


def test_schema_is_fixed_by_the_first_write(hub: learnhub.Hub) -> None:
    hub.samples.add("b", {"x": [1.0], "n": [1], "s": ["a"]})
    assert hub.samples.batches()[0].columns == {"x": "double", "n": "int64", "s": "string"}
    bad = {
        r"missing n \(int64\)": {"x": [1.0], "s": ["a"]},
        r"not in the batch: extra \(double\)": {"x": [1.0], "n": [1], "s": ["a"], "extra": [1.0]},
        r"'s' is int64 in these rows but string": {"x": [1.0], "n": [1], "s": [5]},
        r"'n' is double in these rows but int64": {"x": [1.0], "n": [1.5], "s": ["a"]},
        r"'x' is string in these rows but double": {"x": ["1.0"], "n": [1], "s": ["a"]},
    }
    for message, rows in bad.items():
        with pytest.raises(InvalidInput, match=message):
            hub.samples.add("b", rows)
    assert hub.samples.count("b") == 1  # nothing of those was written
    # Columns in another order, a wider or null type, and pandas' large strings are fine.
    hub.samples.add("b", {"s": ["b"], "n": [2], "x": [3]})
    hub.samples.add("b", {"s": ["b2"], "n": [2], "x": [3.5]})  # only the order differs
    hub.samples.add("b", pd.DataFrame({"x": [4.0], "n": np.array([3], np.int8), "s": ["c"]}))
    hub.samples.add("b", [{"x": None, "n": 4, "s": None}])
    table = hub.samples.read("b")
    assert user_columns(table) == {
        "x": [1.0, 3.0, 3.5, 4.0, None],
        "n": [1, 2, 2, 3, 4],
        "s": ["a", "b", "b2", "c", None],
    }
    assert str(table.schema.field("n").type) == "int64"
    with pytest.raises(InvalidInput, match="does not fit"):
        hub.samples.add("b", {"x": [2**53 + 1], "n": [1], "s": ["a"]})
    # Timestamps in another unit.
    hub.samples.add("t", {"at": pa.array([1_000_000], pa.timestamp("us"))})
    hub.samples.add("t", {"at": pa.array([2_000_000_000], pa.timestamp("ns"))})
    with pytest.raises(InvalidInput, match="does not fit"):
        hub.samples.add("t", {"at": pa.array([2_000_000_001], pa.timestamp("ns"))})
    assert hub.samples.read("t")["at"].cast(pa.int64()).to_pylist() == [1_000_000, 2_000_000]


def test_reserved_and_bad_arguments(hub: learnhub.Hub) -> None:
    bad = [
        ("is_train", lambda: hub.samples.add("b", {"x": [1.0], "is_train": [True]})),
        ("non-empty", lambda: hub.samples.add("", {"x": [1.0]})),
        ("kind", lambda: hub.samples.add("b", {"x": [1.0]}, kind="other")),
        ("validation_ratio", lambda: hub.samples.add("b", {"x": [1.0]}, validation_ratio=1.5)),
        ("not str", lambda: hub.samples.add("b", "x,y\n1,2")),
        ("only dicts", lambda: hub.samples.add("b", [[1, 2]])),
        ("same length|cannot read", lambda: hub.samples.add("b", {"x": [1.0], "y": [1, 2]})),
        ("unique", lambda: hub.samples.add("b", pd.DataFrame([[1, 2]], columns=["a", "a"]))),
        ("split", lambda: hub.samples.count("b", split="test")),
        ("split", lambda: hub.samples.read("b", split="all")),
        ("since", lambda: hub.samples.count("b", since=1.5)),
        ("until", lambda: hub.samples.read("b", until="now")),
        ("kind", lambda: hub.samples.batches(kind="other")),
    ]
    for message, call in bad:
        with pytest.raises(InvalidInput, match=message):
            call()
    assert hub.samples.batches(kind=None) == []


def test_kinds_are_separate(hub: learnhub.Hub) -> None:
    hub.samples.add("b", {"x": [1.0, 2.0]})
    hub.samples.add("b", {"y": ["out"]}, kind="inference")
    assert hub.samples.count("b") == 2
    assert hub.samples.count("b", kind="inference") == 1
    assert hub.samples.read("b", kind="inference").column_names == ["ts", "is_train", "y"]
    assert [i.name for i in hub.samples.batches()] == ["b"]
    assert [(i.kind, i.rows) for i in hub.samples.batches(kind=None)] == [
        ("inference", 1),
        ("training", 2),
    ]


def test_odd_batch_names(hub: learnhub.Hub) -> None:
    added = {
        name: hub.samples.add(name, {"x": [float(i)] * (i + 1)}) for i, name in enumerate(ODD_NAMES)
    }
    infos = {info.name: info for info in hub.samples.batches()}
    assert set(infos) == set(ODD_NAMES)
    for i, name in enumerate(ODD_NAMES):
        assert isinstance(added[name], Added)
        assert hub.samples.count(name) == i + 1
        assert hub.samples.read(name)["x"].to_pylist() == [float(i)] * (i + 1)
        assert hub.samples.last_ts(name) == added[name].last_ts
        info = infos[name]
        assert isinstance(info, BatchInfo)
        assert (info.rows, info.first_ts, info.last_ts) == (
            i + 1,
            added[name].first_ts,
            added[name].last_ts,
        )


# --- scale ----------------------------------------------------------------------------------


def test_ten_million_rows_in_chunks(tmp_path: Path) -> None:
    n, calls = 10_000_000, 10
    per_call = n // calls
    x = np.arange(per_call, dtype=np.float32)
    with learnhub.open(f"sqlite:///{tmp_path / 'big.db'}") as hub:
        started = time.perf_counter()
        marks = []
        for call in range(calls):
            added = hub.samples.add(
                "big", {"x": x, "call": np.full(per_call, call, np.int8)}, seed=call
            )
            marks.append(added)
        ingest = time.perf_counter() - started
        assert hub.samples.count("big") == n
        middle = marks[4].first_ts + per_call // 2  # inside a chunk of the fifth call
        started = time.perf_counter()
        since = hub.samples.count("big", since=middle)
        counted = time.perf_counter() - started
        assert since == n - 4 * per_call - per_call // 2
        train = hub.samples.count("big", split="train")
        assert abs(train / n - 0.8) < 0.001
        tail = hub.samples.read("big", since=marks[-1].last_ts - 9)
        assert tail["x"].to_pylist() == x[-10:].tolist() and set(tail["call"].to_pylist()) == {9}
        info = hub.samples.batches()[0]
        assert (info.rows, info.train_rows) == (n, train)
    # Generous bounds (a shared CI machine), still far below a row-per-sample store.
    assert ingest < 60, f"10M rows took {ingest:.1f} s"
    assert counted < 0.05, f"count since took {counted * 1000:.1f} ms"
