"""Embedding commands: ``learnhub embed add|search|backfill``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from learnhub.cli.base import cli, common_options, err, open_hub, out
from learnhub.embed import get_embedder
from learnhub.errors import InvalidInput

BATCH = 64

model_option = click.option(
    "--model",
    metavar="NAME",
    help="Embedder: minilm or hashing [default: minilm when installed, else hashing].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@cli.group()
def embed() -> None:
    """Persisted embeddings of texts by ref, and similarity search over them."""


@embed.command("add")
@common_options
@click.argument("ref")
@click.argument("text", required=False)
@click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Read the text from this file (UTF-8; - for stdin) instead of TEXT.",
)
@model_option
@click.option("--force", is_flag=True, help="Embed again even when the text is unchanged.")
@json_option
def add(
    db: str | None,
    ref: str,
    text: str | None,
    file: Path | None,
    model: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Embed TEXT (or the text of --file) as REF; unchanged texts are not embedded again."""
    if text is not None and file is not None:
        raise click.UsageError("give the text as TEXT or with --file, not both")
    if text is None and file is None:
        raise click.UsageError("missing the text: give it as TEXT or with --file F")
    if file is not None:
        text = _read_text(file)
        if not text.strip():
            raise InvalidInput(f"{file}: is empty; there is no text to embed")
    elif not text or not text.strip():
        raise InvalidInput("TEXT is empty; pass some words to embed")
    assert text is not None
    name = get_embedder(model).name
    with open_hub(db) as hub:
        embedded = hub.embed.put(ref, text, model=name, force=force)
        total = hub.embed.count(name)
    if as_json:
        click.echo(json.dumps({"ref": ref, "model": name, "embedded": embedded, "count": total}))
        return
    what = "embedded" if embedded else "unchanged (already embedded)"
    out.print(f"{ref!r}: {what} with {name}", highlight=False, soft_wrap=True)


@embed.command("search")
@common_options
@click.argument("text")
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many refs to show.",
)
@click.option("--filter", "prefix", metavar="PREFIX", help="Only refs starting with PREFIX.")
@click.option("--exclude", "-x", multiple=True, metavar="REF", help="Leave REF out (repeatable).")
@model_option
@json_option
def search(
    db: str | None,
    text: str,
    k: int,
    prefix: str | None,
    exclude: tuple[str, ...],
    model: str | None,
    as_json: bool,
) -> None:
    """Show the K refs most similar to TEXT, best first, with their cosine similarity."""
    if not text.strip():
        raise InvalidInput("TEXT is empty; pass some words to search for")
    name = get_embedder(model).name
    with open_hub(db) as hub:
        found = hub.embed.search(text, k=k, model=name, filter=prefix, exclude=list(exclude))
    if as_json:
        results = [{"ref": ref, "score": score} for ref, score in found]
        click.echo(json.dumps({"model": name, "results": results}))
        return
    if not found:
        out.print(f"no embeddings found (model {name})", highlight=False)
        return
    table = Table("#", "score", "ref", caption=f"model {name}")
    for rank, (ref, score) in enumerate(found, 1):
        table.add_row(str(rank), f"{score:.4f}", ref)
    out.print(table)


@embed.command("backfill")
@common_options
@click.argument("file", type=click.Path(path_type=Path))
@model_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=BATCH,
    show_default=True,
    help="Texts per model call.",
)
@click.option("--force", is_flag=True, help="Embed every text again, even unchanged ones.")
@json_option
def backfill(
    db: str | None,
    file: Path,
    model: str | None,
    batch_size: int,
    force: bool,
    as_json: bool,
) -> None:
    """Embed every line of FILE, JSON lines of {"ref": ..., "text": ...}, in batches.

    The whole file is checked first (a bad line stops it before anything is embedded);
    texts already embedded unchanged under the model are skipped. Blank lines are ignored.
    """
    if not file.is_file():
        raise InvalidInput(f"{file}: " + ("is a directory" if file.is_dir() else "no such file"))
    name = get_embedder(model).name
    records = sum(1 for _ in _records(file))  # validates every line before embedding
    embedded = 0
    progress = Progress(
        TextColumn(f"embedding {file.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with open_hub(db) as hub, progress:
        task = progress.add_task("embed", total=records)
        batch: dict[str, str] = {}
        for ref, text in _records(file):
            if ref in batch:  # the same ref again: its earlier text first, then this one
                embedded += _flush(hub, batch, name, force, progress, task)
            batch[ref] = text
            if len(batch) >= batch_size:
                embedded += _flush(hub, batch, name, force, progress, task)
        embedded += _flush(hub, batch, name, force, progress, task)
        total = hub.embed.count(name)
    data = {
        "file": str(file),
        "model": name,
        "records": records,
        "embedded": embedded,
        "unchanged": records - embedded,
        "count": total,
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    out.print(
        f"{records:,} texts from {file}: {embedded:,} embedded, "
        f"{records - embedded:,} unchanged (model {name}; {total:,} stored)",
        highlight=False,
        soft_wrap=True,
    )


def _flush(
    hub: Any, batch: dict[str, str], model: str, force: bool, progress: Progress, task: Any
) -> int:
    if not batch:
        return 0
    done = hub.embed.put_many(batch, model=model, force=force)
    progress.advance(task, len(batch))
    batch.clear()
    return done


def _read_text(file: Path) -> str:
    try:
        if str(file) == "-":
            return sys.stdin.read()
        if file.is_dir():
            raise InvalidInput(f"{file}: is a directory")
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _records(file: Path) -> Iterator[tuple[str, str]]:
    """(ref, text) of each non-blank line; InvalidInput naming the line for a bad one."""
    try:
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                yield _record(line, f"{file}:{number}")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file}: not UTF-8 text ({exc.reason})") from None


def _record(line: str, where: str) -> tuple[str, str]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(item, dict):
        raise InvalidInput(
            f'{where}: expected an object {{"ref": ..., "text": ...}}, got {type(item).__name__}'
        )
    missing = [key for key in ("ref", "text") if key not in item]
    if missing:
        raise InvalidInput(f"{where}: missing {' and '.join(repr(k) for k in missing)}")
    ref, text = item["ref"], item["text"]
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(f"{where}: 'ref' must be a non-empty string, got {ref!r}")
    if not isinstance(text, str):
        raise InvalidInput(f"{where}: 'text' of {ref!r} is {type(text).__name__}, not a string")
    if not text.strip():
        raise InvalidInput(f"{where}: the text of {ref!r} is empty")
    return ref, text
