"""The ``learnhub`` command: a thin door onto the Hub API, one module per area."""

from learnhub.cli import (  # noqa: F401  (they register commands)
    daemon,
    embed,
    examples,
    jobs,
    learning,
    peers,
    samples,
    service,
    sharing,
    train,
)
from learnhub.cli.base import cli, main

__all__ = ["cli", "main"]
