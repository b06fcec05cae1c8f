"""Long-running commands: serve, and the demo that runs a server for a moment."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from learnhub import config as config_module
from learnhub.cli.base import cli, common_options, open_hub, out
from learnhub.cli.jobs import app_hub, app_option
from learnhub.hub import BUILTIN_QUEUE


@cli.command()
@common_options
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="UNIX socket to serve on [default: learnhub.sock in the user runtime dir].",
)
@click.option("--listen", metavar="HOST:PORT", help="Also serve on TCP (needs --token).")
@click.option("--token", metavar="T", help="Token TCP clients must send with AUTH.")
@app_option
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Jobs run at once in this process (0: none). Without --app, only learnhub's own.",
)
def serve(
    db: str | None,
    socket_path: str | None,
    listen: str | None,
    token: str | None,
    app: str | None,
    workers: int,
) -> None:
    """Run the hub daemon: the Redis protocol on a UNIX socket (mode 0600), and optionally on
    TCP, with job workers in-process. Stops cleanly on SIGTERM or Ctrl-C."""
    from learnhub.server.app import Server
    from learnhub.server.app import serve as run

    config = config_module.load(
        {
            "db": db,
            "server.socket": socket_path,
            "server.listen": listen,
            "server.token": token,
            "jobs.app": app,
        }
    )
    Server.check_listen(config.server.listen, config.server.token)  # before opening the store
    with app_hub(db, config.jobs.app) as hub:
        # Without the app's tasks, running its jobs would only fail them: keep to our own.
        queues = None if config.jobs.app else [BUILTIN_QUEUE]
        worker = hub.worker(queues, workers) if workers else None
        run(hub, config.socket_path, config.server.listen, config.server.token, worker)


@cli.command()
@common_options
def demo(db: str | None) -> None:
    """Start a hub, store and look up learning data through it, and show what happened."""
    from learnhub.demo import run

    with open_hub(db) as hub, tempfile.TemporaryDirectory(prefix="learnhub-demo-") as tmp:
        run(hub, Path(tmp) / "hub.sock", out)
