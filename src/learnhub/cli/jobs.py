"""Job commands: ``learnhub worker`` and ``learnhub jobs list|show|cancel|retry|stats``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table
from rich.tree import Tree

import learnhub
from learnhub import config as config_module
from learnhub.cli.base import cli, common_options, load_app, open_hub, out
from learnhub.errors import InvalidInput
from learnhub.jobs import Job
from learnhub.jobs.model import STATES

STATE_STYLE = {
    "waiting": "dim",
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def app_option(command: Any) -> Any:
    return click.option(
        "--app",
        metavar="MODULE:HUB",
        help="The Hub your tasks are registered on, e.g. myapp.tasks:hub [config: jobs.app].",
    )(command)


def app_hub(db: str | None, app: str | None) -> learnhub.Hub:
    """The app's hub (with its tasks) if one is named, else a hub on the configured store."""
    config = config_module.load({"db": db, "jobs.app": app})
    if config.jobs.app:
        if db:
            raise InvalidInput("--db and --app both name a store: the app's hub has its own")
        return load_app(config.jobs.app)
    return learnhub.open(config=config)


@cli.command()
@common_options
@app_option
@click.option("--queue", "-q", "queues", multiple=True, help="Only these queues (repeatable).")
@click.option("--concurrency", "-c", default=4, show_default=True, help="Jobs run at once.")
@click.option("--burst", is_flag=True, help="Exit when no job is left instead of waiting.")
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Jobs claimed ahead of free threads: faster for short jobs, but priority order then "
    "holds only beyond them.",
)
def worker(
    db: str | None,
    app: str | None,
    queues: tuple[str, ...],
    concurrency: int,
    burst: bool,
    prefetch: int,
) -> None:
    """Run jobs. Ctrl-C or SIGTERM stops after the running jobs finish (twice: at once;
    their leases then expire and other workers take them over)."""
    with app_hub(db, app) as hub:
        hub.run_worker(queues or None, concurrency, burst, prefetch)


@cli.group()
def jobs() -> None:
    """Inspect and steer jobs."""


def _job_dict(job: Job) -> dict[str, Any]:
    data = asdict(job)
    for name, value in data.items():
        if hasattr(value, "isoformat"):
            data[name] = value.isoformat()
    return data


def _state(job: Job) -> str:
    return f"[{STATE_STYLE[job.state]}]{job.state}[/]"


@jobs.command(name="list")
@common_options
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--flow", help="Only jobs of this flow id.")
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(
    db: str | None,
    state: str | None,
    queue: str | None,
    flow: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    with open_hub(db) as hub:
        found = hub.jobs.list(state=state, queue=queue, flow=flow, limit=limit)
    if as_json:
        click.echo(json.dumps([_job_dict(j) for j in found]))
        return
    table = Table("id", "task", "queue", "state", "prio", "attempts", "flow", "error")
    for j in found:
        table.add_row(
            str(j.id),
            j.task,
            j.queue,
            _state(j),
            str(j.priority),
            f"{j.attempts}/{j.max_attempts}",
            j.flow_id,
            (j.error or "")[:60],
        )
    out.print(table)


@jobs.command()
@common_options
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(db: str | None, job_id: int, as_json: bool) -> None:
    """Show one job and draw its flow."""
    with open_hub(db) as hub:
        job = hub.jobs.get(job_id)
        if job is None:
            raise InvalidInput(f"there is no job {job_id}")
        flow = hub.jobs.list(flow=job.flow_id, limit=10_000)
        edges = hub.jobs.edges(job.flow_id)
    if as_json:
        click.echo(json.dumps({**_job_dict(job), "flow_edges": edges}))
        return
    table = Table(show_header=False, box=None)
    for name, value in _job_dict(job).items():
        if name != "traceback":
            table.add_row(f"[bold]{name}[/bold]", "" if value is None else str(value))
    out.print(table)
    if job.traceback:
        out.print(job.traceback, highlight=False, markup=False)
    out.print(flow_tree(job, flow, edges))


def flow_tree(job: Job, flow: list[Job], edges: list[tuple[int, int, str]]) -> Tree:
    """The flow as a tree: each job under its first parent, other parents named beside it."""
    by_id = {j.id: j for j in flow}
    parents: dict[int, list[tuple[int, str]]] = {}
    children: dict[int, list[int]] = {}
    for parent, child, policy in sorted(edges):
        parents.setdefault(child, []).append((parent, policy))
        children.setdefault(parent, []).append(child)
    tree = Tree(f"flow [bold]{job.flow_id}[/bold]")
    placed: set[int] = set()

    def label(j: Job) -> str:
        marker = " ◀" if j.id == job.id else ""
        extra = [
            f"#{p}" + (" (ignore)" if pol == "ignore" else "")
            for p, pol in parents.get(j.id, [])[1:]
        ]
        also = f"  [dim]also after {', '.join(extra)}[/dim]" if extra else ""
        return f"#{j.id} {j.task} {_state(j)}{also}{marker}"

    def grow(node: Tree, j: Job) -> None:
        placed.add(j.id)
        for child_id in children.get(j.id, []):
            child = by_id.get(child_id)
            first_parent = parents[child_id][0][0]
            if child is not None and child_id not in placed and first_parent == j.id:
                grow(node.add(label(child)), child)

    for j in sorted(flow, key=lambda j: j.id):
        if j.id not in placed and not any(p in by_id for p, _ in parents.get(j.id, [])):
            grow(tree.add(label(j)), j)
    return tree


@jobs.command()
@common_options
@click.argument("job_id", type=int)
def cancel(db: str | None, job_id: int) -> None:
    """Cancel a job that has not finished, and the jobs that depend on it."""
    with open_hub(db) as hub:
        if not hub.jobs.cancel(job_id):
            raise InvalidInput(f"job {job_id} has already finished")
    out.print(f"cancelled job {job_id}")


@jobs.command()
@common_options
@click.argument("job_id", type=int)
def retry(db: str | None, job_id: int) -> None:
    """Run a failed or cancelled job again; what its failure cancelled waits for it again."""
    with open_hub(db) as hub:
        if not hub.jobs.retry(job_id):
            raise InvalidInput(f"job {job_id} has not failed or been cancelled")
    out.print(f"job {job_id} is queued again")


@jobs.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(db: str | None, as_json: bool) -> None:
    """How many jobs each queue has in each state."""
    with open_hub(db) as hub:
        counts = hub.jobs.stats()
    if as_json:
        click.echo(json.dumps(counts))
        return
    table = Table("queue", *STATES)
    for queue, by_state in sorted(counts.items()):
        table.add_row(queue, *(str(by_state[s]) for s in STATES))
    out.print(table)
