"""Redis's generic keyspace and pub/sub commands, over the ai keyspace (tensors, models,
scripts): what RedisAI clients and redis-cli expect to find beside the AI.* commands."""

from __future__ import annotations

from typing import Any

from learnhub.ai.keyspace import REDIS_TYPES
from learnhub.server.commands import OK, CommandError, Context, Replies, command, text
from learnhub.server.resp import Push, SimpleString

# SCAN walks the sorted key list; the cursor is the position to go on from.
SCAN_COUNT = 10


def _keys(args: list[bytes]) -> list[str]:
    return [text(a, "key") for a in args]


@command("DEL", -2, blocking=True)
def del_(ctx: Context, args: list[bytes]) -> Any:
    return ctx.hub.ai.keyspace.delete(_keys(args))


@command("UNLINK", -2, blocking=True)
def unlink(ctx: Context, args: list[bytes]) -> Any:
    return del_(ctx, args)


@command("EXISTS", -2, blocking=True)
def exists(ctx: Context, args: list[bytes]) -> Any:
    keys = _keys(args)
    found = ctx.hub.ai.keyspace.fetch(keys)
    return sum(key in found for key in keys)  # a key named twice counts twice, as in Redis


@command("TYPE", 2, blocking=True)
def type_(ctx: Context, args: list[bytes]) -> Any:
    kind = ctx.hub.ai.keyspace.type_of(text(args[0], "key"))
    return SimpleString("none" if kind is None else REDIS_TYPES[kind])


@command("KEYS", 2, blocking=True)
def keys(ctx: Context, args: list[bytes]) -> Any:
    return [k for k, _, _ in ctx.hub.ai.keyspace.keys(text(args[0], "pattern"))]


@command("SCAN", -2, blocking=True)
def scan(ctx: Context, args: list[bytes]) -> Any:
    try:
        cursor = int(args[0])
    except ValueError:
        cursor = -1
    if cursor < 0:
        raise CommandError("ERR invalid cursor")
    pattern, count, kind = "*", SCAN_COUNT, None
    rest = args[1:]
    while rest:
        option = rest[0].upper()
        if len(rest) < 2 or option not in (b"MATCH", b"COUNT", b"TYPE"):
            raise CommandError("ERR syntax error")
        if option == b"MATCH":
            pattern = text(rest[1], "pattern")
        elif option == b"COUNT":
            if not rest[1].isdigit() or int(rest[1]) < 1:
                raise CommandError("ERR value is not an integer or out of range")
            count = int(rest[1])
        else:
            wanted = text(rest[1]).upper()
            kind = next((k for k, name in REDIS_TYPES.items() if name == wanted), "?")
        rest = rest[2:]
    names = [k for k, t, _ in ctx.hub.ai.keyspace.keys(pattern) if kind is None or t == kind]
    following = cursor + count if cursor + count < len(names) else 0
    return [str(following), names[cursor : cursor + count]]


@command("FLUSHALL", -1, blocking=True)
def flushall(ctx: Context, args: list[bytes]) -> Any:
    if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
        raise CommandError("ERR syntax error")
    ctx.hub.ai.keyspace.flush()
    return OK


@command("FLUSHDB", -1, blocking=True)
def flushdb(ctx: Context, args: list[bytes]) -> Any:
    return flushall(ctx, args)


# --- pub/sub ------------------------------------------------------------------------------


def _subscription(ctx: Context, kind: str, names: list[bytes], adding: bool) -> Replies:
    session = ctx.session
    target = session.patterns if kind.startswith("p") else session.channels
    chosen = [text(n, "channel") for n in names] or (sorted(target) if not adding else [])
    replies = Replies()
    for name in chosen or [None]:
        if name is not None:
            (target.add if adding else target.discard)(name)
        count = len(session.channels) + len(session.patterns)
        replies.append(Push([kind, name, count]))
    ctx.server.pubsub.update(session)
    return replies


@command("SUBSCRIBE", -2)
def subscribe(ctx: Context, args: list[bytes]) -> Any:
    return _subscription(ctx, "subscribe", args, adding=True)


@command("PSUBSCRIBE", -2)
def psubscribe(ctx: Context, args: list[bytes]) -> Any:
    return _subscription(ctx, "psubscribe", args, adding=True)


@command("UNSUBSCRIBE", -1)
def unsubscribe(ctx: Context, args: list[bytes]) -> Any:
    return _subscription(ctx, "unsubscribe", args, adding=False)


@command("PUNSUBSCRIBE", -1)
def punsubscribe(ctx: Context, args: list[bytes]) -> Any:
    return _subscription(ctx, "punsubscribe", args, adding=False)


@command("PUBLISH", 3)
def publish(ctx: Context, args: list[bytes]) -> Any:
    return ctx.server.pubsub.publish(text(args[0], "channel"), args[1])
