"""What the peer link keeps in the store: known peers, trusted keys, wants, announcements."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from learnhub.store import Store


@dataclass(frozen=True)
class Announcement:
    """The last version a peer announced of a key."""

    node_id: str
    key: str
    version: str
    metric: float
    announced_ns: int
    received_ns: int
    address: str | None

    @property
    def announced(self) -> datetime:
        return datetime.fromtimestamp(self.announced_ns / 1e9, tz=UTC)


class PeerTable:
    """Thin, synchronous access to the peers tables (the service calls it from threads)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- peers ----------------------------------------------------------------------------

    def peers(self) -> list[dict[str, Any]]:
        with self.store.transaction(readonly=True) as tx:
            return tx.all("peers_all")

    def add(self, address: str, source: str = "added") -> None:
        with self.store.transaction() as tx:
            tx.execute("peer_add", address=address, source=source, now_ns=time.time_ns())

    def learn(self, address: str, node_id: str, source: str = "learned") -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "peer_learn", address=address, node_id=node_id, source=source,
                now_ns=time.time_ns(),
            )  # fmt: skip

    def connected(self, address: str, node_id: str, outbound: bool) -> None:
        """A peer just authenticated: known (learned) at ``address``, and, for a connection
        this hub made, seen reachable there. Bookkeeping, so not synced: a commit that
        waited for the disk cost every fetch (a connection of its own) a few ms, and one
        lost to a power cut is made again on the next connection."""
        now = time.time_ns()
        with self.store.transaction(synced=False) as tx:
            tx.execute("peer_learn", address=address, node_id=node_id, source="learned", now_ns=now)
            if outbound:
                tx.execute("peer_seen", address=address, node_id=node_id, now_ns=now)

    def remove(self, address: str) -> bool:
        with self.store.transaction() as tx:
            return tx.execute("peer_remove", address=address) > 0

    def seen(self, address: str, node_id: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("peer_seen", address=address, node_id=node_id, now_ns=time.time_ns())

    def exchanged(self, address: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("peer_exchanged", address=address, now_ns=time.time_ns())

    def failed(self, address: str, error: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("peer_failed", address=address, error=error[:500])

    # --- trust ----------------------------------------------------------------------------

    def trusted(self) -> dict[str, str]:
        with self.store.transaction(readonly=True) as tx:
            return {r["node_id"]: r["public_key"] for r in tx.all("peer_trust_all")}

    def trust(self, node_id: str, public_key: str) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "peer_trust_put", node_id=node_id, public_key=public_key.lower(),
                now_ns=time.time_ns(),
            )  # fmt: skip

    def untrust(self, node_id: str) -> bool:
        with self.store.transaction() as tx:
            return tx.execute("peer_trust_remove", node_id=node_id) > 0

    # --- wants ----------------------------------------------------------------------------

    def want(self, node_id: str, key: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("peer_want_put", node_id=node_id, key=key, now_ns=time.time_ns())

    def wanting(self, key: str) -> list[str]:
        with self.store.transaction(readonly=True) as tx:
            return [r["node_id"] for r in tx.all("peer_wants_for", key=key)]

    def want_counts(self) -> dict[str, int]:
        with self.store.transaction(readonly=True) as tx:
            return {r["node_id"]: r["wants"] for r in tx.all("peer_want_counts")}

    def key_wants(self) -> dict[str, int]:
        """How many peers asked for each key."""
        with self.store.transaction(readonly=True) as tx:
            return {r["key"]: r["wants"] for r in tx.all("peer_wants_by_key")}

    # --- announcements --------------------------------------------------------------------

    def announce(self, entries: list[Announcement]) -> None:
        with self.store.transaction() as tx:
            for a in entries:
                tx.execute(
                    "announcement_put", node_id=a.node_id, key=a.key, version=a.version,
                    metric=a.metric, announced_ns=a.announced_ns, received_ns=a.received_ns,
                    address=a.address,
                )  # fmt: skip

    def announcements(self, key: str | None = None) -> list[Announcement]:
        with self.store.transaction(readonly=True) as tx:
            rows = (
                tx.all("announcements_for", key=key)
                if key is not None
                else tx.all("announcements_all")
            )
        return [
            Announcement(
                r["node_id"],
                r.get("key", key),
                r["version"],
                r["metric"],
                r["announced_ns"],
                r["received_ns"],
                r["address"],
            )  # fmt: skip
            for r in rows
        ]

    def announcement_counts(self) -> dict[str, dict[str, int]]:
        with self.store.transaction(readonly=True) as tx:
            return {
                r["node_id"]: {"keys": r["keys"], "last_ns": r["last_ns"]}
                for r in tx.all("announcement_counts")
            }

    # --- this hub's versions --------------------------------------------------------------

    def last_seq(self) -> int:
        with self.store.transaction(readonly=True) as tx:
            row = tx.one("peers_last_seq")
        return int(row["seq"]) if row else 0

    def new_versions(self, after: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.store.transaction(readonly=True) as tx:
            return tx.all("peers_new_versions", after=after, limit=limit)

    def file_hashes(self, key: str, version: str) -> list[dict[str, Any]]:
        with self.store.transaction(readonly=True) as tx:
            return tx.all("peers_file_hashes", key=key, version=version)

    def digest(self, after: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        with self.store.transaction(readonly=True) as tx:
            return tx.all("peers_digest", after=after, limit=limit)
