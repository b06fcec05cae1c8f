"""The ``learnhub`` command: a thin door onto the Hub API."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import learnhub
from learnhub import config as config_module
from learnhub.errors import InvalidInput, LearnhubError
from learnhub.learning import ArtifactVersion

out = Console()
err = Console(stderr=True)


class _Group(click.Group):
    """Turns every error into one clear line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("debug"):
                raise
            if isinstance(exc, click.UsageError):
                hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
                _fail(exc.format_message() + hint, exc.exit_code)
            if isinstance(exc, click.ClickException):
                _fail(exc.format_message(), exc.exit_code)
            if isinstance(exc, LearnhubError | OSError):
                _fail(str(exc), 1)
            _fail(
                f"internal error {type(exc).__name__}: {exc} "
                "(a bug: rerun with --debug for the traceback and report it)",
                1,
            )


def _fail(message: str, code: int) -> NoReturn:
    # soft_wrap: one line even when longer than the (default 80-column) console
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every subcommand takes."""

    def set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta["debug"] = True
            logging.getLogger("learnhub").setLevel(logging.DEBUG)

    command = click.option(
        "--db",
        metavar="URL",
        help="Store URL: sqlite:///PATH or postgresql://... "
        "[default: from config, else hub.db in the user data dir]",
    )(command)
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=set_debug,
        is_eager=True,
        help="Show tracebacks and debug logs.",
    )(command)


def _open(db: str | None, **overrides: Any) -> learnhub.Hub:
    config = config_module.load({"db": db, **overrides})
    return learnhub.open(config=config)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} must be NAME=VALUE", param_hint=option)
        pairs[name] = value
    return pairs


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(learnhub.__version__, "-V", "--version", prog_name="learnhub")
def cli() -> None:
    """learnhub keeps, grows and shares what machine-learning programs learn.

    Configuration comes from ./learnhub.toml or ~/.config/learnhub/config.toml, then
    LEARNHUB_* environment variables (LEARNHUB_DB, LEARNHUB_SERVER_SOCKET, ...), then flags.
    """
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("learnhub").setLevel(logging.INFO)


@cli.command()
def version() -> None:
    """Print learnhub's version."""
    out.print(learnhub.__version__)


@cli.command()
@_common
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="UNIX socket to serve on [default: learnhub.sock in the user runtime dir].",
)
@click.option("--listen", metavar="HOST:PORT", help="Also serve on TCP (needs --token).")
@click.option("--token", metavar="T", help="Token TCP clients must send with AUTH.")
def serve(db: str | None, socket_path: str | None, listen: str | None, token: str | None) -> None:
    """Run the hub daemon: the Redis protocol on a UNIX socket (mode 0600), and optionally on
    TCP. Stops cleanly on SIGTERM or Ctrl-C."""
    from learnhub.server.app import Server
    from learnhub.server.app import serve as run

    config = config_module.load(
        {"db": db, "server.socket": socket_path, "server.listen": listen, "server.token": token}
    )
    Server.check_listen(config.server.listen, config.server.token)  # before opening the store
    with learnhub.open(config=config) as hub:
        run(hub, config.socket_path, config.server.listen, config.server.token)


@cli.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(db: str | None, as_json: bool) -> None:
    """Show the hub: its store, node id, what it holds, and whether a server is up."""
    with _open(db) as hub:
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
@_common
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lookup(
    db: str | None, key: str, where: tuple[str, ...], out_dir: Path | None, as_json: bool
) -> None:
    """Show the best version of KEY (lowest metric; newest on ties)."""
    with _open(db) as hub:
        artifact = hub.learning.lookup(key, _pairs(where, "--where"))
    if artifact is None:
        raise InvalidInput(f"no learning data for {key!r}" + (" matching --where" if where else ""))
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in artifact.files.items():
            (out_dir / name).write_bytes(data)
    if as_json:
        click.echo(json.dumps(_version_dict(artifact)))
        return
    _print_versions([artifact], f"best version of {key}")
    if out_dir:
        out.print(f"wrote {len(artifact.files)} file(s) to {out_dir}")


@cli.command()
@_common
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
    with _open(db) as hub:
        version = hub.learning.store(key, blobs, metric, _pairs(attr, "--attr"), base)
        best = hub.learning.best(key)
    assert best is not None
    if as_json:
        click.echo(json.dumps({"key": key, "version": version, "best": best.version}))
        return
    out.print(
        f"stored {key} version {version}"
        + (" (now the best)" if best.version == version else f" (best stays {best.version})")
    )


@cli.command()
@_common
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions(db: str | None, key: str, as_json: bool) -> None:
    """List every version of KEY, newest first."""
    with _open(db) as hub:
        found = hub.learning.versions(key)
    if as_json:
        click.echo(json.dumps([_version_dict(v) for v in found]))
        return
    _print_versions(found, f"versions of {key}")


@cli.command(name="ls")
@_common
@click.argument("prefix", default="")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(db: str | None, prefix: str, as_json: bool) -> None:
    """List the keys that have learning data (optionally only those starting with PREFIX)."""
    with _open(db) as hub:
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


@cli.command()
@_common
def demo(db: str | None) -> None:
    """Start a hub, store and look up learning data through it, and show what happened."""
    from learnhub.demo import run

    with _open(db) as hub, tempfile.TemporaryDirectory(prefix="learnhub-demo-") as tmp:
        run(hub, Path(tmp) / "hub.sock", out)


def main() -> None:
    cli(prog_name="learnhub")
