"""Sample commands: ``learnhub samples add|count|ls``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pyarrow as pa
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from learnhub.cli.base import cli, common_options, err, open_hub, out
from learnhub.continuous.samples import CHUNK_ROWS, KINDS, SPLITS
from learnhub.errors import InvalidInput

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Big blocks: CSV and JSON readers infer column types from the first block.
BLOCK_BYTES = 16 << 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@cli.group()
def samples() -> None:
    """Time-series samples of batches, for continuous training."""


@samples.command("add")
@common_options
@click.argument("batch")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(set(FORMATS.values()))),
    help="The file's format [default: from its extension: "
    + ", ".join(f"{ext} = {fmt}" for ext, fmt in FORMATS.items())
    + "]",
)
@click.option(
    "--validation-ratio",
    type=click.FloatRange(0, 1),
    default=0.2,
    show_default=True,
    help="Share of the rows drawn for validation.",
)
@click.option("--seed", type=int, help="Seed of the train/validation draws (reproducible).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add(
    db: str | None,
    batch: str,
    file: Path,
    fmt: str | None,
    validation_ratio: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """Add the rows of FILE (CSV, JSON lines or Parquet) to BATCH.

    A CSV file starts with a line of column names. All or nothing: the whole file is read
    (in record batches, under a progress bar), then written in one transaction. A ts column
    (int ns since the epoch, or timestamps) gives the samples' timestamps; else they are
    the arrival time, +1 ns per row.
    """
    if not file.is_file():
        raise InvalidInput(f"{file}: " + ("is a directory" if file.is_dir() else "no such file"))
    fmt = fmt or _format_of(file)
    with open_hub(db) as hub:
        table = _read(file, fmt)
        writing = err.status(f"writing {table.num_rows:,} rows to {batch} ...")
        with writing if err.is_terminal else nullcontext():
            added = hub.samples.add(batch, table, validation_ratio=validation_ratio, seed=seed)
    if as_json:
        click.echo(json.dumps(asdict(added)))
        return
    out.print(
        f"added {added.rows:,} samples to {batch!r} "
        f"(ts {_when(added.first_ts)} .. {_when(added.last_ts)} UTC)",
        highlight=False,
        soft_wrap=True,
    )


@samples.command()
@common_options
@click.argument("batch")
@click.option("--since", type=int, metavar="NS", help="Only samples with ts >= NS.")
@click.option("--split", type=click.Choice(SPLITS), help="Only training or validation samples.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="training",
    show_default=True,
    help="Training samples, or inference outputs (hub.infer).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def count(
    db: str | None, batch: str, since: int | None, split: str | None, kind: str, as_json: bool
) -> None:
    """Print the number of samples of BATCH (0 if it has none)."""
    with open_hub(db) as hub:
        n = hub.samples.count(batch, since=since, split=split, kind=kind)
    if as_json:
        data = {"batch": batch, "kind": kind, "since": since, "split": split, "count": n}
        click.echo(json.dumps(data))
        return
    out.print(str(n))


@samples.command(name="ls")
@common_options
@click.option(
    "--kind",
    type=click.Choice([*KINDS, "all"]),
    default="all",
    show_default=True,
    help="Only batches of training samples, or of inference outputs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(db: str | None, kind: str, as_json: bool) -> None:
    """List the batches: their samples, time range and columns."""
    with open_hub(db) as hub:
        found = hub.samples.batches(None if kind == "all" else kind)
    if as_json:
        click.echo(json.dumps([asdict(b) for b in found]))
        return
    table = Table("batch", "kind", "rows", "train", "first", "last", "columns")
    for b in found:
        table.add_row(
            b.name,
            b.kind,
            f"{b.rows:,}",
            f"{b.train_rows:,}",
            _when(b.first_ts),
            _when(b.last_ts),
            ", ".join(f"{name} ({kind})" for name, kind in b.columns.items()),
        )
    out.print(table)


def _format_of(file: Path) -> str:
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot tell the format of {file} from its extension: name it "
            f"{', '.join(FORMATS)}, or pass --format csv|jsonl|parquet"
        )
    return fmt


def _read(file: Path, fmt: str) -> pa.Table:
    """The file's rows, read in record batches under a progress bar (bytes, or rows for
    Parquet) on stderr when it is a terminal."""
    columns = [TextColumn(f"reading {file.name}"), BarColumn()]
    unit = [MofNCompleteColumn()] if fmt == "parquet" else [DownloadColumn()]
    progress = Progress(
        *columns,
        *unit,
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    batches = []
    try:
        with progress:
            total, stream = _batches(file, fmt)
            task = progress.add_task("read", total=total)
            for batch, done in stream:
                batches.append(batch)
                progress.update(task, completed=done)
        return pa.Table.from_batches(batches) if batches else pa.table({})
    except (pa.ArrowException, OSError) as exc:
        text = str(exc).strip().splitlines()
        raise InvalidInput(
            f"cannot read {file} as {fmt.upper()}: {text[0] if text else type(exc).__name__}"
        ) from exc


def _batches(file: Path, fmt: str) -> tuple[int, Iterator[tuple[pa.RecordBatch, int]]]:
    """(total, record batches each with the progress made up to it)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(file)

        def rows() -> Iterator[tuple[pa.RecordBatch, int]]:
            done = 0
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
                done += batch.num_rows
                yield batch, done

        return parquet.metadata.num_rows, rows()

    source = pa.input_stream(str(file))
    if fmt == "csv":
        import pyarrow.csv as csv

        reader = csv.open_csv(source, read_options=csv.ReadOptions(block_size=BLOCK_BYTES))
    else:
        import pyarrow.json as pjson

        reader = pjson.open_json(source, read_options=pjson.ReadOptions(block_size=BLOCK_BYTES))

    def blocks() -> Iterator[tuple[pa.RecordBatch, int]]:
        with source:
            for batch in reader:
                yield batch, source.tell()  # bytes read so far (a block ahead at most)

    return file.stat().st_size, blocks()


def _when(ts: int | None) -> str:
    """A ns timestamp as UTC time, to the microsecond."""
    if ts is None:
        return "-"
    try:
        moment = EPOCH + timedelta(microseconds=ts // 1000)
    except OverflowError:  # a user's own ts far from now
        return str(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
