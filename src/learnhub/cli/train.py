"""Training commands: ``learnhub train plan|tasks`` and ``learnhub models ls``."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from learnhub.cli.base import cli, common_options, out
from learnhub.cli.jobs import app_hub, app_option

ACTION_STYLE = {
    "scratch": "green",
    "finetune": "cyan",
    "dead": "red",
    "failed": "red",
    "busy": "yellow",
    "wait": "dim",
}
STATUS_STYLE = {"queued": "cyan", "done": "green", "failed": "red", "dead": "magenta"}


def _plain(obj: Any) -> dict[str, Any]:
    data = asdict(obj)
    data.pop("_learning", None)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def _ts(ns: int | None) -> str:
    return "-" if ns is None else str(ns)


@cli.group()
def train() -> None:
    """Plan and inspect training tasks (the trainer is the app's @hub.trainer)."""


@train.command()
@common_options
@app_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plan(db: str | None, app: str | None, as_json: bool) -> None:
    """Run the planner now and print its decision for every batch. Without --app, it uses
    the settings of the trainer whose workers last scheduled the planner."""
    with app_hub(db, app) as hub:
        decisions = hub.continuous.plan()
    if as_json:
        click.echo(json.dumps([asdict(d) for d in decisions]))
        return
    table = Table("batch", "action", "samples", "task", "job", "reason")
    for d in decisions:
        style = ACTION_STYLE.get(d.action, "")
        table.add_row(
            escape(d.batch),
            f"[{style}]{d.action}[/]" if style else d.action,
            "-" if d.samples is None else str(d.samples),
            "-" if d.task_id is None else str(d.task_id),
            "-" if d.job_id is None else str(d.job_id),
            escape(d.reason),
        )
    out.print(table if decisions else "no batch of training samples yet")


@train.command()
@common_options
@app_option
@click.argument("batch", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tasks(db: str | None, app: str | None, batch: str | None, as_json: bool) -> None:
    """List the training tasks of BATCH (default: of every batch), oldest first."""
    with app_hub(db, app) as hub:
        found = hub.continuous.tasks(batch)
    if as_json:
        click.echo(json.dumps([_plain(t) for t in found]))
        return
    table = Table("id", "batch", "mode", "status", "job", "base", "model", "started", "error")
    for t in found:
        style = STATUS_STYLE.get(t.status, "yellow")
        table.add_row(
            str(t.id),
            escape(t.batch),
            t.mode,
            f"[{style}]{escape(t.status)}[/]",
            "-" if t.job_id is None else str(t.job_id),
            "-" if t.base_model_id is None else str(t.base_model_id),
            "-" if t.model_id is None else str(t.model_id),
            t.started_at.strftime("%Y-%m-%d %H:%M:%S") if t.started_at else "-",
            escape((t.error or "")[:60]),
        )
    out.print(table)


@cli.group()
def models() -> None:
    """Inspect the models of batches."""


@models.command(name="ls")
@common_options
@click.argument("batch")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(db: str | None, batch: str, as_json: bool) -> None:
    """List the models of BATCH, oldest first."""
    with app_hub(db, None) as hub:
        found = hub.models.list(batch)
    if as_json:
        click.echo(json.dumps([_plain(m) for m in found]))
        return
    table = Table("id", "status", "mode", "task", "data from", "data to", "metrics", "version")
    for m in found:
        table.add_row(
            str(m.id),
            escape(m.status),
            m.mode or "-",
            "-" if m.task_id is None else str(m.task_id),
            _ts(m.data_from_ts),
            _ts(m.data_to_ts),
            escape(json.dumps(m.metrics)),
            m.version[:12],
        )
    out.print(table)
