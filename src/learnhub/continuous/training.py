"""Trainers, the planner, inference (stub: helper F implements it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from learnhub.hub import Hub


class Continuous:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
