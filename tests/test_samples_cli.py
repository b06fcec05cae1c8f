"""``learnhub samples add|count|ls`` as real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import learnhub
from learnhub.cli import samples as samples_cli

TIMEOUT = 60
ROWS = {"x": [1.5, 2.5, 3.5], "label": [0, 1, 0], "name": ["a", "b", "c"]}


def run(*args: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "LEARNHUB_DB": db},
    )


def ok(*args: str, db: str) -> str:
    result = run(*args, db=db)
    assert result.returncode == 0, f"learnhub {' '.join(args)}: {result.stderr}"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    return result.stdout


def fails(*args: str, db: str) -> str:
    """Run a command that must fail with exactly one clear line on stderr; return that line."""
    result = run(*args, db=db)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def write_files(folder: Path, rows: dict[str, list], stem: str = "data") -> dict[str, Path]:
    table = pa.table(rows)
    names = list(rows)
    csv = folder / f"{stem}.csv"
    csv.write_text(
        ",".join(names)
        + "\n"
        + "".join(
            ",".join(str(v) for v in values) + "\n" for values in zip(*rows.values(), strict=True)
        )
    )
    jsonl = folder / f"{stem}.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    parquet = folder / f"{stem}.parquet"
    pq.write_table(table, parquet, row_group_size=2)
    return {"csv": csv, "jsonl": jsonl, "parquet": parquet}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_files(tmp_path, ROWS)


def test_add_every_format_then_count_and_ls(store_url: str, files: dict[str, Path]) -> None:
    total = 0
    for fmt, path in files.items():
        added = json.loads(ok("samples", "add", "sensor 1/ä", str(path), "--json", db=store_url))
        assert added["batch"] == "sensor 1/ä" and added["rows"] == 3, fmt
        assert added["last_ts"] - added["first_ts"] == 2
        total += 3
        counted = json.loads(ok("samples", "count", "sensor 1/ä", "--json", db=store_url))
        assert counted["count"] == total
    since = json.loads(
        ok(
            "samples",
            "count",
            "sensor 1/ä",
            "--since",
            str(added["first_ts"] + 1),
            "--json",
            db=store_url,
        )
    )
    assert since["count"] == 2 and since["since"] == added["first_ts"] + 1
    listed = json.loads(ok("samples", "ls", "--json", db=store_url))
    assert len(listed) == 1
    assert listed[0]["name"] == "sensor 1/ä" and listed[0]["rows"] == 9
    assert listed[0]["columns"] == {"x": "double", "label": "int64", "name": "string"}
    with learnhub.open(store_url) as hub:
        table = hub.samples.read("sensor 1/ä")
    assert table.drop_columns(["ts", "is_train"]).to_pydict() == {k: v * 3 for k, v in ROWS.items()}


def test_human_output_split_and_seed(tmp_path: Path, files: dict[str, Path]) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    text = ok("samples", "add", "b", str(files["csv"]), "--validation-ratio", "1", db=db)
    assert text.startswith("added 3 samples to 'b' (ts ") and text.rstrip().endswith("UTC)")
    assert ok("samples", "count", "b", "--split", "validation", db=db).strip() == "3"
    assert ok("samples", "count", "b", "--split", "train", db=db).strip() == "0"
    assert ok("samples", "count", "missing", db=db).strip() == "0"
    ok("samples", "add", "c", str(files["csv"]), "--seed", "3", db=db)
    ok("samples", "add", "d", str(files["csv"]), "--seed", "3", db=db)
    with learnhub.open(db) as hub:
        assert hub.samples.read("c")["is_train"] == hub.samples.read("d")["is_train"]
    listing = ok("samples", "ls", db=db)
    for name in ("b", "c", "d", "x (double)"):
        assert name in listing


def test_user_timestamps_and_format_option(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    path = tmp_path / "readings.txt"
    path.write_text("ts,x\n2024-01-01T00:00:02,2.0\n2024-01-01T00:00:01,1.0\n")
    added = json.loads(ok("samples", "add", "b", str(path), "--format", "csv", "--json", db=db))
    assert added["first_ts"] == 1704067201 * 10**9 and added["last_ts"] == 1704067202 * 10**9
    line = fails("samples", "add", "b", str(path), "--format", "csv", db=db)
    assert "already has samples at ts 1704067201000000000" in line


def test_errors_are_one_line_and_write_nothing(tmp_path: Path, files: dict[str, Path]) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    ok("samples", "add", "b", str(files["csv"]), db=db)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("x,label,name\n1.0,1,a\n2.0,2\n")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"x": 1.0, "label": 1, "name": "a"}\n{not json\n')
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"PAR1 not really")
    other = write_files(tmp_path, {"x": [1.0], "extra": [2]}, stem="other")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("x,label,name\n")
    expect = {
        ("add", "b", str(tmp_path / "nope.csv")): "nope.csv: no such file",
        ("add", "b", str(tmp_path)): "is a directory",
        ("add", "b", str(tmp_path / "notes.txt")): "no such file",
        ("add", "b", str(bad_csv)): "cannot read",
        ("add", "b", str(bad_json)): "cannot read",
        ("add", "b", str(bad_parquet)): "cannot read",
        ("add", "b", str(other["csv"])): "missing label (int64)",
        ("add", "b", str(empty)): "cannot read",
        ("add", "b", str(header_only)): "no rows",
        ("add", "b", str(files["csv"]), "--format", "xml"): "Invalid value for '--format'",
        ("count", "b", "--split", "test"): "Invalid value for '--split'",
        ("count", "b", "--since", "yesterday"): "Invalid value for '--since'",
    }
    (tmp_path / "notes.md").write_text("x\n1\n")
    expect[("add", "b", str(tmp_path / "notes.md"))] = "cannot tell the format of"
    for args, message in expect.items():
        line = fails("samples", *args, db=db)
        assert message in line, (args, line)
    assert ok("samples", "count", "b", db=db).strip() == "3"


def test_reading_in_many_record_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files bigger than a read block come in several record batches, all of them read."""
    n = 5000
    rows = {"x": [i / 2 for i in range(n)], "label": list(range(n)), "name": ["r"] * n}
    files = write_files(tmp_path, rows)
    monkeypatch.setattr(samples_cli, "BLOCK_BYTES", 4096)  # CSV and JSON lines
    monkeypatch.setattr(samples_cli, "CHUNK_ROWS", 1000)  # Parquet
    for fmt, path in files.items():
        total, stream = samples_cli._batches(path, fmt)
        batches = [batch for batch, _ in stream]
        assert len(batches) > 1, fmt
        assert total == (n if fmt == "parquet" else path.stat().st_size)
        table = samples_cli._read(path, fmt)
        assert table.to_pydict() == rows, fmt
