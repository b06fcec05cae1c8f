"""Sans-IO codec for the Redis protocol: RESP2/RESP3 replies out, requests in.

Like h11, nothing here touches a socket: the server feeds received bytes to a
`RequestParser` and pulls complete commands out, and turns reply values into
bytes with `encode_reply`. That keeps the protocol testable byte by byte and
lets any transport (asyncio, threads, tests) drive it.
"""

from __future__ import annotations

import re

__all__ = [
    "ErrorReply",
    "Map",
    "ProtocolError",
    "Push",
    "RequestParser",
    "SimpleString",
    "encode_command",
    "encode_reply",
]

_CRLF = b"\r\n"
_STAR = ord("*")
_DOLLAR = ord("$")
_DQUOTE, _SQUOTE, _BACKSLASH = ord('"'), ord("'"), ord("\\")
# A regex both validates a header and finds its end in one C call, which is
# most of the per-argument cost for pipelined small commands. Unlike int(),
# it rejects signs, spaces and underscores.
_MULTIBULK_HEADER = re.compile(rb"\*(-1|[0-9]{1,20})\r\n")
_BULK_HEADER = re.compile(rb"\$([0-9]{1,20})\r\n")
# "*1048576" or "$536870912" fit easily; a longer header line is garbage, so
# reject it before buffering more of it.
_MAX_HEADER_LEN = 32
# Below this a bytearray slice is cheaper than a memoryview; above it, the
# memoryview saves a second full copy of the argument.
_VIEW_THRESHOLD = 64 * 1024
# What redis's sdssplitargs treats as separators between inline arguments.
_SPACE = b" \t\n\r\x0b\x0c"
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ProtocolError(Exception):
    """The peer sent bytes that are not a RESP request.

    The connection must be closed after replying.
    """


class RequestParser:
    """Incremental parser for client requests: RESP arrays of bulk strings and inline commands."""

    def __init__(
        self,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 1024 * 1024,
        max_inline_len: int = 64 * 1024,
    ) -> None:
        self._max_bulk_len = max_bulk_len
        self._max_multibulk_len = max_multibulk_len
        self._max_inline_len = max_inline_len
        self._buf = bytearray()
        self._pos = 0  # start of the unparsed bytes in _buf
        # No line terminator occurs in _buf[_pos:_scan]: a line arriving byte by
        # byte is then searched once overall instead of once per feed.
        self._scan = 0
        self._args: list[bytes] = []  # arguments of the multibulk being read
        self._missing = 0  # bulk strings that multibulk still needs
        self._bulk_len = -1  # length of the next bulk once its "$" header is read

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        buf, pos = self._buf, self._pos
        # Dropping consumed bytes only once they are at least half the buffer
        # keeps the total copying linear in the input, whatever the chunk sizes.
        if pos and pos * 2 >= len(buf):
            del buf[:pos]
            self._scan -= pos
            self._pos = 0
        buf += data

    def next_command(self) -> list[bytes] | None:
        """Return one complete command, or None if more bytes are needed.

        Raises ProtocolError on malformed input; the parser is unusable afterwards.
        """
        while True:
            if not self._missing:
                if self._pos >= len(self._buf):
                    # All consumed: free the buffer now, not at the next feed, so an idle
                    # connection does not keep its last (possibly 100 MB) request alive.
                    self._buf.clear()
                    self._pos = self._scan = 0
                    return None
                if self._buf[self._pos] != _STAR:
                    args = self._inline_command()
                    if args is None or args:
                        return args
                    continue  # blank line: redis ignores it
                count = self._read_length(
                    _MULTIBULK_HEADER,
                    self._max_multibulk_len,
                    "Protocol error: invalid multibulk length",
                )
                if count is None:
                    return None
                self._missing = max(count, 0)  # "*0" and the null array "*-1" are skipped
                continue
            while self._missing:
                if self._bulk_len < 0:
                    length = self._bulk_header()
                    if length is None:
                        return None
                    self._bulk_len = length
                if not self._bulk_body():
                    return None
            args, self._args = self._args, []
            return args

    def _read_line(self, sep: bytes, limit: int, error: str) -> bytes | None:
        """Consume and return the line at _pos (without sep), at most `limit` bytes long."""
        buf, pos = self._buf, self._pos
        window_end = pos + limit + len(sep)
        end = buf.find(sep, max(self._scan, pos), window_end)
        if end < 0:
            # Fail as soon as the line is known to be too long rather than when
            # its end finally arrives, so a peer cannot make us buffer forever.
            if len(buf) >= window_end:
                raise ProtocolError(error)
            self._scan = len(buf) - len(sep) + 1  # sep may have started in the last bytes
            return None
        self._pos = self._scan = end + len(sep)
        return bytes(buf[pos:end])

    def _read_length(self, header: re.Pattern[bytes], limit: int, error: str) -> int | None:
        """Consume a complete "*<n>\\r\\n" or "$<n>\\r\\n" line and return n."""
        match = header.match(self._buf, self._pos)
        if match is None:
            # Not a valid complete header: either more bytes are needed, or it
            # is malformed, which the line length tells apart.
            if self._read_line(_CRLF, _MAX_HEADER_LEN, error) is None:
                return None
            raise ProtocolError(error)
        length = int(match[1])
        if length > limit:
            raise ProtocolError(error)
        self._pos = self._scan = match.end()
        return length

    def _bulk_header(self) -> int | None:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return None
        if buf[pos] != _DOLLAR:
            raise ProtocolError(f"Protocol error: expected '$', got '{_show_byte(buf[pos])}'")
        return self._read_length(
            _BULK_HEADER, self._max_bulk_len, "Protocol error: invalid bulk length"
        )

    def _bulk_body(self) -> bool:
        buf, start, length = self._buf, self._pos, self._bulk_len
        end = start + length
        # The length is known, so just wait: no scanning of a large payload.
        if len(buf) < end + 2:
            return False
        if buf[end : end + 2] != _CRLF:
            raise ProtocolError("Protocol error: bulk string not followed by CRLF")
        if length < _VIEW_THRESHOLD:
            arg = bytes(buf[start:end])
        else:
            # Explicit release: a live export would make the next feed() fail.
            with memoryview(buf) as view, view[start:end] as body:
                arg = bytes(body)
        self._args.append(arg)
        self._pos = end + 2
        self._bulk_len = -1
        self._missing -= 1
        return True

    def _inline_command(self) -> list[bytes] | None:
        line = self._read_line(
            b"\n", self._max_inline_len, "Protocol error: too big inline request"
        )
        if line is None:
            return None
        if b'"' in line or b"'" in line:
            return _split_quoted(line)
        return line.split()  # also drops the "\r" of a "\r\n" ending


def _show_byte(byte: int) -> str:
    return chr(byte) if 32 <= byte < 127 else f"\\x{byte:02x}"


def _split_quoted(line: bytes) -> list[bytes]:
    """Split an inline command the way redis (sdssplitargs) does.

    "double quotes" understand \\n \\r \\t \\b \\a \\xHH and \\<any>; 'single
    quotes' only \\'. A closing quote must be followed by a space or the end.
    """
    unbalanced = "Protocol error: unbalanced quotes in request"
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i == n:
            return args
        arg = bytearray()
        quote = 0  # the byte value of the open quote, 0 outside quotes
        while i < n:
            c = line[i]
            if not quote:
                if c in _SPACE:
                    break
                if c in (_DQUOTE, _SQUOTE):
                    quote = c
                else:
                    arg.append(c)
            elif c == quote:
                if i + 1 < n and line[i + 1] not in _SPACE:
                    raise ProtocolError(unbalanced)
                i += 1
                break
            elif c == _BACKSLASH and i + 1 < n and (quote == _DQUOTE or line[i + 1] == _SQUOTE):
                i += 1
                c = line[i]
                if (
                    quote == _DQUOTE
                    and c == ord("x")
                    and i + 2 < n
                    and line[i + 1] in _HEX
                    and line[i + 2] in _HEX
                ):
                    arg.append(int(line[i + 1 : i + 3], 16))
                    i += 2
                elif quote == _DQUOTE and c in _ESCAPES:
                    arg += _ESCAPES[c]
                else:
                    arg.append(c)
            else:
                arg.append(c)
            i += 1
        else:
            if quote:
                raise ProtocolError(unbalanced)
        args.append(bytes(arg))


class SimpleString(str):
    """A status reply such as OK, sent as +OK."""


class ErrorReply(str):
    """An error reply such as "ERR unknown command", sent as -ERR unknown command."""


class Map(dict[object, object]):
    """RESP3 map (%); a flat array k1 v1 k2 v2 in RESP2."""


class Push(list[object]):
    """RESP3 out-of-band push (>), e.g. pub/sub messages; a plain array in RESP2."""


def encode_reply(value: object, resp3: bool = False) -> bytes:
    """Encode a reply value as RESP2 (default) or RESP3 bytes.

    Raises TypeError for values that have no RESP form.
    """
    parts: list[bytes | bytearray | memoryview] = []
    _encode(value, resp3, parts)
    return b"".join(parts)


def _encode(value: object, resp3: bool, out: list[bytes | bytearray | memoryview]) -> None:
    # Parts are collected and joined once, so nesting is linear and a large
    # payload is copied exactly once, into the result.
    # Order matters: bool is an int, SimpleString/ErrorReply are str, Map is a dict.
    if value is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif isinstance(value, bool):
        if resp3:
            out.append(b"#t\r\n" if value else b"#f\r\n")
        else:
            out.append(b":1\r\n" if value else b":0\r\n")
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            out.append(b":%d\r\n" % value)
        elif resp3:
            out.append(b"(%d\r\n" % value)
        else:  # RESP2 integers are 64-bit; clients would reject the reply
            _bulk(b"%d" % value, out)
    elif isinstance(value, float):
        text = repr(value).encode()  # repr round-trips; gives "inf", "-inf", "nan"
        if resp3:
            out.append(b",%s\r\n" % text)
        else:
            _bulk(text, out)
    elif isinstance(value, bytes | bytearray | memoryview):
        _bulk(value, out)
    elif isinstance(value, SimpleString):
        out.append(b"+%s\r\n" % _one_line(value))
    elif isinstance(value, ErrorReply):
        out.append(b"-%s\r\n" % _one_line(value))
    elif isinstance(value, str):
        _bulk(value.encode(), out)
    elif isinstance(value, Push):
        out.append(b"%s%d\r\n" % (b">" if resp3 else b"*", len(value)))
        for item in value:
            _encode(item, resp3, out)
    elif isinstance(value, list | tuple):
        out.append(b"*%d\r\n" % len(value))
        for item in value:
            _encode(item, resp3, out)
    elif isinstance(value, dict):
        out.append(b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value)))
        for key, item in value.items():
            _encode(key, resp3, out)
            _encode(item, resp3, out)
    elif isinstance(value, set | frozenset):
        out.append(b"%s%d\r\n" % (b"~" if resp3 else b"*", len(value)))
        for item in value:
            _encode(item, resp3, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")


def _bulk(data: bytes | bytearray | memoryview, out: list[bytes | bytearray | memoryview]) -> None:
    out.append(b"$%d\r\n" % (data.nbytes if isinstance(data, memoryview) else len(data)))
    out.append(data)
    out.append(_CRLF)


def _one_line(text: str) -> bytes:
    # A CR or LF would end the reply early and desynchronise the client; a byte that is not
    # UTF-8 (echoed from a request) must not cost the connection.
    return text.replace("\r", " ").replace("\n", " ").encode(errors="replace")


def encode_command(*args: str | bytes | bytearray | memoryview | int | float) -> bytes:
    """Encode a command as a RESP array of bulk strings, as clients send it."""
    parts: list[bytes | bytearray | memoryview] = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes | bytearray | memoryview):
            _bulk(arg, parts)
        elif isinstance(arg, str):
            _bulk(arg.encode(), parts)
        elif isinstance(arg, bool):  # like redis-py: True is not obviously b"1"
            raise TypeError("cannot encode bool as a command argument")
        elif isinstance(arg, int):
            _bulk(b"%d" % arg, parts)
        elif isinstance(arg, float):
            _bulk(repr(arg).encode(), parts)
        else:
            raise TypeError(f"cannot encode {type(arg).__name__} as a command argument")
    return b"".join(parts)
