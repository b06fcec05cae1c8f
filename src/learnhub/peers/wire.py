"""The peer link's bytes: RESP both ways, over asyncio streams.

Requests are parsed by the server's sans-IO ``RequestParser`` and replies encoded with its
``encode_reply``; what is missing there is the other half a *client* needs, a reply parser,
which is here (sans-IO too: bytes in, values out), with the thin asyncio loops around both.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from learnhub.errors import LearnhubError
from learnhub.server.resp import ErrorReply, ProtocolError, RequestParser, encode_command

__all__ = ["Conn", "PeerError", "ReplyParser", "RequestParser", "encode_command"]

READ_SIZE = 1024 * 1024
# What ``receive_into`` reads while it waits for a chunk's header or trailer: little, so that
# the chunk's bytes that follow stay in the kernel and go straight into the caller's buffer
# (a 1 MiB read there took most of the next chunk through the parser's buffer, three copies).
LINE_READ_SIZE = 4096
# A reply larger than this is garbage (the largest real one is a chunk, at most 8 MiB).
MAX_REPLY_BULK = 64 * 1024 * 1024
MAX_REPLY_ITEMS = 1_000_000
_INCOMPLETE = object()


class PeerError(LearnhubError):
    """A peer answered with an error, or the link to it failed. ``code`` is the error's first
    word (DENIED, NOAUTH, NOTFOUND, ERR ...), or LINK when the link itself failed."""

    def __init__(self, message: str, code: str = "ERR") -> None:
        super().__init__(message)
        self.code = code


class ReplyParser:
    """Incremental parser for the replies of a RESP2 server."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_reply(self) -> Any:
        """One complete reply (an ``ErrorReply`` for an error), or ``_INCOMPLETE``."""
        value, end = self._parse(self._pos)
        if value is _INCOMPLETE:
            return _INCOMPLETE
        self._pos = end
        return value

    def take_line(self) -> bytes | None:
        """The next whole line (without CRLF), consumed; None until one has arrived."""
        line = self._line(self._pos)
        if line is None:
            return None
        text, self._pos = line
        return text

    def take_into(self, view: memoryview) -> int:
        """Copy buffered bytes into ``view`` (as many as fit) and consume them."""
        n = min(len(view), len(self._buf) - self._pos)
        with memoryview(self._buf) as buf:  # released before the buffer may resize
            view[:n] = buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def _line(self, pos: int) -> tuple[bytes, int] | None:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            if len(self._buf) - pos > 64 * 1024:
                raise ProtocolError("reply line too long")
            return None
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        line = self._line(pos)
        if line is None:
            return _INCOMPLETE, pos
        text, after = line
        if not text:
            raise ProtocolError("empty reply line")
        kind, body = text[:1], text[1:]
        if kind == b"+":
            return body.decode(errors="replace"), after
        if kind == b"-":
            return ErrorReply(body.decode(errors="replace")), after
        if kind == b":":
            return int(body), after
        if kind == b"_":
            return None, after
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None, after
            if n > MAX_REPLY_BULK:
                raise ProtocolError(f"reply bulk of {n} bytes is too large")
            if len(self._buf) < after + n + 2:
                return _INCOMPLETE, pos
            with memoryview(self._buf) as view, view[after : after + n] as body:
                return bytes(body), after + n + 2  # one copy, not two
        if kind == b"*":
            n = int(body)
            if n < 0:
                return None, after
            if n > MAX_REPLY_ITEMS:
                raise ProtocolError(f"reply array of {n} items is too large")
            items = []
            for _ in range(n):
                item, after = self._parse(after)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            return items, after
        raise ProtocolError(f"unexpected reply type {kind!r}")


class Conn:
    """A client connection to a peer: send commands, read replies in order.

    It drives a non-blocking socket with the loop's ``sock_*`` calls rather than a stream,
    so that a chunk's bytes go from the kernel straight into the caller's buffer
    (``receive_into``), which is most of a large transfer's cost.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self._parser = ReplyParser()
        self.lock = asyncio.Lock()  # one request/response exchange at a time
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> Conn:
        loop = asyncio.get_running_loop()
        sock = None
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
            family, kind, proto, _, addr = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
        except (OSError, TimeoutError) as exc:
            if sock is not None:
                sock.close()
            raise PeerError(f"cannot connect to peer {host}:{port}: {exc!r}", "LINK") from exc
        return cls(sock)

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply; an error reply raises PeerError."""
        return (await self.pipeline([args]))[0]

    async def pipeline(self, commands: list[tuple[Any, ...]], raise_errors: bool = True) -> list:
        """Send commands at once and read their replies (in order)."""
        try:
            await self.loop.sock_sendall(self.sock, b"".join(encode_command(*c) for c in commands))
            replies = [await self._read() for _ in commands]
        except (OSError, ProtocolError) as exc:
            self.close()
            raise PeerError(f"link to peer failed: {exc!r}", "LINK") from exc
        if raise_errors:
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    raise error_of(reply)
        return replies

    async def send(self, *args: Any) -> None:
        """Write one command without waiting (its reply is read by ``receive``)."""
        try:
            await self.loop.sock_sendall(self.sock, encode_command(*args))
        except OSError as exc:
            self.close()
            raise PeerError(f"link to peer failed: {exc!r}", "LINK") from exc

    async def receive(self) -> Any:
        try:
            reply = await self._read()
        except (OSError, ProtocolError) as exc:
            self.close()
            raise PeerError(f"link to peer failed: {exc!r}", "LINK") from exc
        if isinstance(reply, ErrorReply):
            raise error_of(reply)
        return reply

    async def receive_into(self, view: memoryview) -> int:
        """Read one bulk reply straight into ``view`` and return its length: the large-data
        path, which skips the parser's buffer (the kernel copies into ``view`` directly)."""
        try:
            while (line := self._parser.take_line()) is None:
                await self._fill(LINE_READ_SIZE)
            if line.startswith(b"-"):
                raise error_of(ErrorReply(line[1:].decode(errors="replace")))
            if not line.startswith(b"$") or not line[1:].isdigit():
                raise ProtocolError(f"expected a bulk reply, got {line[:40]!r}")
            n = int(line[1:])
            if n > len(view):
                raise ProtocolError(f"a chunk of {n} bytes where at most {len(view)} fit")
            got = self._parser.take_into(view[:n])
            while got < n:
                k = await self.loop.sock_recv_into(self.sock, view[got:n])
                if not k:
                    raise ProtocolError("the peer closed the connection")
                got += k
            while (end := self._parser.take_line()) is None:
                await self._fill(LINE_READ_SIZE)
            if end:
                raise ProtocolError("bulk reply not followed by CRLF")
            return n
        except (OSError, ProtocolError) as exc:
            self.close()
            raise PeerError(f"link to peer failed: {exc!r}", "LINK") from exc

    async def _fill(self, size: int = READ_SIZE) -> None:
        data = await self.loop.sock_recv(self.sock, size)
        if not data:
            raise ProtocolError("the peer closed the connection")
        self._parser.feed(data)

    async def _read(self) -> Any:
        while True:
            reply = self._parser.next_reply()
            if reply is not _INCOMPLETE:
                return reply
            await self._fill()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


def error_of(reply: ErrorReply) -> PeerError:
    code, _, _ = reply.partition(" ")
    return PeerError(f"peer refused: {reply}", code if code.isupper() else "ERR")
