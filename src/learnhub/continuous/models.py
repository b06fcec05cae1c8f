"""Models of batches (stub: helper F implements it)."""

from __future__ import annotations

from learnhub.learning import Learning
from learnhub.store import Store


class Models:
    def __init__(self, store: Store, learning: Learning) -> None:
        self.store = store
        self.learning = learning
