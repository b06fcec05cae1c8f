"""The ``learnhub`` command: a thin door onto the Hub API, one module per area."""

from learnhub.cli import daemon, embed, jobs, learning, samples, train  # noqa: F401  (they register commands)
from learnhub.cli.base import cli, main

__all__ = ["cli", "main"]
