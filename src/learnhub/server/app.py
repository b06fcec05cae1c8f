"""The network loop: accepts connections, feeds bytes to the codec, runs commands, writes
replies. Everything the protocol means lives in resp.py and commands.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learnhub.errors import AlreadyRunning, LearnhubError, ServerError
from learnhub.server import ai as _ai  # noqa: F401 (registers the AI.* commands)
from learnhub.server import keyspace as _keyspace  # noqa: F401 (DEL, KEYS, SUBSCRIBE ...)
from learnhub.server.commands import (
    Command,
    CommandError,
    Context,
    Replies,
    ServerInfo,
    Session,
    resolve,
)
from learnhub.server.pool import WarmPool
from learnhub.server.resp import ErrorReply, ProtocolError, RequestParser, encode_reply

if TYPE_CHECKING:
    from learnhub.hub import Hub
    from learnhub.jobs import Worker

log = logging.getLogger("learnhub.server")
READ_SIZE = 1 << 16
# How long a shutdown waits for commands already running before it gives up on them.
SHUTDOWN_GRACE_S = 30.0


@dataclass(eq=False)  # kept in a set by identity
class _Connection:
    task: asyncio.Task[None]
    busy: bool = False
    closing: bool = False


class Server:
    """Serves one hub on a UNIX socket and, with a token, on TCP."""

    def __init__(
        self,
        hub: Hub,
        socket_path: Path,
        listen: str | None = None,
        token: str | None = None,
        workers: int = 32,
    ) -> None:
        self.check_listen(listen, token)
        self.hub = hub
        self.socket_path = Path(socket_path)
        self.tcp = _host_port(listen) if listen else None
        self.info = ServerInfo(hub, token, str(self.socket_path), listen)
        # Most recently idle thread first: a steady client keeps one thread and its warm
        # SQLite connection (see pool.py).
        self._executor = WarmPool(workers, thread_name_prefix="learnhub-cmd")
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._lock_fd: int | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()  # set once the sockets accept connections

    @staticmethod
    def check_listen(listen: str | None, token: str | None) -> None:
        """Reject a TCP address that is malformed or would be open to anyone."""
        if listen is None:
            return
        _host_port(listen)
        if not token:
            raise ServerError(
                f"refusing to serve on TCP {listen} without a token: pass --token T "
                "(or set LEARNHUB_SERVER_TOKEN); clients then send AUTH T"
            )

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        unix = self._bind_unix()
        try:
            self._servers.append(
                await asyncio.start_unix_server(
                    lambda r, w: self._serve_connection(r, w, tcp=False), sock=unix
                )
            )
            if self.tcp:
                host, port = self.tcp
                try:
                    self._servers.append(
                        await asyncio.start_server(
                            lambda r, w: self._serve_connection(r, w, tcp=True), host, port
                        )
                    )
                except OSError as exc:
                    raise ServerError(
                        f"cannot listen on TCP {host}:{port}: {exc.strerror}"
                    ) from exc
        except BaseException:
            await self._close_listeners()
            raise
        where = f"unix:{self.socket_path}" + (
            f" and tcp:{self.info.tcp_address}" if self.tcp else ""
        )
        self.hub.ai.keyspace.subscribe(self.info.pubsub.key_event)
        log.info("learnhub node %s serving %r on %s", self.hub.node_id, self.hub.store, where)
        self.ready.set()

    async def serve_forever(
        self, handle_signals: bool = True, on_started: Callable[[], None] | None = None
    ) -> None:
        """Serve until stop() or, with ``handle_signals``, SIGTERM/SIGINT; then shut down."""
        await self.start()
        if on_started:
            on_started()
        assert self._stop is not None and self._loop is not None
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._stop.set)
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    def stop(self) -> None:
        """Ask the server to shut down; safe to call from any thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def shutdown(self) -> None:
        """Stop accepting, let running commands finish and reply, then close everything."""
        await self._close_listeners()
        for conn in list(self._connections):
            conn.closing = True
            if not conn.busy:
                conn.task.cancel()
        tasks = [c.task for c in self._connections]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        self._executor.shutdown(wait=True)
        with contextlib.suppress(ValueError):  # never subscribed: start() failed
            self.hub.ai.keyspace.unsubscribe(self.info.pubsub.key_event)
        log.info("learnhub stopped")

    async def _close_listeners(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _bind_unix(self) -> socket.socket:
        path = self.socket_path
        if not path.parent.is_dir():
            raise ServerError(
                f"cannot create socket {path}: directory {path.parent} does not exist; "
                "create it or choose another path with --socket"
            )
        # The lock file, not the socket, says who owns the path: a socket left by a killed
        # hub is stale exactly when its lock is free.
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(
                    f"another learnhub (pid {owner}) is already serving on {path}; stop it "
                    "first or choose another path with --socket"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is born 0600: no window for others
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            os.close(fd)  # release the lock: we serve nothing on this path
            self._lock_fd = None
            raise ServerError(f"cannot create socket {path}: {exc.strerror or exc}") from exc
        finally:
            os.umask(old_umask)
        return sock

    # --- connections --------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tcp: bool
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(task)
        self._connections.add(conn)
        self.info.clients += 1
        session = Session(id=next(self._ids), tcp=tcp, authenticated=not tcp)
        assert self._loop is not None
        loop = self._loop

        def send(data: bytes) -> None:  # pub/sub messages, from any thread
            loop.call_soon_threadsafe(lambda: None if conn.closing else writer.write(data))

        session.send = send
        parser = RequestParser()
        try:
            while not conn.closing:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                conn.busy = True
                parser.feed(data)
                commands, error = _drain(parser)
                replies = await self._run(session, commands)
                if error is not None:
                    # Framing is lost: we can't find the next command, so say why and hang up.
                    replies.append(encode_reply(ErrorReply(f"ERR {error}"), session.resp3))
                    conn.closing = True
                writer.write(b"".join(replies))
                await writer.drain()
                conn.busy = False
                if session.quit:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.closing = True
            session.channels.clear()
            session.patterns.clear()
            self.info.pubsub.update(session)
            self._connections.discard(conn)
            self.info.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _run(self, session: Session, commands: list[list[bytes]]) -> list[bytes]:
        """Run commands in order and return their encoded replies.

        Consecutive store commands go to a worker thread together: one hand-off per run of
        them, not per command, which is what makes pipelined LOOKUPs fast.
        """
        replies: list[bytes] = []
        i = 0
        while i < len(commands) and not session.quit:
            batch = []
            while i < len(commands):
                cmd = self._resolve(session, commands[i])
                if not (isinstance(cmd, Command) and cmd.blocking):
                    break
                batch.append((cmd, commands[i][1:]))
                i += 1
            # Counted as they start, so INFO shows a command that is still running.
            self.info.commands_processed += len(batch) or 1
            if batch:
                assert self._loop is not None
                results = await self._loop.run_in_executor(
                    self._executor, lambda b=batch: [self._call(session, c, a) for c, a in b]
                )
            else:
                results = [
                    self._call(session, cmd, commands[i][1:]) if isinstance(cmd, Command) else cmd
                ]
                i += 1
            for r in results:
                if isinstance(r, Replies):
                    replies += [encode_reply(one, session.resp3) for one in r]
                else:
                    replies.append(encode_reply(r, session.resp3))
        return replies

    def _resolve(self, session: Session, argv: list[bytes]) -> Command | ErrorReply:
        try:
            return resolve(session, argv)
        except CommandError as exc:
            return ErrorReply(str(exc))

    def _call(self, session: Session, cmd: Command, args: list[bytes]) -> Any:
        started = time.perf_counter_ns()
        reply: Any
        try:
            reply = cmd.handler(Context(self.info, session), args)
        except CommandError as exc:
            reply = ErrorReply(str(exc))
        except LearnhubError as exc:
            reply = ErrorReply(f"ERR {exc}")
        except Exception as exc:  # a bug must cost one reply, never the server
            log.exception("command %s failed", cmd.name)
            reply = ErrorReply(f"ERR internal error: {type(exc).__name__}: {exc}")
        self.info.count(cmd.name, time.perf_counter_ns() - started, isinstance(reply, ErrorReply))
        return reply


def _drain(parser: RequestParser) -> tuple[list[list[bytes]], ProtocolError | None]:
    """Every complete command in the parser, and the protocol error that ended them, if any."""
    commands = []
    try:
        while (argv := parser.next_command()) is not None:
            commands.append(argv)
    except ProtocolError as exc:
        return commands, exc
    return commands, None


def _host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServerError(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:7433")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(
    hub: Hub,
    socket_path: Path,
    listen: str | None = None,
    token: str | None = None,
    worker: Worker | None = None,
) -> None:
    """Run a server, and a job worker beside it once the server is up, in this process
    until SIGTERM or SIGINT; the worker then finishes its running jobs."""
    server = Server(hub, socket_path, listen, token)
    thread = threading.Thread(target=worker.run, name="learnhub-worker") if worker else None
    try:
        asyncio.run(server.serve_forever(on_started=thread.start if thread else None))
    finally:
        if worker and thread and thread.is_alive():
            worker.stop()
            thread.join()


@contextlib.contextmanager
def serving(hub: Hub, socket_path: Path, **kwargs: Any) -> Iterator[Server]:
    """Run a server on a background thread for the duration of a with-block (demo, tests)."""
    server = Server(hub, socket_path, **kwargs)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve_forever(handle_signals=False))
        except BaseException as exc:
            failure.append(exc)
        finally:
            server.ready.set()  # also when start failed, so the caller stops waiting

    thread = threading.Thread(target=run, name="learnhub-server")
    thread.start()
    server.ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield server
    finally:
        server.stop()
        thread.join()
