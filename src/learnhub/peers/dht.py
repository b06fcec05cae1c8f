"""DHT discovery (Kademlia, the ``kademlia`` package, over UDP): who has which key.

The DHT holds one small record per learning key, never the blobs: the providers of the key,
each as ``[node_id, link address, version, metric, time_ns]``, best metric first, cut to stay
under ``MAX_RECORD`` bytes (the package refuses larger values). A hub writes its own entry
into the record (read, merge, write), when it joins (the keys it learned while offline), when
it stores a new version, and every ``republish_interval``. The blobs travel over the peer link.

Two hubs that merge the same record at once each write a record without the other's entry;
kademlia's nodes keep the last write they receive, so one entry was lost until the next
republish. A hub's DHT node therefore *merges* a record it is asked to store with the one it
holds (``MergingStorage``, entries by node, the newest of each): writes in any order leave
every node with both entries.

Keys a restrictive export policy keeps to named peers (``allow_nodes`` / ``allow_addresses``,
or a ``deny_keys`` match) are never published: the DHT is readable by anyone on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from learnhub.errors import ServerError

if TYPE_CHECKING:
    from learnhub.peers.service import PeerService

log = logging.getLogger("learnhub.peers.dht")

MAX_RECORD = 8000
RECORD_PREFIX = "learnhub/1:"


def merge_record(raw: Any, entry: list[Any], limit: int = MAX_RECORD) -> str:
    """The record ``raw`` with ``entry`` replacing its node's old one; best metric first,
    then newest; the worst providers dropped until it fits in ``limit`` bytes."""
    providers: list[list[Any]] = []
    if isinstance(raw, str | bytes):
        try:
            data = json.loads(raw)
            providers = [p for p in data.get("p", []) if isinstance(p, list) and len(p) == 5]
        except (ValueError, AttributeError):
            providers = []  # a garbage record is replaced, not trusted
    providers = [p for p in providers if p[0] != entry[0]] + [entry]
    providers.sort(key=lambda p: (_num(p[3]), -_num(p[4])))
    while True:
        text = json.dumps({"p": providers}, separators=(",", ":"))
        if len(text.encode()) < limit or len(providers) <= 1:
            return text
        providers.pop()


def merge_records(held: Any, incoming: Any, limit: int = MAX_RECORD) -> Any:
    """What a node keeps when asked to store ``incoming`` over ``held``: both records'
    providers, one entry per node (the newer of two, by time; ``incoming`` on a tie), best
    first, cut to ``limit``. A value that is not a provider record replaces, as in kademlia."""
    new = _providers(incoming)
    old = _providers(held)
    if new is None or old is None:
        return incoming
    latest: dict[Any, list[Any]] = {}
    for p in old + new:
        if p[0] not in latest or _num(p[4]) >= _num(latest[p[0]][4]):
            latest[p[0]] = p
    providers = sorted(latest.values(), key=lambda p: (_num(p[3]), -_num(p[4])))
    while True:
        text = json.dumps({"p": providers}, separators=(",", ":"))
        if len(text.encode()) < limit or len(providers) <= 1:
            return text
        providers.pop()


def _providers(raw: Any) -> list[list[Any]] | None:
    """A record's providers; None if ``raw`` is no provider record."""
    if not isinstance(raw, str | bytes):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("p"), list):
        return None
    return [p for p in data["p"] if isinstance(p, list) and len(p) == 5]


def merging_storage() -> Any:
    """A kademlia storage that merges provider records instead of replacing them."""
    from kademlia.storage import ForgetfulStorage

    class MergingStorage(ForgetfulStorage):
        def __setitem__(self, key: bytes, value: Any) -> None:
            held = self.data.get(key)
            if held is not None:
                value = merge_records(held[1], value)
            super().__setitem__(key, value)

    return MergingStorage()


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("inf")


def parse_record(raw: Any) -> list[list[Any]]:
    if not isinstance(raw, str | bytes):
        return []
    try:
        data = json.loads(raw)
        return [p for p in data.get("p", []) if isinstance(p, list) and len(p) == 5]
    except (ValueError, AttributeError):
        return []


class Discovery:
    """One hub's DHT node, on the service's loop."""

    def __init__(self, service: PeerService) -> None:
        self.service = service
        self.server: Any = None
        self.port: int | None = None
        self.joined = asyncio.Event()
        self.published = 0

    async def start(self) -> None:
        try:
            from kademlia.network import Server
        except ImportError as exc:
            raise ServerError(
                "DHT discovery needs the kademlia package: pip install 'learnhub[p2p]'"
            ) from exc
        host, port = self.service.config.dht_address
        self.server = Server(storage=merging_storage())
        try:
            await self.server.listen(port, interface=host)
        except OSError as exc:
            raise ServerError(f"cannot listen for the DHT on UDP {host}:{port}: {exc}") from exc
        self.port = self.server.transport.get_extra_info("sockname")[1]
        self.service._spawn(self._join())

    async def _join(self) -> None:
        nodes = self.service.config.dht_nodes()
        if nodes:
            try:
                await self.server.bootstrap(nodes)
            except Exception as exc:  # an unreachable bootstrap node: try again on republish
                log.warning("joining the DHT through %s: %s", nodes, exc)
        self.joined.set()
        interval = self.service.config.republish_interval
        while True:
            # On joining: the keys learned while offline; then a republish every interval.
            await self.republish()
            await asyncio.sleep(interval)
            if nodes and not self.server.protocol.router.find_neighbors(self.server.node):
                await self.server.bootstrap(nodes)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _publishable(self, key: str) -> bool:
        export = self.service.config.export
        if export.allow_nodes or export.allow_addresses:
            return False
        return export.refuses(None, None, key) is None

    async def republish(self) -> int:
        after, count = "", 0
        while True:
            rows = await asyncio.to_thread(self.service.table.digest, after, 500)
            for row in rows:
                count += await self._publish(row)
            if len(rows) < 500:
                return count
            after = rows[-1]["key"]

    async def announce(self, rows: list[dict[str, Any]]) -> None:
        """New versions: publish each key's best version now."""
        await self.joined.wait()
        for key in {r["key"] for r in rows}:
            best = await asyncio.to_thread(self.service.hub.learning.best, key)
            if best is not None:
                row = {
                    "key": key,
                    "version": best.version,
                    "metric": best.metric,
                    "created_ns": int(best.updated.timestamp() * 1e9),
                }
                await self._publish(row)

    async def _publish(self, row: dict[str, Any]) -> int:
        key = row["key"]
        if not self._publishable(key):
            return 0
        service = self.service
        entry = [
            service.identity.node_id,
            service.advertise_for_dht(),
            row["version"],
            float(row["metric"]),
            int(row["created_ns"]),
        ]
        try:
            current = await self.server.get(RECORD_PREFIX + key)
            await self.server.set(RECORD_PREFIX + key, merge_record(current, entry))
        except Exception as exc:  # the DHT is best effort: the next republish tries again
            log.info("publishing %r in the DHT: %s", key, exc)
            return 0
        self.published += 1
        return 1

    async def providers(self, key: str, deadline: float) -> list[str]:
        """Link addresses of the key's providers (best first), within the deadline."""
        budget = deadline - time.monotonic()
        if budget <= 0:
            return []
        try:
            raw = await asyncio.wait_for(self.server.get(RECORD_PREFIX + key), budget)
        except (TimeoutError, Exception) as exc:
            log.info("DHT lookup of %r: %r", key, exc)
            return []
        me = self.service.identity.node_id
        return [p[1] for p in parse_record(raw) if p[0] != me and isinstance(p[1], str)]
