"""Tests for the sans-IO RESP codec.

hiredis (the C parser redis-py uses) is the independent reference for what we
encode, and redis-py's own command packer for what clients send us.
"""

from __future__ import annotations

import itertools
import math
import time

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from learnhub.server.resp import (
    ErrorReply,
    Map,
    ProtocolError,
    Push,
    RequestParser,
    SimpleString,
    encode_command,
    encode_reply,
)

INT64 = st.integers(-(2**63), 2**63 - 1)


def parse_all(chunks: list[bytes], parser: RequestParser | None = None) -> list[list[bytes]]:
    """Feed chunks one by one, draining commands after each, as a server would."""
    parser = parser or RequestParser()
    commands = []
    for chunk in chunks:
        parser.feed(chunk)
        while (command := parser.next_command()) is not None:
            commands.append(command)
    return commands


def outcome(chunks: list[bytes], **limits: int) -> tuple[list[list[bytes]], str | None]:
    """The commands parsed before any ProtocolError, and that error's message."""
    parser = RequestParser(**limits)
    commands: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (command := parser.next_command()) is not None:
                commands.append(command)
    except ProtocolError as exc:
        return commands, str(exc)
    return commands, None


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# Arguments that stress the framing: empty, CRLF inside, things that look like headers.
args_st = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"\r\n", b"\r", b"\n", b"*1\r\n$1\r\nx\r\n", b"$-1\r\n", b'"', b" "]),
)
commands_st = st.lists(st.lists(args_st, min_size=1, max_size=6), max_size=6)


# --- requests: round trips -------------------------------------------------------------


@given(commands=commands_st, data=st.data())
def test_round_trip_with_arbitrary_chunking(commands: list[list[bytes]], data: st.DataObject):
    wire = b"".join(encode_command(*command) for command in commands)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=len(wire) + 1))
    assert parse_all(split_at(wire, cuts)) == commands


@given(commands=commands_st)
def test_round_trip_one_byte_at_a_time(commands: list[list[bytes]]):
    wire = b"".join(encode_command(*command) for command in commands)
    assert parse_all(one_byte_chunks(wire)) == commands


@given(commands=commands_st)
def test_round_trip_all_at_once(commands: list[list[bytes]]):
    wire = b"".join(encode_command(*command) for command in commands)
    assert parse_all([wire]) == commands


@given(args=st.lists(args_st, max_size=6))
def test_parses_what_redis_py_sends(args: list[bytes]):
    # redis-py splits a first argument containing spaces, so use a fixed command name.
    wire = b"".join(Connection().pack_command(b"ECHO", *args))
    assert parse_all([wire]) == [[b"ECHO", *args]]


def test_incomplete_command_waits_for_more():
    parser = RequestParser()
    parser.feed(b"*2\r\n$4\r\nECHO\r\n$2\r\nh")
    assert parser.next_command() is None
    parser.feed(b"i\r")
    assert parser.next_command() is None
    parser.feed(b"\n")
    assert parser.next_command() == [b"ECHO", b"hi"]
    assert parser.next_command() is None


def test_empty_arrays_and_blank_lines_are_skipped():
    wire = b"*0\r\n\r\n*-1\r\n\n   \r\n*1\r\n$4\r\nPING\r\n*0\r\n"
    assert parse_all([wire]) == [[b"PING"]]
    assert parse_all(one_byte_chunks(wire)) == [[b"PING"]]


def test_encode_command_formats_each_argument_type():
    assert encode_command("SET", b"k", 12, 1.5, bytearray(b"x"), memoryview(b"yz")) == (
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n1.5\r\n$1\r\nx\r\n$2\r\nyz\r\n"
    )
    assert encode_command("ECHO", "é") == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"


@pytest.mark.parametrize("bad", [True, None, object(), [b"x"]])
def test_encode_command_rejects_other_types(bad: object):
    with pytest.raises(TypeError):
        encode_command("SET", "k", bad)  # type: ignore[arg-type]


# --- requests: inline ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"PING\r\n", [[b"PING"]]),
        (b"PING\n", [[b"PING"]]),
        (b"  set \t key   value  \r\n", [[b"set", b"key", b"value"]]),
        (b"PING\r\nECHO hi\r\n", [[b"PING"], [b"ECHO", b"hi"]]),
        (b'SET k "hello world"\r\n', [[b"SET", b"k", b"hello world"]]),
        (b'SET k ""\r\n', [[b"SET", b"k", b""]]),
        (b'ECHO "a\\"b\\\\c"\r\n', [[b"ECHO", b'a"b\\c']]),
        (b'ECHO "\\x41\\x4a\\xff\\x00"\r\n', [[b"ECHO", b"AJ\xff\x00"]]),
        (b'ECHO "\\xZZ"\r\n', [[b"ECHO", b"xZZ"]]),
        (b'ECHO "\\n\\r\\t\\b\\a\\q"\r\n', [[b"ECHO", b"\n\r\t\b\aq"]]),
        (b"ECHO 'it\\'s' 'a\\nb'\r\n", [[b"ECHO", b"it's", b"a\\nb"]]),
        (b"ECHO 'say \"hi\"'\r\n", [[b"ECHO", b'say "hi"']]),
        (b'ECHO foo"bar baz"\r\n', [[b"ECHO", b"foobar baz"]]),
        (b"ECHO don't\r\n", None),  # a lone quote opens a string that never closes
    ],
)
def test_inline_commands(wire: bytes, expected: list[list[bytes]] | None):
    if expected is None:
        with pytest.raises(ProtocolError, match="unbalanced quotes"):
            parse_all([wire])
    else:
        assert parse_all([wire]) == expected
        assert parse_all(one_byte_chunks(wire)) == expected


# "*" would start a multibulk instead of an inline command.
word_bytes = [b for b in range(256) if b not in b" \t\r\n\v\f'\"*"]
words_st = st.lists(st.sampled_from(word_bytes), min_size=1, max_size=10).map(bytes)


@given(words=st.lists(words_st, min_size=1, max_size=5))
def test_inline_words_split_on_spaces(words: list[bytes]):
    assert parse_all([b" ".join(words) + b"\r\n"]) == [words]


def test_inline_and_multibulk_can_be_pipelined_together():
    wire = b"PING\r\n" + encode_command("ECHO", b"a b") + b'ECHO "x y"\n'
    assert parse_all([wire]) == [[b"PING"], [b"ECHO", b"a b"], [b"ECHO", b"x y"]]


# --- requests: malformed input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"*-2\r\n", "invalid multibulk length"),
        (b"*x\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"* 1\r\n", "invalid multibulk length"),
        (b"*1_0\r\n", "invalid multibulk length"),
        (b"*1048577\r\n", "invalid multibulk length"),
        (b"*99999999999999999999\r\n", "invalid multibulk length"),
        (b"*" + b"1" * 100, "invalid multibulk length"),  # no CRLF yet, already too long
        (b"*1\r\nx", "expected '\\$', got 'x'"),
        (b"*1\r\n:1\r\n", "expected '\\$', got ':'"),
        (b"*1\r\n\x00", "expected '\\$', got '\\\\x00'"),
        (b"*2\r\n$4\r\nECHO\r\nhi\r\n", "expected '\\$', got 'h'"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$" + b"9" * 100, "invalid bulk length"),
        (b"*1\r\n$2\r\nabc\r\n", "not followed by CRLF"),
        (b"*1\r\n$4\r\nabcdef\r\n", "not followed by CRLF"),
        (b"*1\r\n$2\r\nab\n\r", "not followed by CRLF"),
        (b"A" * (64 * 1024 + 1), "too big inline request"),  # no newline needed to know
        (b"A" * (64 * 1024 + 1) + b"\r\n", "too big inline request"),
        (b'SET k "unterminated\r\n', "unbalanced quotes"),
        (b"SET k 'unterminated\r\n", "unbalanced quotes"),
        (b'SET k "closed"glued\r\n', "unbalanced quotes"),
        (b'SET k "ends in backslash\\"\r\n', "unbalanced quotes"),
    ],
)
def test_malformed_requests(wire: bytes, message: str):
    for chunks in ([wire], one_byte_chunks(wire)):
        with pytest.raises(ProtocolError, match=f"^Protocol error: .*{message}"):
            parse_all(chunks)


def test_commands_before_a_bad_frame_are_delivered():
    assert outcome([b"PING\r\n*1\r\n$1\r\nx\r\n*x\r\n"]) == (
        [[b"PING"], [b"x"]],
        "Protocol error: invalid multibulk length",
    )


def test_limits_are_configurable():
    ok = encode_command(b"x" * 10, b"y")
    assert outcome([ok], max_bulk_len=10, max_multibulk_len=2) == ([[b"x" * 10, b"y"]], None)
    assert outcome([ok], max_bulk_len=9)[1] == "Protocol error: invalid bulk length"
    assert outcome([ok], max_multibulk_len=1)[1] == "Protocol error: invalid multibulk length"
    line = b"A" * 10
    assert outcome([line + b"\r\n"], max_inline_len=11) == ([[line]], None)
    assert outcome([line + b"\r\n"], max_inline_len=10)[1] == (
        "Protocol error: too big inline request"
    )
    assert outcome([line], max_inline_len=9)[1] == "Protocol error: too big inline request"


# Bytes that look like protocol, so that random frames get deep into the parser.
protocolish = st.lists(
    st.sampled_from(
        [
            b"*",
            b"$",
            b"\r\n",
            b"\r",
            b"\n",
            b"-",
            b"0",
            b"1",
            b"2",
            b"3",
            b"-1",
            b"99",
            b"x",
            b" ",
            b'"',
            b"'",
            b"\\",
            b"\\x4",
            b"1\r\n",
            b"$1\r\na\r\n",
            b"*1\r\n",
        ]
    ),
    max_size=40,
).map(b"".join)
garbage = st.one_of(st.binary(max_size=200), protocolish)


@given(wire=garbage, data=st.data())
def test_garbage_only_raises_protocol_error_regardless_of_chunking(
    wire: bytes, data: st.DataObject
):
    # outcome() lets only ProtocolError through, so any other exception fails the test.
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    whole = outcome([wire], max_inline_len=50)
    assert outcome(split_at(wire, cuts), max_inline_len=50) == whole
    assert outcome(one_byte_chunks(wire), max_inline_len=50) == whole


@given(wire=garbage)
def test_errors_always_carry_the_redis_prefix(wire: bytes):
    _, error = outcome([wire + b"\r\n"])
    assert error is None or error.startswith("Protocol error: ")


def test_large_bulk_in_64k_chunks():
    size = 100 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    wire = memoryview(encode_command(b"SET", b"key", payload) + encode_command(b"PING"))
    parser = RequestParser()
    started = time.perf_counter()
    commands = []
    for offset in range(0, len(wire), 64 * 1024):
        parser.feed(wire[offset : offset + 64 * 1024])
        while (command := parser.next_command()) is not None:
            commands.append(command)
    elapsed = time.perf_counter() - started
    assert len(commands) == 2
    name, key, value = commands[0]
    assert (name, key, len(value)) == (b"SET", b"key", size)
    assert value[:3] == b"\x00\x01\x02" and value[-2:] == b"\xfe\xff"
    assert value == payload
    assert commands[1] == [b"PING"]
    # A parser that rescans or copies the buffer per feed takes minutes here.
    assert elapsed < 5


# --- replies: checked against hiredis --------------------------------------------------


class HiredisProtocolError(Exception):
    pass


class HiredisReplyError(Exception):
    pass


NO_REPLY = object()  # hiredis's default "no reply yet" is False, which is also RESP3 false


def hiredis_reader() -> hiredis.Reader:
    return hiredis.Reader(
        protocolError=HiredisProtocolError, replyError=HiredisReplyError, notEnoughData=NO_REPLY
    )


def hiredis_parse(wire: bytes) -> object:
    reader = hiredis_reader()
    reader.feed(wire)
    reply = reader.gets()
    assert reply is not NO_REPLY, "hiredis saw an incomplete reply"
    assert reader.gets() is NO_REPLY, "trailing bytes after the reply"
    return reply


def normalize(value: object) -> object:
    """Make hiredis output comparable: exceptions and NaN do not compare equal to themselves."""
    if isinstance(value, HiredisReplyError):
        return ("error", str(value))
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {key: normalize(item) for key, item in value.items()}
    return value


def one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def expected_resp2(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, ErrorReply):
        return ("error", one_line(value))
    if isinstance(value, SimpleString):
        return one_line(value).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return [expected_resp2(x) for pair in value.items() for x in pair]
    if isinstance(value, list | tuple | set | frozenset):
        return [expected_resp2(item) for item in value]
    return value  # None, bytes


def expected_resp3(value: object) -> object:
    if isinstance(value, bool | None):
        return value
    if isinstance(value, int):
        # hiredis hands RESP3 big numbers over as their decimal text.
        return value if -(2**63) <= value < 2**63 else str(value).encode()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value
    if isinstance(value, dict):
        return {expected_resp3(key): expected_resp3(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [expected_resp3(item) for item in value]
    return expected_resp2(value)  # strings, bytes and errors look the same in both


text_st = st.text(max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.integers(),
    st.floats(),
    st.binary(max_size=30),
    st.binary(max_size=30).map(bytearray),
    st.binary(max_size=30).map(memoryview),
    text_st,
    text_st.map(SimpleString),
    text_st.map(ErrorReply),
)
# Keys that stay hashable and distinct after hiredis decodes them (bytes and 64-bit ints).
keys = st.one_of(st.binary(max_size=8), INT64)
replies = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.lists(inner, max_size=5).map(Push),
        st.dictionaries(keys, inner, max_size=4).map(Map),
        st.frozensets(keys, max_size=4),
    ),
    max_leaves=20,
)


@given(value=replies)
def test_resp2_replies_match_hiredis(value: object):
    assert normalize(hiredis_parse(encode_reply(value))) == expected_resp2(value)


@given(value=replies)
def test_resp3_replies_match_hiredis(value: object):
    assert normalize(hiredis_parse(encode_reply(value, resp3=True))) == expected_resp3(value)


@given(value=replies, data=st.data())
def test_replies_stream_back_to_back(value: object, data: st.DataObject):
    # Several replies in one buffer must not bleed into each other.
    other = data.draw(replies)
    reader = hiredis_reader()
    reader.feed(encode_reply(value, resp3=True) + encode_reply(other, resp3=True))
    assert normalize(reader.gets()) == expected_resp3(value)
    assert normalize(reader.gets()) == expected_resp3(other)
    assert reader.gets() is NO_REPLY


@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        (None, b"$-1\r\n", b"_\r\n"),
        (True, b":1\r\n", b"#t\r\n"),
        (False, b":0\r\n", b"#f\r\n"),
        (-7, b":-7\r\n", b":-7\r\n"),
        (2**64, b"$20\r\n18446744073709551616\r\n", b"(18446744073709551616\r\n"),
        (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (float("inf"), b"$3\r\ninf\r\n", b",inf\r\n"),
        (float("-inf"), b"$4\r\n-inf\r\n", b",-inf\r\n"),
        (float("nan"), b"$3\r\nnan\r\n", b",nan\r\n"),
        (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
        ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
        (SimpleString("OK"), b"+OK\r\n", b"+OK\r\n"),
        (ErrorReply("ERR bad\r\nthing"), b"-ERR bad  thing\r\n", b"-ERR bad  thing\r\n"),
        ([], b"*0\r\n", b"*0\r\n"),
        (Map({b"a": 1}), b"*2\r\n$1\r\na\r\n:1\r\n", b"%1\r\n$1\r\na\r\n:1\r\n"),
        (Map(), b"*0\r\n", b"%0\r\n"),
        ({b"a": None}, b"*2\r\n$1\r\na\r\n$-1\r\n", b"%1\r\n$1\r\na\r\n_\r\n"),
        (frozenset([7]), b"*1\r\n:7\r\n", b"~1\r\n:7\r\n"),
        (
            Push(["message", b"ch", [1]]),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*1\r\n:1\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*1\r\n:1\r\n",
        ),
    ],
)
def test_reply_bytes(value: object, resp2: bytes, resp3: bytes):
    assert encode_reply(value) == resp2
    assert encode_reply(value, resp3=True) == resp3


@pytest.mark.parametrize("value", [object(), 1j, [b"ok", object()], Map({b"k": 1j})])
def test_unknown_reply_types_raise_type_error(value: object):
    for resp3 in (False, True):
        with pytest.raises(TypeError):
            encode_reply(value, resp3=resp3)


@settings(max_examples=20)
@given(size=st.integers(0, 3 * 1024 * 1024))
def test_large_bulk_reply(size: int):
    payload = b"\xab" * size
    assert hiredis_parse(encode_reply([payload, memoryview(payload)])) == [payload, payload]


def test_consumed_bytes_are_freed_once_everything_is_parsed():
    """An idle connection must not keep its last (possibly huge) request in memory."""
    parser = RequestParser()
    parser.feed(encode_command("STORE", "k", b"x" * 1_000_000))
    assert parser.next_command() is not None
    assert parser.next_command() is None
    assert len(parser._buf) == 0
