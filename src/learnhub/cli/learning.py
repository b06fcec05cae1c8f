"""Learning-data commands: info, lookup, store, versions, combinations, ls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

import learnhub
from learnhub.cli.base import cli, common_options, name_values, open_hub, out
from learnhub.errors import InvalidInput, LearnhubError
from learnhub.learning import ArtifactVersion, Combination


def _version_dict(v: ArtifactVersion) -> dict[str, Any]:
    return {
        "key": v.key,
        "version": v.version,
        "metric": v.metric,
        "attrs": v.attrs,
        "origin": v.origin,
        "updated": v.updated.isoformat(),
        "base": v.base,
        "files": v.sizes,
    }


@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(db: str | None, as_json: bool) -> None:
    """Show the hub: its store, node id, what it holds, and whether a server is up."""
    with open_hub(db) as hub:
        counts = hub.learning.counts()
        socket_path = hub.config.socket_path
        try:
            with learnhub.connect(socket=socket_path) as client:
                serving = client.ping()
        except LearnhubError:
            serving = False
        data = {
            "version": learnhub.__version__,
            "node_id": hub.node_id,
            "store": repr(hub.store).removeprefix("<Store ").removesuffix(">"),
            "dialect": hub.store.dialect,
            "socket": str(socket_path),
            "serving": serving,
            **{f"learning_{k}": v for k, v in counts.items()},
        }
    if as_json:
        click.echo(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for name, value in data.items():
        table.add_row(f"[bold]{name}[/bold]", str(value))
    out.print(table)


@cli.command()
@common_options
@click.argument("key")
@click.option(
    "--where",
    "-w",
    multiple=True,
    metavar="NAME=VALUE",
    help="Only versions whose attribute NAME is VALUE (repeatable).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the version's files into this directory.",
)
@click.option(
    "--local", is_flag=True, help="Only this hub's store: never ask the upstream hub or peers."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lookup(
    db: str | None,
    key: str,
    where: tuple[str, ...],
    out_dir: Path | None,
    local: bool,
    as_json: bool,
) -> None:
    """Show the current version of KEY (under the default policy, the best: lowest metric,
    newest on ties); its version is the token to pass to `store --base`. On a miss, unless
    --local, the upstream hub is asked (within learning.lookup_timeout)."""
    with open_hub(db) as hub:
        artifact = hub.learning.lookup(key, name_values(where, "--where"), local=local)
    if artifact is None:
        raise InvalidInput(f"no learning data for {key!r}" + (" matching --where" if where else ""))
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in artifact.files.items():
            (out_dir / name).write_bytes(data)
    if as_json:
        click.echo(json.dumps(_version_dict(artifact)))
        return
    _print_versions([artifact], f"current version of {key}")
    if out_dir:
        out.print(f"wrote {len(artifact.files)} file(s) to {out_dir}")


@cli.command()
@common_options
@click.argument("key")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--metric",
    "-m",
    type=float,
    required=True,
    help="Quality of this learning; lower is better (e.g. an error rate).",
)
@click.option(
    "--attr",
    "-a",
    multiple=True,
    metavar="NAME=VALUE",
    help="An attribute of this version, e.g. mode=fast (repeatable).",
)
@click.option("--base", metavar="VERSION", help="The version this learning started from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def store(
    db: str | None,
    key: str,
    files: tuple[Path, ...],
    metric: float,
    attr: tuple[str, ...],
    base: str | None,
    as_json: bool,
) -> None:
    """Store FILES as a new version of KEY's learning data."""
    blobs = {path.name: path.read_bytes() for path in files}
    if len(blobs) != len(files):
        raise InvalidInput("two FILES have the same name; each file is stored under its name")
    with open_hub(db) as hub:
        stored = hub.learning.put(key, blobs, metric, name_values(attr, "--attr"), base)
        what = "the best" if hub.learning.policies.rule_for(key).policy == "best" else "current"
    combined = stored.combination
    if as_json:
        click.echo(
            json.dumps(
                {
                    "key": key,
                    "version": stored.version,
                    "best": stored.current,  # the name it had before policies
                    "current": stored.current,
                    "combination": _combination_dict(combined) if combined else None,
                }
            )
        )
        return
    out.print(
        f"stored {key} version {stored.version}"
        + (
            f" (now {what})"
            if stored.current == stored.version
            else f" ({what.removeprefix('the ')} stays {stored.current})"
        )
    )
    if combined:
        out.print(
            f"the key had moved on since {combined.base or 'a miss'}: {combined.policy} "
            f"combined current {combined.current[:12]} with it into {combined.result[:12]}"
        )


@cli.command()
@common_options
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions(db: str | None, key: str, as_json: bool) -> None:
    """List every version of KEY, newest first."""
    with open_hub(db) as hub:
        found = hub.learning.versions(key)
    if as_json:
        click.echo(json.dumps([_version_dict(v) for v in found]))
        return
    _print_versions(found, f"versions of {key}")


@cli.command()
@common_options
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def combinations(db: str | None, key: str, as_json: bool) -> None:
    """List how concurrent stores of KEY were combined, newest first."""
    with open_hub(db) as hub:
        found = hub.learning.combinations(key)
    if as_json:
        click.echo(json.dumps([_combination_dict(c) for c in found]))
        return
    table = Table("when", "policy", "base", "current", "incoming", "result", title=key)
    for c in found:
        table.add_row(
            c.created.strftime("%Y-%m-%d %H:%M:%S"),
            c.policy + (f" ({c.detail})" if c.detail else ""),
            (c.base or "-")[:12],
            c.current[:12],
            c.incoming[:12],
            c.result[:12],
        )
    out.print(table)


def _combination_dict(c: Combination) -> dict[str, Any]:
    return {
        "policy": c.policy,
        "base": c.base,
        "current": c.current,
        "incoming": c.incoming,
        "result": c.result,
        "detail": c.detail,
        "created": c.created.isoformat(),
    }


@cli.command(name="ls")
@common_options
@click.argument("prefix", default="")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(db: str | None, prefix: str, as_json: bool) -> None:
    """List the keys that have learning data (optionally only those starting with PREFIX)."""
    with open_hub(db) as hub:
        keys = hub.learning.list(prefix)
    if as_json:
        click.echo(json.dumps([{**k, "updated": k["updated"].isoformat()} for k in keys]))
        return
    table = Table("key", "versions", "best metric", "updated")
    for k in keys:
        table.add_row(
            k["key"],
            str(k["versions"]),
            f"{k['best_metric']:g}",
            k["updated"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


def _print_versions(found: list[Any], title: str) -> None:
    table = Table("version", "metric", "attrs", "files", "origin", "updated", title=title)
    for v in found:
        table.add_row(
            v.version[:12],
            f"{v.metric:g}",
            " ".join(f"{k}={val}" for k, val in v.attrs.items()),
            " ".join(f"{n} ({s} B)" for n, s in v.sizes.items()),
            v.origin,
            v.updated.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)
