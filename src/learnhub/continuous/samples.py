"""Time-series samples in columnar chunks (stub: helper E implements it)."""

from __future__ import annotations

from learnhub.store import Store


class Samples:
    def __init__(self, store: Store) -> None:
        self.store = store
