"""The hub as a system service: the systemd user unit shipped in the package, and the node id."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import click

from learnhub.cli.base import cli, common_options, open_hub, out
from learnhub.errors import InvalidInput

UNIT_NAME = "learnhub.service"


def unit_text(serve_args: list[str]) -> str:
    """The shipped unit, starting this installation's learnhub (this Python, this venv)."""
    template = resources.files("learnhub").joinpath("data", UNIT_NAME).read_text()
    command = [sys.executable, "-m", "learnhub", "serve", *serve_args]
    for word in command:
        if any(c in word for c in "\n\"'\\%$"):
            raise InvalidInput(
                f"{word!r} cannot go into a systemd ExecStart line as is; "
                "use paths without quotes, backslashes, % or $"
            )
    # systemd splits ExecStart like a shell: quote words with spaces.
    return template.replace("@EXEC_START@", " ".join(_quote(w) for w in command))


def _quote(word: str) -> str:
    return f'"{word}"' if any(c.isspace() for c in word) else word


def user_unit_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user" / UNIT_NAME


def _serve_args(db: str | None, socket_path: str | None, extra: tuple[str, ...]) -> list[str]:
    args = []
    if db:
        args += ["--db", db]
    if socket_path:
        args += ["--socket", str(Path(socket_path).expanduser().absolute())]
    if "--detach" in extra:
        raise InvalidInput("systemd runs the hub in the foreground: drop --detach")
    return args + list(extra)


@cli.group()
def service() -> None:
    """The systemd user unit that starts the hub at login (or at boot, with lingering)."""


@service.command()
@common_options
@click.option("--socket", "socket_path", metavar="PATH", help="Socket the service serves on.")
@click.argument("serve_args", nargs=-1, metavar="[-- SERVE OPTIONS]")
def unit(db: str | None, socket_path: str | None, serve_args: tuple[str, ...]) -> None:
    """Print the unit file, e.g. to install it by hand or adapt it for a system hub."""
    click.echo(unit_text(_serve_args(db, socket_path, serve_args)), nl=False)


@service.command()
@common_options
@click.option("--user", "user", is_flag=True, help="Install for this user (required).")
@click.option("--force", is_flag=True, help="Replace an installed unit that differs.")
@click.option("--socket", "socket_path", metavar="PATH", help="Socket the service serves on.")
@click.argument("serve_args", nargs=-1, metavar="[-- SERVE OPTIONS]")
def install(
    db: str | None, user: bool, force: bool, socket_path: str | None, serve_args: tuple[str, ...]
) -> None:
    """Write the unit to ~/.config/systemd/user/learnhub.service."""
    if not user:
        raise InvalidInput(
            "only --user units are installed; for a system-wide hub print one with "
            "`learnhub service unit -- --socket-mode 0660 --socket-group G`, add User= and "
            "Group=, and copy it to /etc/systemd/system/"
        )
    text = unit_text(_serve_args(db, socket_path, serve_args))
    path = user_unit_path()
    if path.exists() and path.read_text() != text and not force:
        raise InvalidInput(f"{path} exists and differs; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    out.print(f"wrote {path}")
    out.print("start it: systemctl --user daemon-reload && systemctl --user enable --now learnhub")
    out.print('from boot, before login: loginctl enable-linger "$USER"')


@cli.group()
def node() -> None:
    """This hub's identity among hubs."""


@node.command(name="id")
@common_options
def node_id(db: str | None) -> None:
    """Print this hub's node id (made once per store, shared by every process on it)."""
    with open_hub(db) as hub:
        click.echo(hub.node_id)
