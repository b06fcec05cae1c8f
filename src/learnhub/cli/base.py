"""The ``learnhub`` command's frame: the group, shared options, and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

import learnhub
from learnhub import config as config_module
from learnhub.errors import ConfigError, LearnhubError

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


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
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


def open_hub(db: str | None, **overrides: Any) -> learnhub.Hub:
    config = config_module.load({"db": db, **overrides})
    return learnhub.open(config=config)


def name_values(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} must be NAME=VALUE", param_hint=option)
        pairs[name] = value
    return pairs


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


def main() -> None:
    cli(prog_name="learnhub")


def load_app(app: str) -> learnhub.Hub:
    """The Hub named by ``package.module:attribute``, with the tasks registered on it."""
    import importlib

    module_name, sep, attribute = app.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"--app {app!r} must be package.module:attribute, e.g. myapp.tasks:hub")
    sys.path.insert(0, "")  # like python -m: modules in the working directory are found
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for --app: {exc}") from exc
    hub = getattr(module, attribute, None)
    if not isinstance(hub, learnhub.Hub):
        raise ConfigError(
            f"--app {app!r}: {module_name}.{attribute} is {type(hub).__name__}, not a Hub "
            "(define it with hub = learnhub.open(...))"
        )
    return hub
