"""The store: one interface over SQLite (default) and PostgreSQL, chosen by URL.

All SQL lives in ``queries/<dialect>.sql`` (named queries) and ``migrations/<dialect>/``.
"""

from learnhub.store.base import Store, Tx
from learnhub.store.open import open_store

__all__ = ["Store", "Tx", "open_store"]
