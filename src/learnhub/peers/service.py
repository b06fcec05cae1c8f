"""The peer service: one hub's side of the hub-to-hub link.

It runs an asyncio loop on a thread of its own (so it fits beside ``learnhub serve`` or any
program holding a Hub) with:

* the listener (``peers.listen``) serving ``learnhub.peers.protocol``;
* the *watcher*, which notices new versions in the store (from any process on it) and offers
  them to the peers that asked for their key (PEER.WANT), and announces them in the DHT;
* the *digest exchange*, which reads each peer's digest (key → best version, metric) into the
  table of announcements and fetches what beats this hub's version by more than ``margin``;
* ``source``, the ask-elsewhere hook of ``hub.learning``: a lookup miss asks every peer
  (PEER.WANT, which also asks to be told of later versions), then fetches the best answer.

A fetch streams the files in chunks over a connection of its own, checks every file's hash
and the version (a hash of the content, ``learning.artifacts.content_version``), and only
then stores the artifact, in one transaction: a transfer cut short or corrupted leaves
nothing behind and is tried again from the next provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import mmap
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from learnhub.errors import ServerError
from learnhub.learning.artifacts import Artifact, VerifiedArtifact, content_version
from learnhub.peers.config import PeersConfig, address, parse_trust
from learnhub.peers.identity import (
    PROTOCOL,
    AuthError,
    Identity,
    new_nonce,
    prove,
    transcript,
    verify,
)
from learnhub.peers.offline import OfflineTraining
from learnhub.peers.protocol import PeerProtocol
from learnhub.peers.table import Announcement, PeerTable
from learnhub.peers.wire import Conn, PeerError

if TYPE_CHECKING:
    from learnhub.hub import Hub

log = logging.getLogger("learnhub.peers")

# After the first peer answers a lookup, how long the others get to offer something better.
ANSWER_WINDOW_S = 0.05
PIPELINE_DEPTH = 8
WATCH_LOOKBACK = 100
# Background fetches (offers, announcements, digests) at once; lookups do not wait for them.
BACKGROUND_FETCHES = 4


# Files at least this large are received into huge pages (see receive_buffer).
HUGE_PAGES_FROM = 4 * 1024 * 1024


def receive_buffer(size: int) -> mmap.mmap:
    """Memory for a file being received: a private anonymous map, zero without a pass of
    memset over it, and in huge pages for a large file where the system has them: the first
    touch of each 4 KiB page costs a fault, which made up a third of a 50 MB fetch's time
    (20 ms of faults here; 3 ms in 2 MiB pages)."""
    buf = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if size >= HUGE_PAGES_FROM and hasattr(mmap, "MADV_HUGEPAGE"):
        with contextlib.suppress(OSError):  # not a failure: the pages are just smaller
            buf.madvise(mmap.MADV_HUGEPAGE)
    return buf


class ReceiveBuffers:
    """Receive buffers of large files, kept for later fetches.

    Fresh memory costs a fault per page on first touch, and in a VM whose host backs guest
    memory lazily far more: a 50 MB map of fresh huge pages took 100-120 ms to fill here,
    a reused one 3 ms (a 50 MB fetch takes ~40 ms). So a map is lent to a fetch, and
    lent again once nothing refers to it any more: the artifact whose files were views of
    it is gone (CPython's reference count says so exactly; a view keeps its map alive). At
    most ``KEEP`` maps and ``KEEP_BYTES`` are kept; a map is reused for a file of at least
    half its size.
    """

    KEEP = 2
    KEEP_BYTES = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._kept: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> mmap.mmap:
        if size < HUGE_PAGES_FROM:
            return receive_buffer(size)
        with self._lock:
            kept = self._kept
            # Idle: referred to by the list and by getrefcount's argument only.
            idle = [i for i in range(len(kept)) if sys.getrefcount(kept[i]) == 2]
            for i in idle:
                if size <= len(kept[i]) <= 2 * size:
                    return kept[i]
            buf = receive_buffer(size)
            if len(kept) >= self.KEEP and idle:
                del kept[idle[0]]  # an idle map of the wrong size makes room
            if len(kept) < self.KEEP and sum(map(len, kept)) + len(buf) <= self.KEEP_BYTES:
                kept.append(buf)
            return buf


class Link:
    """An authenticated outbound connection to a peer."""

    def __init__(self, address: str, conn: Conn, node_id: str) -> None:
        self.address = address
        self.conn = conn
        self.node_id = node_id

    async def call(self, *args: Any) -> Any:
        async with self.conn.lock:
            try:
                return await self.conn.call(*args)
            except (asyncio.CancelledError, TimeoutError):
                # Its reply may still come: the link would then answer the next call with
                # it. A new connection is made on next use instead.
                self.conn.close()
                raise


class PeerSource:
    """The peers as a source of ``hub.learning.elsewhere`` (see learning/elsewhere.py)."""

    name = "peers"

    def __init__(self, service: PeerService) -> None:
        self.service = service

    def fetch(self, key: str, where: Mapping[str, str], timeout: float) -> Artifact | None:
        return self.service.lookup(key, where, timeout)

    def close(self) -> None:
        pass


class PeerService:
    """See the module docstring. ``start()`` binds and returns once the link listens."""

    def __init__(self, hub: Hub, config: PeersConfig, fault: str | None = None) -> None:
        self.hub = hub
        self.config = config
        self.fault = fault
        self.table = PeerTable(hub.store)
        self.identity = Identity.of(hub.store, hub.node_id)
        self.secret = config.cluster_secret()
        self._config_trust = dict(parse_trust(t) for t in config.trust)
        self.source = PeerSource(self)
        self.port: int | None = None
        self.dht: Any = None
        self.stats = {"fetched": 0, "rejected": 0, "offers_sent": 0, "refused": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: dict[str, Link] = {}
        self._link_locks: dict[str, asyncio.Lock] = {}
        self._node_addr: dict[str, str] = {}
        self._fetching: set[tuple[str, str]] = set()
        self._fetch_slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None
        self._protocol = PeerProtocol(self)
        self._buffers = ReceiveBuffers()
        self.offline = OfflineTraining(hub, self.table, config.idle_load, config.idle_batch)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> PeerService:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(self._stopping.wait())  # type: ignore[union-attr]
                loop.run_until_complete(self._shutdown())
                # Work handed to threads (store reads and writes) ends before stop() returns,
                # so the hub's store is not closed under it.
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="learnhub-peers", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        host, port = self.config.listen_address
        try:
            self._server = await asyncio.start_server(
                self._protocol.serve, host, port, limit=1024 * 1024
            )
        except OSError as exc:
            raise ServerError(
                f"cannot listen for peers on {host}:{port}: {exc.strerror}; "
                "choose another peers.listen"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        if self.config.dht is not None:
            from learnhub.peers.dht import Discovery

            self.dht = Discovery(self)
            try:
                await self.dht.start()
            except BaseException:
                self._server.close()
                raise
        self._spawn(self._watch())
        self._spawn(self._digest_loop())
        if config_idle := self.config.idle_load:
            log.info("offline training when the load average is below %s", config_idle)
            self._spawn(self._offline_loop())
        log.info(
            "peer link of node %s listening on %s:%s (%d static peers%s)",
            self.identity.node_id, host, self.port, len(self.config.peers),
            ", DHT on" if self.dht else "",
        )  # fmt: skip

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=30)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.dht is not None:
            self.dht.stop()
        # The sessions closed their streams (served files read ahead): their threads end.
        self._protocol.pool.shutdown(wait=False, cancel_futures=True)
        for link in self._links.values():
            link.conn.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def advertise(self) -> str:
        if self.config.advertise:
            return self.config.advertise
        host, _ = self.config.listen_address
        return address("" if host in ("0.0.0.0", "::") else host, self.port or 0)

    def advertise_for_dht(self) -> str:
        """The link address others can reach: ``advertise``, else the listen address, with
        an unspecified host replaced by the one this machine reaches the DHT from."""
        if self.config.advertise:
            return self.config.advertise
        host, _ = self.config.listen_address
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = "127.0.0.1"
            for node in self.config.dht_nodes()[:1]:
                with (
                    contextlib.suppress(OSError),
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
                ):
                    s.connect(node)
                    host = s.getsockname()[0]
        return address(host, self.port or 0)

    def advertised_address(self, advertise: str, seen_host: str) -> str:
        """Where a peer that connected from ``seen_host`` listens."""
        host, _, port = advertise.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit():
            return address(seen_host, 0)
        return address(host or seen_host, int(port))

    def trusted(self) -> dict[str, str]:
        return {**self.table.trusted(), **self._config_trust}

    # --- policies -------------------------------------------------------------------------

    def import_refuses(self, node: str | None, addr: str | None, key: str, origin: str | None):
        """Why data of ``key`` from ``node`` (made by ``origin``) may not be stored here."""
        policy = self.config.import_
        why = policy.refuses(node, addr, key)
        if why is None and origin and origin != node:
            why = policy.refuses(origin, None, None)
            if why:
                why = f"it was made by {why}"
        return why

    # --- links ----------------------------------------------------------------------------

    def peer_addresses(self) -> list[str]:
        """Every peer to talk to: static ones, then those added, learned or found."""
        known = self.config.static_peers()
        for row in self.table.peers():
            if row["address"] not in known and not row["address"].endswith(":0"):
                known.append(row["address"])
        me = {self.advertise, address("127.0.0.1", self.port or 0)}
        return [a for a in known if a not in me]

    async def _connect(self, addr: str, timeout: float) -> Link:
        """A new authenticated connection (mutual: the peer proves itself first)."""
        host, _, port = addr.rpartition(":")
        conn = await Conn.open(host.strip("[]"), int(port), timeout)
        me = self.identity
        try:
            nonce_c = new_nonce()
            reply = await asyncio.wait_for(
                conn.call("PEER.HELLO", PROTOCOL, me.node_id, me.public_key, nonce_c,
                          self.advertise),
                timeout,
            )  # fmt: skip
            node, pub, nonce_s, sig, mac = (x.decode() for x in reply)
            mine, theirs = (me.node_id, me.public_key, nonce_c), (node, pub, nonce_s)
            verify(node, pub, sig, mac, transcript("server", mine, theirs), self.secret,
                   self.trusted())  # fmt: skip
            signature, my_mac = prove(me, self.secret, transcript("client", mine, theirs))
            await asyncio.wait_for(conn.call("PEER.HELLO", "PROOF", signature, my_mac), timeout)
        except AuthError as exc:
            conn.close()
            log.warning("refused peer at %s: %s", addr, exc)
            raise PeerError(f"peer at {addr} refused: {exc}", "NOAUTH") from exc
        except (TimeoutError, ValueError, TypeError) as exc:
            conn.close()
            raise PeerError(
                f"peer at {addr} did not complete the handshake: {exc!r}", "LINK"
            ) from None
        except PeerError:
            conn.close()
            raise
        self._node_addr[node] = addr
        await asyncio.to_thread(self.table.connected, addr, node, True)
        return Link(addr, conn, node)

    async def link(self, addr: str, timeout: float | None = None) -> Link:
        """The shared connection to ``addr`` (made on first use)."""
        lock = self._link_locks.setdefault(addr, asyncio.Lock())
        async with lock:
            link = self._links.get(addr)
            if link is not None and not link.conn.closed:
                return link
            try:
                link = await self._connect(addr, timeout or self.config.connect_timeout)
            except PeerError as exc:
                await asyncio.to_thread(self.table.failed, addr, str(exc))
                raise
            self._links[addr] = link
            return link

    async def peer_connected(self, node: str, addr: str) -> None:
        self._node_addr[node] = addr
        if not addr.endswith(":0"):
            await asyncio.to_thread(self.table.connected, addr, node, False)

    def address_of(self, node: str) -> str | None:
        if node in self._node_addr:
            return self._node_addr[node]
        for row in self.table.peers():
            if row["node_id"] == node:
                return row["address"]
        return None

    # --- lookups (the ask-elsewhere hook) ---------------------------------------------------

    def lookup(self, key: str, where: Mapping[str, str], timeout: float) -> Artifact | None:
        """Called from a lookup's thread: ask the peers, fetch the best answer."""
        if self._loop is None:
            return None
        try:
            return self.run(self._lookup(key, dict(where), time.monotonic() + timeout), timeout + 1)
        except FutureTimeout:
            return None

    async def _lookup(self, key: str, where: dict[str, str], deadline: float) -> Artifact | None:
        args: list[str] = [key]
        if where:
            args.append("WHERE")
            for name, value in where.items():
                args += [name, value]
        addresses = await asyncio.to_thread(self.peer_addresses)
        # Peers that announced the key (the table of announcements, kept across restarts).
        for known in await asyncio.to_thread(self.table.announcements, key):
            if (
                known.address
                and not known.address.endswith(":0")
                and known.address not in addresses
            ):
                addresses.append(known.address)
        if self.dht is not None:
            for found in await self.dht.providers(key, deadline):
                if found not in addresses:
                    addresses.append(found)
        if not addresses:
            return None

        async def ask(addr: str) -> tuple[str, str, list[Any]] | None:
            try:
                link = await self.link(addr, max(0.05, deadline - time.monotonic()))
                reply = await asyncio.wait_for(
                    link.call("PEER.WANT", *args), max(0.05, deadline - time.monotonic())
                )
            except (PeerError, TimeoutError) as exc:
                log.info("asking %s for %r: %s", addr, key, exc)
                return None
            return None if reply is None else (addr, link.node_id, reply)

        pending = {asyncio.ensure_future(ask(a)) for a in addresses}
        try:
            while pending and time.monotonic() < deadline:
                answers, pending = await self._answers(pending, deadline)
                offers = []
                for addr, node, reply in answers:
                    version, metric, ns, origin = (x.decode() for x in reply)
                    why = self.import_refuses(node, addr, key, origin)
                    if why:
                        log.warning("not importing %r from %s at %s: %s", key, node, addr, why)
                        self.stats["refused"] += 1
                        continue
                    offers.append((float(metric), -int(ns), version, addr, node))
                # Best metric first, then the most recent; a failed provider passes to the next,
                # then to answers that came in meanwhile.
                for _, _, version, addr, node in sorted(offers):
                    try:
                        return await self._fetch_and_keep(addr, node, key, version)
                    except PeerError as exc:
                        log.warning(
                            "fetching %r %s from %s failed: %s", key, version[:12], addr, exc
                        )
            return None
        finally:
            for task in pending:
                task.cancel()

    @staticmethod
    async def _answers(pending: set[asyncio.Future[Any]], deadline: float) -> tuple[list, set]:
        """Hits among the peers' answers: wait for the first, then ``ANSWER_WINDOW_S`` more
        for something better; a peer that never answers costs the deadline at most."""
        answers: list[Any] = []
        first_at: float | None = None
        while pending:
            budget = deadline - time.monotonic()
            if first_at is not None:
                budget = min(budget, first_at + ANSWER_WINDOW_S - time.monotonic())
            if budget <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=budget, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task.result() is not None:
                    answers.append(task.result())
                    first_at = first_at or time.monotonic()
        return answers, pending

    # --- fetching -------------------------------------------------------------------------

    async def _fetch_and_keep(self, addr: str, node: str, key: str, version: str) -> Artifact:
        """A lookup's fetch, stored before it returns: the lookup's own adoption of it then
        finds it stored, and an announcement of the same version heard meanwhile does not
        start a second transfer of it (see ``fetch_and_store``)."""
        mine = (key, version) not in self._fetching
        if mine:
            self._fetching.add((key, version))
        try:
            artifact = await self._fetch(addr, node, key, version)
            await asyncio.to_thread(self._store, artifact)
            return artifact
        finally:
            if mine:
                self._fetching.discard((key, version))

    async def _fetch(self, addr: str, node: str, key: str, version: str) -> Artifact:
        """Fetch and verify one version over a connection of its own; raises PeerError."""
        link = await self._connect(addr, self.config.connect_timeout)
        try:
            return await asyncio.wait_for(
                self._transfer(link, key, version), self.config.fetch_timeout
            )
        except TimeoutError:
            raise PeerError(
                f"fetching from {addr} took over {self.config.fetch_timeout}s", "LINK"
            ) from None
        finally:
            link.conn.close()

    async def _transfer(self, link: Link, key: str, version: str) -> Artifact:
        conn = link.conn
        manifest = await conn.call("PEER.FETCH", key, version)
        got_version, metric, attrs_json, origin, ns = (x.decode() for x in manifest[:5])
        why = self.import_refuses(link.node_id, link.address, key, origin)
        if why:
            self.stats["refused"] += 1
            raise PeerError(f"not importing {key!r} from {link.node_id}: {why}", "DENIED")
        listing = manifest[5]
        files: dict[str, bytes] = {}
        hashes: dict[str, str] = {}
        for i in range(0, len(listing), 3):
            name, digest, size = listing[i].decode(), listing[i + 1].decode(), int(listing[i + 2])
            data, actual = await self._receive_file(conn, key, version, name, size)
            if len(data) != size or actual != digest:
                self.stats["rejected"] += 1
                raise PeerError(
                    f"{key!r} {version[:12]} file {name!r} from {link.address} does not match "
                    f"its hash ({len(data)} of {size} bytes, sha256 {actual[:12]} != "
                    f"{digest[:12]}): rejected, nothing stored",
                    "MISMATCH",
                )
            files[name] = data
            hashes[name] = actual
        attrs = json.loads(attrs_json)
        if got_version != version or content_version(hashes, attrs) != version:
            self.stats["rejected"] += 1
            raise PeerError(
                f"{key!r} from {link.address} is not version {version}: its content hashes to "
                f"{content_version(hashes, attrs)}; rejected, nothing stored",
                "MISMATCH",
            )
        self.stats["fetched"] += 1
        return VerifiedArtifact(
            key=key,
            version=version,
            metric=float(metric),
            attrs=attrs,
            origin=origin,
            updated=datetime.fromtimestamp(int(ns) / 1e9, tz=UTC),
            base=None,
            sizes={n: len(d) for n, d in files.items()},
            files=files,
            hashes=hashes,
        )

    async def _receive_file(
        self, conn: Conn, key: str, version: str, name: str, size: int
    ) -> tuple[bytes, str]:
        """One file's bytes and their sha256, requested ``PIPELINE_DEPTH`` chunks ahead.

        The hash is computed on a thread of its own as chunks arrive (hashlib lets go of the
        GIL), so checking a large file costs little more than receiving it.
        """
        chunk = self.config.chunk_size
        offsets = list(range(0, size, chunk))
        data = self._buffers.take(size)  # filled in place; the hash thread reads slices of it
        view = memoryview(data)[:size]
        hasher = hashlib.sha256()
        hashing = ThreadPoolExecutor(1, thread_name_prefix="learnhub-peer-hash")
        last: Future[None] | None = None
        try:
            sent = 0
            for _ in range(min(PIPELINE_DEPTH, len(offsets))):
                await conn.send("PEER.FETCH", key, version, name, offsets[sent], chunk)
                sent += 1
            for offset in offsets:
                part = view[offset : offset + chunk]
                got = await conn.receive_into(part)
                if got != len(part):
                    raise PeerError(
                        f"{name}: the peer sent {got} bytes at offset {offset} where "
                        f"{len(part)} were due",
                        "LINK",
                    )
                if sent < len(offsets):
                    await conn.send("PEER.FETCH", key, version, name, offsets[sent], chunk)
                    sent += 1
                last = hashing.submit(hasher.update, part)  # one thread: in order
            if last is not None:
                await asyncio.wrap_future(last)
        finally:
            hashing.shutdown(wait=True)
        # Bytes-like, not bytes: storing it copies it anyway (learning.put), so a copy here
        # would be one too many. The map goes when the last view of it does.
        return view, hasher.hexdigest()  # type: ignore[return-value]

    async def fetch_and_store(self, key: str, version: str, providers: list[tuple[str, str]]):
        """Fetch ``version`` of ``key`` from the first provider (address, node) that delivers
        it intact, and store it; the next provider is tried after any failure."""
        if (key, version) in self._fetching:
            return None
        self._fetching.add((key, version))
        if self._fetch_slots is None:
            self._fetch_slots = asyncio.Semaphore(BACKGROUND_FETCHES)
        try:
            async with self._fetch_slots:
                return await self._fetch_first(key, version, providers)
        finally:
            self._fetching.discard((key, version))

    async def _fetch_first(
        self, key: str, version: str, providers: list[tuple[str, str]]
    ) -> Artifact | None:
        for addr, node in providers:
            try:
                artifact = await self._fetch(addr, node, key, version)
            except PeerError as exc:
                log.warning("fetching %r %s from %s failed: %s", key, version[:12], addr, exc)
                await asyncio.to_thread(self.table.failed, addr, str(exc))
                continue
            await asyncio.to_thread(self._store, artifact)
            return artifact
        return None

    def _store(self, artifact: Artifact) -> None:
        # Verified as it arrived: stored without hashing it again (logs what it refuses).
        self.hub.learning.adopt(artifact)

    # --- announcements, offers, digests ---------------------------------------------------

    def _worth(self, key: str, version: str, metric: float, interested: bool) -> bool:
        """Whether a peer's version of ``key`` is worth fetching (runs in a thread)."""
        if self.hub.learning.info(key, version) is not None:  # not get: no files loaded
            return False
        mine = self.hub.learning.best(key)
        if mine is None:
            return interested
        return metric < mine.metric - self.config.margin

    def _interested(self, key: str) -> bool:
        from learnhub._glob import glob_match

        return any(glob_match(p, key) for p in self.config.want) or (
            self.hub.learning.best(key) is not None
        )

    async def heard(self, node: str | None, addr: str | None, entries: list[Announcement]) -> int:
        """Announcements from a peer (HAVE, a digest): recorded, and fetched if worth it."""
        allowed = []
        for e in entries:
            why = self.import_refuses(node, addr, e.key, None)
            if why:
                log.info("ignoring %s's announcement of %r: %s", node, e.key, why)
                continue
            allowed.append(e)
        if allowed:
            await asyncio.to_thread(self.table.announce, allowed)
        for e in allowed:
            worth = await asyncio.to_thread(
                lambda e=e: self._worth(e.key, e.version, e.metric, self._interested(e.key))
            )
            if worth and addr:
                self._spawn(self.fetch_and_store(e.key, e.version, [(addr, e.node_id)]))
        return len(allowed)

    async def offered(self, entry: Announcement, origin: str) -> str:
        """A peer offers a version of a key this hub asked for."""
        await asyncio.to_thread(self.table.announce, [entry])
        if await asyncio.to_thread(self.hub.learning.info, entry.key, entry.version):
            return "HAVE"
        worth = await asyncio.to_thread(self._worth, entry.key, entry.version, entry.metric, True)
        if not worth or entry.address is None:
            return "SKIPPED"
        provider = [(entry.address, entry.node_id)]
        self._spawn(self.fetch_and_store(entry.key, entry.version, provider))
        return "FETCHING"

    async def _watch(self) -> None:
        """Offer each new version to the peers that want its key; announce it in the DHT."""
        last = await asyncio.to_thread(self.table.last_seq)
        # On PostgreSQL, sequence numbers are taken before commit, so a version may become
        # visible after a later one: look back a little, and skip what was already seen.
        seen: dict[int, None] = {}
        while True:
            await asyncio.sleep(self.config.watch_interval)
            try:
                found = await asyncio.to_thread(
                    self.table.new_versions, max(0, last - WATCH_LOOKBACK)
                )
            except Exception as exc:  # the store being briefly unavailable is not fatal
                log.warning("watching the store for new versions: %s", exc)
                continue
            rows = [r for r in found if int(r["seq"]) not in seen]
            for row in rows:
                seen[int(row["seq"])] = None
                last = max(last, int(row["seq"]))
                self._spawn(self._offer(row))
            while len(seen) > 4 * WATCH_LOOKBACK:
                del seen[next(iter(seen))]
            if rows:
                self._spawn(self._announce(rows))
                if self.dht is not None:
                    self._spawn(self.dht.announce(rows))

    async def _announce(self, rows: list[dict[str, Any]]) -> None:
        """PEER.HAVE of new versions to the peers this hub has a link open to: their tables
        stay fresh, and one that holds a worse version of the key fetches this one."""
        for addr, link in list(self._links.items()):
            if link.conn.closed:
                continue
            args: list[Any] = []
            for row in rows:
                if row["origin"] == link.node_id:
                    continue
                if self.config.export.refuses(link.node_id, addr, row["key"]) is None:
                    args += [row["key"], row["version"], repr(row["metric"]),
                             str(row["created_ns"])]  # fmt: skip
            for i in range(0, len(args), 4 * self.config.max_announcements):
                try:
                    await link.call("PEER.HAVE", *args[i : i + 4 * self.config.max_announcements])
                except PeerError as exc:
                    log.info("announcing to %s: %s", addr, exc)
                    break

    async def _offer(self, row: dict[str, Any]) -> None:
        key = row["key"]
        for node in await asyncio.to_thread(self.table.wanting, key):
            if node in (row["origin"], self.identity.node_id):
                continue
            addr = await asyncio.to_thread(self.address_of, node)
            if addr is None:
                continue
            why = self.config.export.refuses(node, addr, key)
            if why:
                log.info("not offering %r to %s: %s", key, node, why)
                continue
            try:
                link = await self.link(addr)
                answer = await link.call(
                    "PEER.OFFER", key, row["version"], repr(row["metric"]),
                    str(row["created_ns"]), row["origin"],
                )  # fmt: skip
                self.stats["offers_sent"] += 1
                log.info("offered %r %s to %s: %s", key, row["version"][:12], node, answer)
            except PeerError as exc:
                log.warning("offering %r to %s at %s: %s", key, node, addr, exc)

    async def _offline_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.idle_interval)
            try:
                await asyncio.to_thread(self.offline.run_once)
            except Exception:  # a failed round is logged; the next one tries again
                log.exception("offline training round failed")

    async def _digest_loop(self) -> None:
        while True:
            await self.exchange_digests()
            await asyncio.sleep(self.config.digest_interval)

    async def exchange_digests(self) -> None:
        addresses = await asyncio.to_thread(self.peer_addresses)
        await asyncio.gather(*(self._digest_from(a) for a in addresses))

    async def _digest_from(self, addr: str) -> None:
        try:
            link = await self.link(addr)
            after = ""
            while True:
                next_after, flat = await link.call("PEER.DIGEST", after)
                entries = []
                now = time.time_ns()
                for i in range(0, len(flat), 4):
                    key, version, metric, ns = (x.decode() for x in flat[i : i + 4])
                    entries.append(
                        Announcement(link.node_id, key, version, float(metric), int(ns), now, addr)
                    )
                await self.heard(link.node_id, addr, entries)
                after = next_after.decode()
                if not after:
                    break
            await asyncio.to_thread(self.table.exchanged, addr)
        except PeerError as exc:
            log.info("digest exchange with %s: %s", addr, exc)

    # --- status ---------------------------------------------------------------------------

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the service's loop from another thread and return its result
        (or raise its exception; ``concurrent.futures.TimeoutError`` after ``timeout``
        seconds, the coroutine cancelled).

        Not ``run_coroutine_threadsafe``: its future and the task it follows refer to each
        other, so a result stays alive until the garbage collector runs: a fetched
        artifact's receive buffer could not be lent again (see ReceiveBuffers)."""
        loop = self._loop
        assert loop is not None
        done = threading.Event()
        started: list[asyncio.Task[Any]] = []

        def start() -> None:
            task = loop.create_task(coro)
            task.add_done_callback(lambda _: done.set())
            started.append(task)

        loop.call_soon_threadsafe(start)
        if not done.wait(timeout):
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in started])
            raise FutureTimeout()
        return started.pop().result()

    def status(self) -> list[dict[str, Any]]:
        return peer_status(self.table, self.config.static_peers())


def peer_status(table: PeerTable, static: list[str]) -> list[dict[str, Any]]:
    """Per peer: address, node id, source, last seen / exchange, last error, keys announced."""
    rows = {r["address"]: dict(r) for r in table.peers()}
    for addr in static:
        rows.setdefault(
            addr,
            {
                "address": addr,
                "node_id": None,
                "last_seen_ns": None,
                "last_exchange_ns": None,
                "last_error": None,
                "failures": 0,
            },
        )
        rows[addr]["source"] = "static"
    counts = table.announcement_counts()
    wants = table.want_counts()
    out = []
    for addr, r in sorted(rows.items()):
        node = r.get("node_id")
        out.append(
            {
                "address": addr,
                "node_id": node,
                "source": r.get("source"),
                "reachable": bool(r.get("last_seen_ns")) and not r.get("failures"),
                "last_seen": _iso(r.get("last_seen_ns")),
                "last_exchange": _iso(r.get("last_exchange_ns")),
                "last_error": r.get("last_error"),
                "keys": counts.get(node, {}).get("keys", 0) if node else 0,
                "wants": wants.get(node, 0) if node else 0,
            }
        )
    return out


def _iso(ns: int | None) -> str | None:
    return None if not ns else datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()
