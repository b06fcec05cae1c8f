"""The peer link's commands: the server side of one authenticated connection.

```
PEER.HELLO learnhub-peer/1 NODE_ID PUBLIC_KEY NONCE ADVERTISE
      -> [node_id, public_key, nonce, signature, mac]       the server proves itself
PEER.HELLO PROOF SIGNATURE MAC -> +OK                        the client proves itself
PEER.WANT key [WHERE name value ...]                         tell me about key; and now:
      -> nil | [version, metric, created_ns, origin]         what you have of it
PEER.HAVE key version metric created_ns [key version metric created_ns ...] -> :recorded
PEER.OFFER key version metric created_ns origin -> +FETCHING | +HAVE | +SKIPPED
PEER.FETCH key version -> [version, metric, attrs_json, origin, created_ns,
                           [name, sha256, size, ...]]        the manifest
PEER.FETCH key version name offset count -> bytes            one chunk of one file
PEER.DIGEST [after_key [count]] -> [key, version, metric, created_ns, ...]
```

Errors start with a code: ``NOAUTH`` (no or a failed handshake), ``DENIED`` (a policy
refused; the message says which rule), ``NOTFOUND``, ``ERR`` (bad input).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from learnhub.errors import InvalidInput
from learnhub.learning.artifacts import MAX_KEY_BYTES
from learnhub.peers.identity import PROTOCOL, AuthError, new_nonce, prove, transcript, verify
from learnhub.peers.streams import FileStream
from learnhub.peers.table import Announcement
from learnhub.server.resp import (
    ErrorReply,
    ProtocolError,
    RequestParser,
    SimpleString,
    encode_reply,
)

if TYPE_CHECKING:
    from learnhub.peers.service import PeerService

log = logging.getLogger("learnhub.peers")

COMMANDS = ("PEER.HELLO", "PEER.WANT", "PEER.HAVE", "PEER.OFFER", "PEER.FETCH", "PEER.DIGEST")
MAX_CHUNK = 8 * 1024 * 1024
MAX_DIGEST_PAGE = 1000
# Files served at once (a stream idle for streams.IDLE_S gives its thread back).
STREAM_THREADS = 8
# Requests larger than this are not peer traffic (the largest real one is a full HAVE).
MAX_REQUEST_BULK = 2 * 1024 * 1024
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")


class Refused(Exception):
    """A request the hub answers with an error reply (code + message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


@dataclass
class Session:
    """One inbound connection."""

    peer_host: str
    node_id: str | None = None
    address: str | None = None  # where the peer's own link listens
    pending: tuple[str, str, str, str, str] | None = None  # hello in progress
    stream: FileStream | None = None  # the file being served, read ahead

    @property
    def who(self) -> str:
        return f"node {self.node_id or '?'} at {self.address or self.peer_host}"


def check_key(key: str) -> str:
    if not key:
        raise Refused("ERR", "a key must be a non-empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise Refused("ERR", f"key is {len(key.encode())} bytes long; the limit is {MAX_KEY_BYTES}")
    if any(ord(c) < 32 for c in key):
        raise Refused("ERR", "a key may not contain control characters")
    return key


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise Refused("ERR", f"{version[:80]!r} is not a version (32 hex digits)")
    return version


def parse_metric(text: str) -> float:
    try:
        metric = float(text)
    except ValueError:
        raise Refused("ERR", f"metric {text[:40]!r} is not a number") from None
    if not math.isfinite(metric):
        raise Refused("ERR", f"metric {text[:40]!r} must be finite")
    return metric


def parse_ns(text: str) -> int:
    if not text.isdigit() or len(text) > 20:
        raise Refused("ERR", f"time {text[:40]!r} must be nanoseconds since the epoch")
    return int(text)


class PeerProtocol:
    """Serves inbound peer connections for a ``PeerService``."""

    def __init__(self, service: PeerService) -> None:
        self.service = service
        self.chunks_served = 0
        # The threads that read served files from the store (see streams.py).
        self.pool = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix="learnhub-peer-read")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        session = Session(peer_host=peer[0] if peer else "?")
        task = asyncio.current_task()
        if task is not None:  # so that stopping the service ends it
            self.service._tasks.add(task)
        parser = RequestParser(max_bulk_len=MAX_REQUEST_BULK, max_inline_len=4096)
        try:
            while True:
                data = await reader.read(1024 * 1024)
                if not data:
                    return
                parser.feed(data)
                while True:
                    try:
                        argv = parser.next_command()
                    except ProtocolError as exc:
                        writer.write(encode_reply(ErrorReply(f"ERR {exc}")))
                        await writer.drain()
                        return
                    if argv is None:
                        break
                    reply, close = await self.dispatch(session, argv)
                    if isinstance(reply, memoryview):  # a chunk: written without copying it
                        writer.write(b"$%d\r\n" % reply.nbytes)
                        writer.write(reply)
                        writer.write(b"\r\n")
                    else:
                        writer.write(encode_reply(reply))
                    await writer.drain()
                    if close:
                        return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # the service stops; ending quietly spares asyncio's stream callback
        finally:
            self.service._tasks.discard(task)
            if session.stream is not None:
                session.stream.close()
            writer.close()

    async def dispatch(self, session: Session, argv: list[bytes]) -> tuple[Any, bool]:
        try:
            args = [a.decode() for a in argv]
        except UnicodeDecodeError:
            return ErrorReply("ERR peer commands take UTF-8 text arguments"), False
        name = args[0].upper()
        try:
            if name == "PEER.HELLO":
                return await self.hello(session, args[1:])
            if name not in COMMANDS:
                raise Refused(
                    "ERR",
                    f"unknown peer command {args[0][:60]!r}; a peer link knows "
                    + ", ".join(COMMANDS),
                )
            if session.node_id is None:
                raise Refused("NOAUTH", "authenticate with PEER.HELLO first")
            handler = getattr(self, name.removeprefix("PEER.").lower())
            return await handler(session, args[1:]), False
        except Refused as exc:
            if exc.code == "DENIED":
                log.warning("refused %s from %s: %s", name, session.who, exc)
            return ErrorReply(str(exc)), False
        except InvalidInput as exc:
            return ErrorReply(f"ERR {exc}"), False

    # --- handshake ------------------------------------------------------------------------

    async def hello(self, session: Session, args: list[str]) -> tuple[Any, bool]:
        service = self.service
        me = service.identity
        if len(args) == 3 and args[0].upper() == "PROOF":
            if session.pending is None:
                return ErrorReply("NOAUTH send PEER.HELLO learnhub-peer/1 ... first"), True
            node, pub, nonce_c, nonce_s, advertise = session.pending
            session.pending = None
            data = transcript("client", (node, pub, nonce_c), (me.node_id, me.public_key, nonce_s))
            try:
                how = verify(node, pub, args[1], args[2], data, service.secret, service.trusted())
            except AuthError as exc:
                log.warning("refused peer %s from %s: %s", node, session.peer_host, exc)
                return ErrorReply(f"NOAUTH {exc}"), True
            session.node_id = node
            session.address = service.advertised_address(advertise, session.peer_host)
            await service.peer_connected(node, session.address)
            log.info("peer %s at %s authenticated (%s)", node, session.address, how)
            return SimpleString("OK"), False
        if len(args) != 5 or args[0] != PROTOCOL:
            return (
                ErrorReply(
                    f"ERR expected PEER.HELLO {PROTOCOL} NODE_ID PUBLIC_KEY NONCE ADVERTISE "
                    "(or PEER.HELLO PROOF SIGNATURE MAC)"
                ),
                True,
            )
        node, pub, nonce_c, advertise = args[1:]
        if not node or len(node) > 64 or len(pub) != 64 or len(nonce_c) != 64:
            return ErrorReply("ERR malformed PEER.HELLO"), True
        nonce_s = new_nonce()
        session.pending = (node, pub, nonce_c, nonce_s, advertise)
        data = transcript("server", (node, pub, nonce_c), (me.node_id, me.public_key, nonce_s))
        signature, mac = prove(me, service.secret, data)
        return [me.node_id, me.public_key, nonce_s, signature, mac], False

    # --- commands -------------------------------------------------------------------------

    def _export(self, session: Session, key: str) -> None:
        why = self.service.config.export.refuses(session.node_id, session.address, key)
        if why:
            raise Refused("DENIED", f"key {key!r} is not exported to {session.who}: {why}")

    async def want(self, session: Session, args: list[str]) -> Any:
        if not args or (len(args) > 1 and (args[1].upper() != "WHERE" or len(args) % 2)):
            raise Refused("ERR", "expected PEER.WANT key [WHERE name value ...]")
        key = check_key(args[0])
        where = dict(zip(args[2::2], args[3::2], strict=True))
        self._export(session, key)
        service = self.service
        assert session.node_id is not None
        await asyncio.to_thread(service.table.want, session.node_id, key)
        found = await asyncio.to_thread(service.hub.learning.best, key, where or None)
        if found is None:
            return None
        return [found.version, repr(found.metric), str(_ns(found)), found.origin]

    async def have(self, session: Session, args: list[str]) -> Any:
        limit = self.service.config.max_announcements
        if not args or len(args) % 4:
            raise Refused("ERR", "expected PEER.HAVE key version metric time [key ...]")
        if len(args) // 4 > limit:
            raise Refused(
                "ERR",
                f"{len(args) // 4} announcements in one PEER.HAVE; the limit is {limit}: "
                "send them in batches",
            )
        entries = [_announcement(session, args[i : i + 4]) for i in range(0, len(args), 4)]
        return await self.service.heard(session.node_id, session.address, entries)

    async def offer(self, session: Session, args: list[str]) -> Any:
        if len(args) != 5:
            raise Refused("ERR", "expected PEER.OFFER key version metric time origin")
        entry = _announcement(session, args[:4])
        why = self.service.import_refuses(session.node_id, session.address, entry.key, args[4])
        if why:
            raise Refused(
                "DENIED", f"this hub does not import {entry.key!r} from {session.who}: {why}"
            )
        return SimpleString(await self.service.offered(entry, args[4]))

    async def fetch(self, session: Session, args: list[str]) -> Any:
        if len(args) not in (2, 5):
            raise Refused("ERR", "expected PEER.FETCH key version [file offset count]")
        key, version = check_key(args[0]), check_version(args[1])
        self._export(session, key)
        learning = self.service.hub.learning
        if len(args) == 2:
            found = await asyncio.to_thread(learning.info, key, version)
            if found is None:
                raise Refused("NOTFOUND", f"this hub has no version {version} of {key!r}")
            # The stored content hashes: what the receiver checks the bytes against.
            rows = await asyncio.to_thread(self.service.table.file_hashes, key, version)
            files: list[str] = []
            for row in rows:
                files += [row["name"], row["blob_hash"], str(row["size"])]
            return [
                found.version, repr(found.metric), json.dumps(found.attrs, sort_keys=True),
                found.origin, str(_ns(found)), files,
            ]  # fmt: skip
        name = args[2]
        if not args[3].isdigit() or not args[4].isdigit():
            raise Refused("ERR", "offset and count must be non-negative integers")
        offset, count = int(args[3]), int(args[4])
        if count > MAX_CHUNK:
            raise Refused("ERR", f"count {count} is over the chunk limit of {MAX_CHUNK} bytes")
        if count == 0:
            raise Refused("ERR", "count must be at least 1")
        ident = (key, version, name)
        while True:
            stream = session.stream
            if stream is None or not stream.serves(ident, offset, count):
                if stream is not None:
                    stream.close()
                stream = session.stream = FileStream(self.pool, learning, ident, offset, count)
            try:
                data = await stream.take()
            except InvalidInput:
                raise Refused(
                    "NOTFOUND", f"this hub has no file {name!r} in version {version} of {key!r}"
                ) from None
            if data is not None:  # None: the stream had given its thread back; start anew
                return self._faulty(memoryview(data))

    def _faulty(self, chunk: memoryview) -> memoryview:
        """Test faults (``LEARNHUB_PEERS_FAULT``): die or lie partway through a transfer."""
        fault = self.service.fault
        self.chunks_served += 1
        if (
            fault
            and fault.startswith("exit-after-chunks:")
            and self.chunks_served > int(fault.split(":")[1])
        ):
            log.warning("fault injection: exiting mid-transfer")
            os._exit(17)
        if fault == "corrupt" and chunk:
            chunk = memoryview(bytes([chunk[0] ^ 0xFF]) + chunk[1:])
        return chunk

    async def digest(self, session: Session, args: list[str]) -> Any:
        if len(args) > 2:
            raise Refused("ERR", "expected PEER.DIGEST [after_key [count]]")
        after = args[0] if args else ""
        count = MAX_DIGEST_PAGE
        if len(args) == 2:
            if not args[1].isdigit() or not 0 < int(args[1]) <= MAX_DIGEST_PAGE:
                raise Refused("ERR", f"count must be 1..{MAX_DIGEST_PAGE}")
            count = int(args[1])
        rows = await asyncio.to_thread(self.service.table.digest, after, count)
        out: list[Any] = []
        export = self.service.config.export
        for r in rows:
            if export.refuses(session.node_id, session.address, r["key"]) is None:
                out += [r["key"], r["version"], repr(r["metric"]), str(r["created_ns"])]
        # The last key read, so the next page starts after it even when all were filtered.
        return [rows[-1]["key"] if len(rows) == count else "", out]


def _announcement(session: Session, fields: list[str]) -> Announcement:
    import time

    assert session.node_id is not None
    key, version, metric, ns = fields
    return Announcement(
        session.node_id, check_key(key), check_version(version), parse_metric(metric),
        parse_ns(ns), time.time_ns(), session.address,
    )  # fmt: skip


def _ns(v: Any) -> int:
    return int(v.updated.timestamp() * 1e9)
