"""The command table: what each RESP command does, as plain functions of (context, args).

To add a command, write a function and decorate it with ``@command(NAME, arity)``. Arity
counts the command name, as Redis does: 2 means exactly one argument, -2 at least one.
Commands marked ``blocking`` touch the store and run in a worker thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from learnhub.__about__ import __version__
from learnhub.learning.artifacts import Artifact, attr_text
from learnhub.server.pubsub import PubSub
from learnhub.server.resp import Map, SimpleString

if TYPE_CHECKING:
    from learnhub.hub import Hub

OK = SimpleString("OK")
# What clients that check the server version see; learnhub speaks Redis 7's connection commands.
REDIS_VERSION = "7.0.0"


class CommandError(Exception):
    """Becomes an error reply; the text starts with its Redis error code (ERR, NOAUTH, ...)."""


class Replies(list[Any]):
    """Several replies to one command, sent one after the other (SUBSCRIBE a b: one each)."""


@dataclass
class Session:
    """One client connection's state."""

    id: int
    tcp: bool
    authenticated: bool
    resp3: bool = False
    name: str | None = None
    lib: dict[str, str] = field(default_factory=dict)
    quit: bool = False
    # Pub/sub: what this connection listens to, and how to push a message to it from any thread.
    channels: set[str] = field(default_factory=set)
    patterns: set[str] = field(default_factory=set)
    send: Callable[[bytes], None] | None = None


@dataclass
class ServerInfo:
    """What the commands need to know about the server they run in."""

    hub: Hub
    token: str | None
    unix_socket: str
    tcp_address: str | None
    started: float = field(default_factory=time.time)
    clients: int = 0
    commands_processed: int = 0
    pubsub: PubSub = field(default_factory=lambda: PubSub())
    # INFO commandstats: per command name, [calls, microseconds inside the handler, failed].
    command_stats: dict[str, list[int]] = field(default_factory=dict)
    stats_lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, ns: int, failed: bool) -> None:
        with self.stats_lock:
            stats = self.command_stats.setdefault(name, [0, 0, 0])
            stats[0] += 1
            stats[1] += ns // 1000
            stats[2] += failed


@dataclass
class Context:
    server: ServerInfo
    session: Session

    @property
    def hub(self) -> Hub:
        return self.server.hub


Handler = Callable[[Context, list[bytes]], Any]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    arity: int
    blocking: bool = False
    before_auth: bool = False


COMMANDS: dict[str, Command] = {}


def command(
    name: str, arity: int, *, blocking: bool = False, before_auth: bool = False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, handler, arity, blocking, before_auth)
        return handler

    return register


def resolve(session: Session, argv: list[bytes]) -> Command:
    """The command ``argv`` calls, checked for authentication and arity."""
    name = argv[0].decode(errors="replace").upper()
    cmd = COMMANDS.get(name)
    if cmd is None:
        shown = " ".join(f"'{a.decode(errors='replace')[:64]}'" for a in argv[1:4])
        raise CommandError(
            f"ERR unknown command '{argv[0].decode(errors='replace')[:64]}', "
            f"with args beginning with: {shown}"
        )
    if not session.authenticated and not cmd.before_auth:
        raise CommandError("NOAUTH Authentication required.")
    if (cmd.arity >= 0 and len(argv) != cmd.arity) or len(argv) < -cmd.arity:
        raise CommandError(f"ERR wrong number of arguments for '{name.lower()}' command")
    return cmd


def text(arg: bytes, what: str = "argument") -> str:
    try:
        return arg.decode()
    except UnicodeDecodeError:
        raise CommandError(f"ERR {what} must be UTF-8 text") from None


# --- connection -------------------------------------------------------------------------


@command("PING", -1, before_auth=True)
def ping(ctx: Context, args: list[bytes]) -> Any:
    if not ctx.session.authenticated:
        raise CommandError("NOAUTH Authentication required.")
    if len(args) > 1:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    return args[0] if args else SimpleString("PONG")


@command("ECHO", 2)
def echo(ctx: Context, args: list[bytes]) -> Any:
    return args[0]


@command("QUIT", -1, before_auth=True)
def quit_(ctx: Context, args: list[bytes]) -> Any:
    ctx.session.quit = True
    return OK


@command("SELECT", 2)
def select(ctx: Context, args: list[bytes]) -> Any:
    if args[0] != b"0":
        raise CommandError("ERR DB index is out of range (learnhub has database 0 only)")
    return OK


def _authenticate(ctx: Context, user: bytes | None, password: bytes) -> None:
    token = ctx.server.token
    if token is None:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default "
            "user. Are you sure your configuration is correct?"
        )
    if user not in (None, b"default") or password != token.encode():
        raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
    ctx.session.authenticated = True


@command("AUTH", -2, before_auth=True)
def auth(ctx: Context, args: list[bytes]) -> Any:
    if len(args) > 2:
        raise CommandError("ERR syntax error")
    _authenticate(ctx, args[0] if len(args) == 2 else None, args[-1])
    return OK


@command("HELLO", -1, before_auth=True)
def hello(ctx: Context, args: list[bytes]) -> Any:
    proto = None
    if args:
        if args[0] not in (b"2", b"3"):
            raise CommandError("NOPROTO unsupported protocol version")
        proto = int(args[0])
    rest = args[1:]
    while rest:
        option = rest[0].upper()
        if option == b"AUTH" and len(rest) >= 3:
            _authenticate(ctx, rest[1], rest[2])
            rest = rest[3:]
        elif option == b"SETNAME" and len(rest) >= 2:
            ctx.session.name = text(rest[1], "client name")
            rest = rest[2:]
        else:
            raise CommandError(f"ERR syntax error in HELLO option '{text(rest[0])}'")
    if not ctx.session.authenticated:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated")
    if proto is not None:
        ctx.session.resp3 = proto == 3
    return Map(
        server="redis",
        version=REDIS_VERSION,
        proto=3 if ctx.session.resp3 else 2,
        id=ctx.session.id,
        mode="standalone",
        role="master",
        modules=[],
    )


@command("CLIENT", -2)
def client(ctx: Context, args: list[bytes]) -> Any:
    sub = args[0].upper()
    if sub == b"ID" and len(args) == 1:
        return ctx.session.id
    if sub == b"GETNAME" and len(args) == 1:
        return ctx.session.name
    if sub == b"SETNAME" and len(args) == 2:
        name = text(args[1], "client name")
        if any(c.isspace() for c in name):
            raise CommandError(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        ctx.session.name = name or None
        return OK
    if sub == b"SETINFO" and len(args) == 3:
        attr = text(args[1]).lower()
        if attr not in ("lib-name", "lib-ver"):
            raise CommandError(f"ERR Unrecognized option '{text(args[1])}'")
        ctx.session.lib[attr] = text(args[2])
        return OK
    raise CommandError(
        f"ERR unknown subcommand or wrong number of arguments for 'CLIENT|{text(args[0])}'. "
        "learnhub supports CLIENT ID, GETNAME, SETNAME and SETINFO"
    )


def _command_info(cmd: Command) -> list[Any]:
    flags = [SimpleString("write" if cmd.name == "STORE" else "readonly")]
    first_key = 1 if cmd.name in ("LOOKUP", "LOOKUP_LOCAL", "STORE") else 0
    return [cmd.name.lower(), cmd.arity, flags, first_key, first_key, 1 if first_key else 0]


@command("COMMAND", -1)
def command_(ctx: Context, args: list[bytes]) -> Any:
    if not args:
        return [_command_info(c) for c in COMMANDS.values()]
    sub = args[0].upper()
    if sub == b"COUNT":
        return len(COMMANDS)
    if sub == b"INFO":
        return [
            _command_info(COMMANDS[n]) if (n := text(a).upper()) in COMMANDS else None
            for a in args[1:]
        ]
    if sub == b"DOCS":  # redis-cli asks for help texts; it copes with having none
        return Map()
    raise CommandError(f"ERR unknown subcommand '{text(args[0])}'. Try COMMAND, COUNT, INFO, DOCS")


@command("INFO", -1)
def info(ctx: Context, args: list[bytes]) -> Any:
    server = ctx.server
    counts = ctx.hub.learning.counts()
    sections = {
        "server": {
            "redis_version": REDIS_VERSION,
            "learnhub_version": __version__,
            "redis_mode": "standalone",
            "process_id": os.getpid(),
            "node_id": ctx.hub.node_id,
            "uptime_in_seconds": int(time.time() - server.started),
            "unix_socket": server.unix_socket,
            "tcp_address": server.tcp_address or "",
        },
        "clients": {"connected_clients": server.clients},
        "stats": {"total_commands_processed": server.commands_processed},
        "store": {"store_dialect": ctx.hub.store.dialect},
        "learning": {"learning_keys": counts["keys"], "learning_versions": counts["versions"]},
    }
    wanted = {text(a).lower() for a in args}
    if wanted & {"all", "everything", "commandstats"}:  # as in Redis, not in the default set
        with server.stats_lock:
            sections["commandstats"] = {
                f"cmdstat_{name.lower()}": f"calls={calls},usec={usec},"
                f"usec_per_call={usec / calls:.2f},rejected_calls=0,failed_calls={failed}"
                for name, (calls, usec, failed) in sorted(server.command_stats.items())
            }
    wanted -= {"all", "everything", "default"}
    lines = []
    for name, fields in sections.items():
        if wanted and name not in wanted:
            continue
        lines.append(f"# {name.capitalize()}")
        lines += [f"{k}:{v}" for k, v in fields.items()]
        lines.append("")
    return "\r\n".join(lines)


# --- learning data ----------------------------------------------------------------------


def artifact_reply(artifact: Artifact | None) -> Any:
    if artifact is None:
        return None
    return Map(
        version=artifact.version,
        metric=artifact.metric,
        updated=artifact.updated.isoformat(),
        origin=artifact.origin,
        attrs=Map({k: attr_text(v) for k, v in artifact.attrs.items()}),
        files=Map(artifact.files),
        base=artifact.base,
    )


def _lookup(ctx: Context, args: list[bytes], local: bool) -> Any:
    key = text(args[0], "key")
    rest = args[1:]
    where: dict[str, str] = {}
    if rest:
        if rest[0].upper() != b"WHERE" or len(rest) < 3 or len(rest) % 2 == 0:
            raise CommandError("ERR syntax error: expected LOOKUP key [WHERE field value ...]")
        for name, value in zip(rest[1::2], rest[2::2], strict=True):
            where[text(name, "WHERE field")] = text(value, "WHERE value")
    return artifact_reply(ctx.hub.learning.lookup(key, where, local=local))


@command("LOOKUP", -2, blocking=True)
def lookup(ctx: Context, args: list[bytes]) -> Any:
    return _lookup(ctx, args, local=False)


@command("LOOKUP_LOCAL", -2, blocking=True)
def lookup_local(ctx: Context, args: list[bytes]) -> Any:
    return _lookup(ctx, args, local=True)


@command("STORE", -5, blocking=True)
def store(ctx: Context, args: list[bytes]) -> Any:
    key = text(args[0], "key")
    try:
        metric = float(args[1])
    except ValueError:
        raise CommandError(
            f"ERR metric must be a number, got '{args[1].decode(errors='replace')[:64]}'"
        ) from None
    base = None
    attrs: dict[str, str] = {}
    files: dict[str, bytes] = {}
    rest = args[2:]
    while rest:
        option = rest[0].upper()
        if option == b"BASE" and len(rest) >= 2:
            base, rest = text(rest[1], "BASE"), rest[2:]
        elif option == b"ATTR" and len(rest) >= 3:
            attrs[text(rest[1], "ATTR field")] = text(rest[2], "ATTR value")
            rest = rest[3:]
        elif option == b"FILE" and len(rest) >= 3:
            name = text(rest[1], "FILE name")
            if name in files:
                raise CommandError(f"ERR file {name!r} is given twice")
            files[name] = rest[2]
            rest = rest[3:]
        else:
            raise CommandError(
                "ERR syntax error: expected STORE key metric [BASE version] "
                "[ATTR field value ...] FILE name blob [FILE name blob ...]"
            )
    if not files:
        raise CommandError("ERR STORE needs at least one FILE name blob; nothing was stored")
    return ctx.hub.learning.put(key, files, metric, attrs, base).current
