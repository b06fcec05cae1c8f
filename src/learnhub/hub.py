"""The Hub: opens the store and wires every part onto it."""

from __future__ import annotations

import uuid
from types import TracebackType

from learnhub import config as config_module
from learnhub.config import Config
from learnhub.learning import Learning
from learnhub.store import Store, open_store


class Hub:
    """One hub per machine: ``hub.learning`` and, as they land, the other parts."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.node_id = _node_id(store)
        self.learning = Learning(store, self.node_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Hub {self.node_id} on {self.store!r}>"


def open(url: str | None = None, *, config: Config | None = None) -> Hub:  # noqa: A001
    """Open the hub on ``url`` (default: the configured store, else SQLite in the data dir)."""
    config = config or config_module.load()
    return Hub(open_store(url or config.store_url), config)


def _node_id(store: Store) -> str:
    """This database's node id: made once, kept for good, shared by every process on it."""
    with store.transaction() as tx:
        tx.execute("init_meta", name="node_id", value=uuid.uuid4().hex[:16])
        row = tx.one("get_meta", name="node_id")
    assert row is not None
    return row["value"]
