"""Example commands: ``learnhub examples add|ls|search|rm``."""

from __future__ import annotations

import json

import click
from rich.table import Table

from learnhub.cli.base import cli, common_options, open_hub, out
from learnhub.errors import InvalidInput
from learnhub.sharing import Example

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@cli.group()
def examples() -> None:
    """Learned examples: stored here, backed up and shared through [sharing] locations."""


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(items: list[Example], scores: bool = False) -> Table:
    columns = ["#", "score"] if scores else []
    table = Table(*columns, "id", "input", "output", "author", "from")
    for rank, e in enumerate(items, 1):
        first = [str(rank), f"{e.score:.4f}"] if scores else []
        table.add_row(*first, e.id, _short(e.input), _short(e.output), e.author, e.source or "here")
    return table


@examples.command("add")
@common_options
@click.argument("input_text", metavar="INPUT")
@click.argument("output_text", metavar="OUTPUT")
@click.option("--author", help="Who learned it [default: the user name].")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--id", "example_id", metavar="ID", help="Replace the example with this id.")
@json_option
def add(
    db: str | None,
    input_text: str,
    output_text: str,
    author: str | None,
    tags: tuple[str, ...],
    example_id: str | None,
    as_json: bool,
) -> None:
    """Learn an example: INPUT (the query and its context) and OUTPUT (the answer). It is
    stored at once and backed up by a job (run by `learnhub worker`/`serve`, or `sharing sync`)."""
    with open_hub(db) as hub:
        e = hub.examples.add(input_text, output_text, author=author, tags=tags, id=example_id)
        backup = hub.config.sharing.backup
    if as_json:
        click.echo(json.dumps(e.to_dict() | {"backup": backup}))
        return
    where = f"; backup to {backup} scheduled" if backup else "; no backup location configured"
    out.print(f"added example {e.id}{where}", highlight=False, soft_wrap=True)


@examples.command("ls")
@common_options
@click.option("--author", help="Only examples by this author.")
@click.option("--tag", help="Only examples with this tag.")
@click.option("--local/--shared", "local", default=None, help="Only those learned here / loaded.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="How many."
)
@json_option
def ls(
    db: str | None,
    author: str | None,
    tag: str | None,
    local: bool | None,
    limit: int,
    as_json: bool,
) -> None:
    """List examples, newest first."""
    with open_hub(db) as hub:
        items = hub.examples.ls(author=author, tag=tag, local=local, limit=limit)
        counts = hub.examples.count()
    if as_json:
        click.echo(json.dumps({"examples": [e.to_dict() for e in items], "counts": counts}))
        return
    if not items:
        out.print("no examples", highlight=False)
        return
    table = _table(items)
    table.caption = (
        f"{counts['total']:,} examples, {counts['local']:,} learned here "
        f"({counts['backed_up']:,} backed up)"
    )
    out.print(table)


@examples.command("search")
@common_options
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True)
@json_option
def search(db: str | None, query: str, k: int, as_json: bool) -> None:
    """Show the K examples most similar to QUERY, best first."""
    if not query.strip():
        raise InvalidInput("QUERY is empty; pass some words to search for")
    with open_hub(db) as hub:
        found = hub.examples.nearest(query, k=k)
        model = hub.examples.model
    if as_json:
        click.echo(json.dumps({"model": model, "results": [e.to_dict() for e in found]}))
        return
    if not found:
        out.print("no examples found", highlight=False)
        return
    table = _table(found, scores=True)
    table.caption = f"model {model}"
    out.print(table)


@examples.command("rm")
@common_options
@click.argument("example_id", metavar="ID")
@json_option
def rm(db: str | None, example_id: str, as_json: bool) -> None:
    """Forget example ID (and, for one learned here, remove it from the backup).

    One loaded from elsewhere stays away until its author writes a newer version."""
    with open_hub(db) as hub:
        removed = hub.examples.rm(example_id)
    if as_json:
        click.echo(json.dumps({"id": example_id, "removed": removed}))
        return
    if not removed:
        raise InvalidInput(f"there is no example {example_id!r}; see 'learnhub examples ls'")
    out.print(f"removed example {example_id}", highlight=False)
