"""Sharing commands: ``learnhub sharing sync|status``."""

from __future__ import annotations

import json
import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from learnhub.cli.base import cli, common_options, err, open_hub, out

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
STAGES = {"backup": "backing up", "list": "listing sources", "read": "reading files"}


@cli.group()
def sharing() -> None:
    """Examples (and artifacts) loaded from [sharing] sources and backed up to one location."""


@sharing.command("sync")
@common_options
@json_option
def sync(db: str | None, as_json: bool) -> None:
    """Back up what is due and poll every source now (also those waiting out a backoff).

    Exits 1 if a location failed (what was reachable is still synced; see `sharing status`).
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    tasks: dict[str, int] = {}

    def step(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(STAGES.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with open_hub(db) as hub:
        if not hub.sharing.sources and hub.sharing.backup is None:
            raise click.UsageError(
                "no [sharing] sources or backup configured: add them to learnhub.toml"
            )
        with progress:
            report = hub.sharing.sync(force=True, progress=step)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        out.print(
            f"{report.backed_up:,} backed up; {report.listed:,} files listed, "
            f"{report.read:,} read, {report.loaded:,} loaded, {report.dropped:,} dropped, "
            f"{report.skipped:,} skipped",
            highlight=False,
            soft_wrap=True,
        )
        for location, error in report.errors.items():
            err.print(f"[red]error:[/red] {location}: {error}", highlight=False, soft_wrap=True)
    if report.errors:
        sys.exit(1)


@sharing.command("status")
@common_options
@json_option
def status(db: str | None, as_json: bool) -> None:
    """Each location: when it last worked, its last error, examples loaded or backed up."""
    with open_hub(db) as hub:
        rows = hub.sharing.status()
        counts = hub.examples.count()
    if as_json:
        click.echo(json.dumps({"locations": rows, "examples": counts}))
        return
    if not rows:
        out.print("no [sharing] locations configured", markup=False, highlight=False)
        return
    table = Table("location", "role", "ok", "last success", "examples", "skipped", "last error")
    for r in rows:
        examples = (
            f"{r['examples']:,}"
            if r["role"] == "source"
            else f"{r['backed_up']:,}/{r['learned']:,} backed up"
        )
        table.add_row(
            r["location"],
            r["role"],
            "yes" if r["ok"] else "[red]no[/red]",
            r["last_success"] or "never",
            examples,
            str(r.get("skipped", "")),
            (r["last_error"] or "") if not r["ok"] else "",
        )
    table.caption = f"{counts['total']:,} examples here, {counts['local']:,} learned here"
    out.print(table)
