"""The RESP server end to end: real ``learnhub serve`` processes, real redis-py and redis-cli.

Every test talks to a server over a real socket; nothing is mocked. Raw sockets are used where
the protocol itself is under test (malformed frames, pipelining, AUTH byte by byte).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import learnhub
from conftest import ServeProcess, wait_for
from learnhub.errors import AlreadyRunning, ServerError
from learnhub.learning.artifacts import content_version
from learnhub.server.app import serving
from learnhub.server.resp import encode_command

REDIS_CLI = shutil.which("redis-cli")
TIMEOUT = 30  # seconds any single socket read or process wait may take before the test fails


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def server(serve: Callable[..., ServeProcess], db_url: str) -> ServeProcess:
    """One running ``learnhub serve`` on SQLite."""
    return serve(db_url)


def rconn(path: Path, protocol: int = 2, **kwargs: Any) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(path), protocol=protocol, socket_timeout=TIMEOUT, **kwargs
    )


@pytest.fixture
def raw(server: ServeProcess) -> Iterator[Callable[[], socket.socket]]:
    """Open raw UNIX-socket connections to the server; all are closed afterwards."""
    opened: list[socket.socket] = []

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(str(server.socket_path))
        opened.append(s)
        return s

    yield connect
    for s in opened:
        s.close()


def read_line(s: socket.socket) -> bytes:
    """One reply line (simple string, error or integer), without its CRLF."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data[:-2]


def read_bulk(s: socket.socket) -> bytes | None:
    header = read_line(s)
    assert header.startswith(b"$"), header
    length = int(header[1:])
    if length < 0:
        return None
    data = b""
    while len(data) < length + 2:
        chunk = s.recv(length + 2 - len(data))
        assert chunk, "connection closed inside a bulk string"
        data += chunk
    assert data.endswith(b"\r\n")
    return data[:-2]


def read_to_eof(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails)."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def pairs(reply: Any) -> dict[bytes, Any]:
    """A map reply as a dict, whether RESP3 sent a map or RESP2 a flat array."""
    if isinstance(reply, dict):
        return dict(reply)
    return dict(zip(reply[::2], reply[1::2], strict=True))


def store_args(key: str, metric: str, files: dict[str, bytes], **attrs: str) -> list[Any]:
    args: list[Any] = ["STORE", key, metric]
    for name, value in attrs.items():
        args += ["ATTR", name, value]
    for name, data in files.items():
        args += ["FILE", name, data]
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def finish(proc: ServeProcess) -> tuple[int, str]:
    """Wait for a server process that should exit by itself: its exit code and stderr."""
    _, err = proc.proc.communicate(timeout=60)
    return proc.proc.returncode, err.decode()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# --- 1. redis-py and the client library -----------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_speaks_to_the_server(server: ServeProcess, protocol: int) -> None:
    r = rconn(server.socket_path, protocol)
    try:
        assert r.ping() is True
        assert r.echo("héllo\r\n\x00") == "héllo\r\n\x00".encode()
        info = r.info()
        assert str(info["learnhub_version"]) == learnhub.__version__
        assert info["redis_mode"] == "standalone"
        assert "learning_versions" in info
        assert r.client_setname("worker-1") is True
        assert r.client_getname() in ("worker-1", b"worker-1")
        client_id = r.client_id()
        assert isinstance(client_id, int) and client_id > 0
        assert r.select(0) is True
        with pytest.raises(redis.ResponseError, match="out of range"):
            r.select(1)
        hello = pairs(r.execute_command("HELLO", protocol))
        assert hello[b"server"] == b"redis"
        assert hello[b"proto"] == protocol
        assert hello[b"id"] == client_id

        version = r.execute_command(
            *store_args("redis-py/k", "0.5", {"model.bin": b"\x00\xff\r\n$3\r\n"}, mode="fast")
        )
        assert isinstance(version, bytes) and len(version) == 32
        reply = pairs(r.execute_command("LOOKUP", "redis-py/k"))
        assert reply[b"version"] == version
        assert float(reply[b"metric"]) == 0.5
        assert pairs(reply[b"attrs"]) == {b"mode": b"fast"}
        assert pairs(reply[b"files"]) == {b"model.bin": b"\x00\xff\r\n$3\r\n"}
        assert pairs(r.execute_command("LOOKUP_LOCAL", "redis-py/k"))[b"version"] == version
        assert r.execute_command("LOOKUP", "redis-py/missing") is None
    finally:
        r.close()


def test_client_round_trip(server: ServeProcess, db_url: str) -> None:
    slow = {"model.bin": bytes(range(256)) * 16, "notes.txt": b"exact run\r\n"}
    fast = {"model.bin": b"\x00" * 1000 + b"*1\r\n$4\r\nPING\r\n"}  # RESP-looking payload
    with learnhub.connect(socket=server.socket_path) as client:
        assert client.ping() is True
        v_slow = client.store("solver", slow, 0.9, {"mode": "exact", "period": 20})
        v_fast = client.store("solver", fast, 0.1, {"mode": "fast", "period": 10}, base=v_slow)
        assert v_fast != v_slow
        # A worse version stored later does not become the best.
        assert client.store("solver", {"model.bin": b"worse"}, 5.0, {"mode": "fast"}) == v_fast

        best = client.lookup("solver")
        assert best is not None
        assert best.version == v_fast
        assert best.metric == 0.1
        assert best.files == fast
        assert best.attrs == {"mode": "fast", "period": "10"}
        assert best.base == v_slow
        assert best.sizes == {"model.bin": len(fast["model.bin"])}

        exact = client.lookup("solver", where={"mode": "exact"})
        assert exact is not None and exact.version == v_slow and exact.files == slow
        assert exact.base is None
        by_number = client.lookup("solver", where={"period": 20}, local=True)
        assert by_number is not None and by_number.version == v_slow
        assert client.lookup("solver", where={"mode": "none"}) is None
        assert client.lookup("nothing") is None
    with learnhub.open(db_url) as hub:
        assert len(hub.learning.versions("solver")) == 3
        assert hub.learning.get("solver", v_slow).files == slow


# --- 2. redis-cli ----------------------------------------------------------------------------


def redis_cli(sock: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    if REDIS_CLI is None:
        pytest.skip("redis-cli is not installed")
    return subprocess.run(
        [REDIS_CLI, "-s", str(sock), *args], input=stdin, capture_output=True, timeout=TIMEOUT
    )


def test_redis_cli_ping_store_lookup(server: ServeProcess, db_url: str) -> None:
    assert redis_cli(server.socket_path, "PING").stdout == b"PONG\n"
    data = b"line one\n\x00\xffbinary\r\nend"
    # -x sends stdin as the last argument: the FILE's blob.
    stored = redis_cli(
        server.socket_path,
        "-x",
        "STORE",
        "cli/key",
        "0.25",
        "ATTR",
        "src",
        "cli",
        "FILE",
        "data.bin",
        stdin=data,
    )
    assert stored.returncode == 0, stored.stderr
    version = stored.stdout.strip().decode()
    assert len(version) == 32
    looked = redis_cli(server.socket_path, "LOOKUP", "cli/key")
    assert looked.returncode == 0
    lines = looked.stdout.split(b"\n")
    assert lines[:2] == [b"version", version.encode()]
    assert b"data.bin" in lines and b"src" in lines and b"cli" in lines
    assert data in looked.stdout
    with learnhub.open(db_url) as hub:
        artifact = hub.learning.get("cli/key", version)
    assert artifact is not None and artifact.files == {"data.bin": data}


def test_redis_cli_unknown_command(server: ServeProcess) -> None:
    as_args = redis_cli(server.socket_path, "NOSUCHCMD", "a")
    assert as_args.stdout.decode().startswith("ERR unknown command 'NOSUCHCMD'")
    # Commands from stdin, one a line: the error does not end the session.
    session = redis_cli(server.socket_path, stdin=b"PING\nNOSUCHCMD x\nECHO still-here\n")
    out = session.stdout.decode().splitlines()
    assert out[0] == "PONG"
    assert out[1].startswith("ERR unknown command 'NOSUCHCMD'")
    assert "still-here" in out


# --- 3. bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\nX\r\n",
        b"*1\r\n$3\r\nPINGX\r\n",
        b"*-7\r\n",
        b"*1\r\n$99999999999999999999\r\n",
        b'PING "unbalanced\r\n',
    ],
)
def test_malformed_frame_gets_protocol_error_and_close(
    server: ServeProcess, raw: Callable[[], socket.socket], frame: bytes
) -> None:
    bystander = raw()  # a client that is connected throughout
    s = raw()
    s.sendall(frame)
    reply = read_to_eof(s)  # the server must hang up, not wait for more
    assert reply.startswith(b"-ERR Protocol error"), reply
    assert reply.endswith(b"\r\n") and reply.count(b"\r\n") == 1
    bystander.sendall(encode_command("PING"))
    assert read_line(bystander) == b"+PONG"
    fresh = raw()
    fresh.sendall(encode_command("ECHO", "alive"))
    assert read_bulk(fresh) == b"alive"
    assert server.proc.poll() is None


def test_replies_before_a_protocol_error_are_delivered(
    raw: Callable[[], socket.socket],
) -> None:
    s = raw()
    s.sendall(encode_command("PING") + encode_command("ECHO", "x") + b"*zz\r\n")
    assert read_to_eof(s) == (
        b"+PONG\r\n$1\r\nx\r\n-ERR Protocol error: invalid multibulk length\r\n"
    )


def test_pipelined_and_inline_commands(raw: Callable[[], socket.socket]) -> None:
    s = raw()
    s.sendall(b"PING\r\n" + encode_command("ECHO", "a") + b'ECHO "b c"\r\n' + b"\r\n")
    assert read_line(s) == b"+PONG"
    assert read_bulk(s) == b"a"
    assert read_bulk(s) == b"b c"
    s.sendall(encode_command("QUIT"))
    assert read_to_eof(s) == b"+OK\r\n"


def test_unknown_command_keeps_the_connection(raw: Callable[[], socket.socket]) -> None:
    s = raw()
    s.sendall(encode_command("SHUTDOWN", "now"))
    line = read_line(s)
    assert line.startswith(b"-ERR unknown command 'SHUTDOWN'"), line
    assert b"'now'" in line
    s.sendall(encode_command("PING"))
    assert read_line(s) == b"+PONG"


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["LOOKUP"], "lookup"),
        (["ECHO", "a", "b"], "echo"),
        (["ECHO"], "echo"),
        (["STORE", "k", "1", "FILE"], "store"),
        (["SELECT"], "select"),
        (["PING", "a", "b"], "ping"),
    ],
)
def test_wrong_arity(server: ServeProcess, args: list[str], name: str) -> None:
    r = rconn(server.socket_path)
    with pytest.raises(redis.ResponseError, match=f"wrong number of arguments for '{name}'"):
        r.execute_command(*args)
    assert r.ping() is True  # same connection still works
    r.close()


@pytest.mark.parametrize("metric", ["abc", "", "1.5x", "nan", "inf", "-1e999"])
def test_bad_metric_stores_nothing(server: ServeProcess, db_url: str, metric: str) -> None:
    r = rconn(server.socket_path)
    kept = r.execute_command(*store_args("kept", "1", {"f": b"v1"}))
    with pytest.raises(redis.ResponseError, match="metric must be a (finite )?number") as exc:
        r.execute_command(*store_args("fresh", metric, {"f": b"x"}))
    assert "Traceback" not in str(exc.value) and "internal" not in str(exc.value)
    with pytest.raises(redis.ResponseError, match="metric"):
        r.execute_command(*store_args("kept", metric, {"f": b"v2"}))
    assert r.execute_command("LOOKUP", "fresh") is None
    assert pairs(r.execute_command("LOOKUP", "kept"))[b"version"] == kept
    r.close()
    with learnhub.open(db_url) as hub:
        assert [v.version for v in hub.learning.versions("kept")] == [kept.decode()]
        assert hub.learning.counts() == {"keys": 1, "versions": 1}


def test_store_without_file_stores_nothing(server: ServeProcess, db_url: str) -> None:
    r = rconn(server.socket_path)
    with pytest.raises(redis.ResponseError, match="at least one FILE"):
        r.execute_command("STORE", "k", "1", "ATTR", "a", "b")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("STORE", "k", "1", "FILE", "only-a-name")
    assert r.execute_command("LOOKUP", "k") is None
    r.close()
    with learnhub.open(db_url) as hub:
        assert hub.learning.counts()["versions"] == 0


def test_duplicate_file_names_rejected(server: ServeProcess) -> None:
    r = rconn(server.socket_path)
    with pytest.raises(redis.ResponseError, match="'model.bin' is given twice"):
        r.execute_command("STORE", "k", "1", "FILE", "model.bin", b"a", "FILE", "model.bin", b"b")
    assert r.execute_command("LOOKUP", "k") is None
    r.close()


def test_unknown_where_field_is_named(server: ServeProcess) -> None:
    r = rconn(server.socket_path)
    r.execute_command(*store_args("k", "1", {"f": b"x"}, mode="fast"))
    with pytest.raises(redis.ResponseError, match="unknown attribute 'colour'") as exc:
        r.execute_command("LOOKUP", "k", "WHERE", "colour", "red")
    assert "mode" in str(exc.value)  # and says which fields exist
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("LOOKUP", "k", "WHERE", "mode")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("LOOKUP", "k", "WHRE", "mode", "fast")
    assert pairs(r.execute_command("LOOKUP", "k", "WHERE", "mode", "fast"))[b"files"]
    r.close()


def test_zero_byte_file(server: ServeProcess) -> None:
    with learnhub.connect(socket=server.socket_path) as client:
        version = client.store("empty", {"empty.bin": b"", "one.bin": b"1"}, 0.0)
        found = client.lookup("empty")
    assert found is not None and found.version == version
    assert found.files == {"empty.bin": b"", "one.bin": b"1"}
    assert found.sizes == {"empty.bin": 0, "one.bin": 1}


@pytest.mark.slow
def test_100_mb_file_round_trips(server: ServeProcess, db_url: str) -> None:
    data = os.urandom(1 << 20) * 100  # 100 MiB; repeating keeps generating it cheap
    data = data[:-1] + b"\xfe"  # and the last byte differs from the first MiB's
    with learnhub.connect(socket=server.socket_path) as client:
        version = client.store("big", {"weights.bin": data}, 1.0)
        found = client.lookup("big")
        assert client.ping() is True
    assert found is not None and found.version == version
    assert found.sizes == {"weights.bin": len(data)}
    got = found.files["weights.bin"]
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


# --- 4. startup errors and the socket file ---------------------------------------------------


def test_second_server_on_same_socket_refused(
    serve: Callable[..., ServeProcess], server: ServeProcess, db_url: str
) -> None:
    second = serve(db_url, server.socket_path, ready=False)
    code, err = finish(second)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "already serving" in lines[0] and str(server.socket_path) in lines[0]
    assert f"pid {server.proc.pid}" in lines[0]
    assert "Traceback" not in err
    assert server.proc.poll() is None
    assert server.socket_path.exists()
    assert rconn(server.socket_path).ping() is True


def test_socket_directory_must_exist(
    serve: Callable[..., ServeProcess], sock_dir: Path, db_url: str
) -> None:
    proc = serve(db_url, sock_dir / "missing" / "hub.sock", ready=False)
    code, err = finish(proc)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "does not exist" in lines[0] and str(sock_dir / "missing") in lines[0]
    assert "Traceback" not in err


def test_socket_path_too_long(
    serve: Callable[..., ServeProcess], sock_dir: Path, db_url: str
) -> None:
    proc = serve(db_url, sock_dir / ("s" * 120), ready=False)
    code, err = finish(proc)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "cannot create socket" in lines[0] and "too long" in lines[0]


def test_failed_bind_releases_the_lock(sock_dir: Path, db_url: str) -> None:
    """In-process: a bind that fails must not leave the path locked, or a retry would
    claim that this very process is 'already serving'."""
    path = sock_dir / ("s" * 120)
    with learnhub.open(db_url) as hub:
        for _ in range(2):
            with pytest.raises(ServerError, match="too long") as exc, serving(hub, path):
                pass
            assert not isinstance(exc.value, AlreadyRunning)


def test_socket_file_is_private(server: ServeProcess) -> None:
    mode = os.stat(server.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


# --- 5. TCP ----------------------------------------------------------------------------------


def test_tcp_without_token_refused(
    serve: Callable[..., ServeProcess], sock_dir: Path, db_url: str
) -> None:
    port = free_port()
    proc = serve(db_url, None, "--listen", f"127.0.0.1:{port}", ready=False)
    code, err = finish(proc)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "without a token" in lines[0] and "--token" in lines[0]
    assert not (sock_dir / "hub.sock").exists()
    assert not tcp_open(port)


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", "127.0.0.1:"])
def test_tcp_bad_listen_address(
    serve: Callable[..., ServeProcess], db_url: str, listen: str
) -> None:
    code, err = finish(serve(db_url, None, "--listen", listen, "--token", "t", ready=False))
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1 and "HOST:PORT" in lines[0], err


@pytest.fixture
def tcp_server(serve: Callable[..., ServeProcess], db_url: str) -> tuple[ServeProcess, int]:
    port = free_port()
    proc = serve(db_url, None, "--listen", f"127.0.0.1:{port}", "--token", "s3cret")
    wait_for(lambda: tcp_open(port), what=f"TCP port {port}")
    return proc, port


@pytest.mark.parametrize("protocol", [2, 3])
def test_tcp_needs_the_token(tcp_server: tuple[ServeProcess, int], protocol: int) -> None:
    proc, port = tcp_server

    def tcp(password: str | None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            protocol=protocol,
            socket_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # no backoff on auth errors
        )

    with pytest.raises((redis.AuthenticationError, redis.ResponseError)) as exc:
        tcp(None).ping()
    assert "authenticat" in str(exc.value).lower()
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)) as exc:
        tcp("wrong").ping()
    assert "invalid username-password" in str(exc.value)
    good = tcp("s3cret")
    assert good.ping() is True
    version = good.execute_command(*store_args("tcp/k", "1", {"f": b"over tcp"}))
    assert pairs(good.execute_command("LOOKUP", "tcp/k"))[b"version"] == version
    good.close()
    # The UNIX socket (mode 0600) needs no token.
    assert rconn(proc.socket_path, protocol).ping() is True


def test_tcp_auth_on_the_wire(tcp_server: tuple[ServeProcess, int]) -> None:
    _, port = tcp_server
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(encode_command("PING"))
        assert read_line(s) == b"-NOAUTH Authentication required."
        s.sendall(encode_command("LOOKUP", "k"))
        assert read_line(s) == b"-NOAUTH Authentication required."
        s.sendall(encode_command("AUTH", "wrong"))
        assert read_line(s).startswith(b"-WRONGPASS")
        s.sendall(encode_command("AUTH", "s3cret"))
        assert read_line(s) == b"+OK"
        s.sendall(encode_command("PING"))
        assert read_line(s) == b"+PONG"


def test_connect_by_url(tcp_server: tuple[ServeProcess, int]) -> None:
    _, port = tcp_server
    with learnhub.connect(url=f"redis://:s3cret@127.0.0.1:{port}") as client:
        assert client.ping() is True
        version = client.store("url/k", {"a.txt": b"hello"}, 2.0, {"via": "tcp"})
        found = client.lookup("url/k", where={"via": "tcp"})
    assert found is not None and found.version == version and found.files == {"a.txt": b"hello"}
    with (
        learnhub.connect(url=f"redis://:wrong@127.0.0.1:{port}") as client,
        pytest.raises(ServerError, match="refused the token.*invalid username-password"),
    ):
        client.ping()


def test_connect_without_a_hub(sock_dir: Path) -> None:
    with (
        learnhub.connect(socket=sock_dir / "nobody.sock") as client,
        pytest.raises(ServerError, match="cannot reach the hub") as exc,
    ):
        client.ping()
    assert "nobody.sock" in str(exc.value)


# --- 6. signals ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(server: ServeProcess, sig: signal.Signals) -> None:
    idle = rconn(server.socket_path)
    assert idle.ping() is True  # an idle client must not hold the shutdown up
    lock = server.socket_path.with_name(server.socket_path.name + ".lock")
    assert server.socket_path.exists() and lock.exists()
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=TIMEOUT) == 0
    assert not server.socket_path.exists()
    err = server.proc.stderr.read().decode()
    assert "Traceback" not in err
    idle.close()


def test_sigterm_finishes_the_running_command(server: ServeProcess, tmp_path: Path) -> None:
    """A STORE that is running when SIGTERM arrives still commits and gets its reply."""
    # Holding SQLite's write lock makes the server's STORE wait inside its transaction.
    blocker = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    blocker.execute("PRAGMA busy_timeout = 30000")
    info = rconn(server.socket_path)
    writer = socket.socket(socket.AF_UNIX)
    writer.settimeout(TIMEOUT)
    writer.connect(str(server.socket_path))
    try:
        blocker.execute("BEGIN IMMEDIATE")
        before = info.info("stats")["total_commands_processed"]
        writer.sendall(encode_command(*store_args("inflight", "1", {"f": b"finish me"})))
        # Each INFO counts itself; one more means the STORE has started.
        calls = itertools.count(1)
        wait_for(
            lambda: info.info("stats")["total_commands_processed"] >= before + next(calls) + 1,
            what="the STORE to start",
        )
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not server.socket_path.exists(), what="the listener to close")
        assert server.proc.poll() is None  # still finishing the STORE
        blocker.execute("ROLLBACK")
        version = read_bulk(writer)
        assert read_to_eof(writer) == b""  # then the server hangs up
        assert server.proc.wait(timeout=TIMEOUT) == 0
    finally:
        writer.close()
        info.close()
        blocker.close()
    assert version is not None
    with learnhub.open(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        artifact = hub.learning.get("inflight", version.decode())
    assert artifact is not None and artifact.files == {"f": b"finish me"}


# --- 7. kill -9 during a stream of STOREs -----------------------------------------------------

CRASH_KEY = "crash/stream"


def crash_files(i: int) -> dict[str, bytes]:
    seed = hashlib.sha256(str(i).encode()).digest()
    return {"model.bin": seed * (1 + i % 97), "run.txt": f"run {i}\n".encode()}


def test_kill_9_loses_no_acknowledged_store(
    serve: Callable[..., ServeProcess], store_url: str
) -> None:
    server = serve(store_url)
    acked: list[tuple[int, str]] = []
    failures: list[BaseException] = []

    def stream() -> None:
        r = rconn(server.socket_path, retry=Retry(NoBackoff(), 0))  # never resend a STORE
        try:
            for i in range(1_000_000):
                args = store_args(CRASH_KEY, repr(1e6 - i), crash_files(i), i=str(i))
                acked.append((i, r.execute_command(*args).decode()))
        except redis.ConnectionError:
            pass  # the server was killed: expected
        except BaseException as exc:
            failures.append(exc)
        finally:
            r.close()

    thread = threading.Thread(target=stream, name="store-stream")
    thread.start()
    try:
        wait_for(lambda: len(acked) >= 60 or failures, what="60 acknowledged STOREs")
    finally:
        server.proc.kill()  # SIGKILL mid-stream
        server.proc.wait(timeout=TIMEOUT)
        thread.join(timeout=TIMEOUT)
    assert not thread.is_alive()
    assert not failures, failures
    assert server.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 60
    with learnhub.open(store_url) as hub:
        for i, version in acked:
            files = crash_files(i)
            hashes = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
            # each STORE had the lowest metric so far, so it acknowledged its own version
            assert version == content_version(hashes, {"i": str(i)})
            artifact = hub.learning.get(CRASH_KEY, version)
            assert artifact is not None, f"acknowledged STORE #{i} ({version}) was lost"
            assert artifact.files == files
            assert artifact.attrs == {"i": str(i)}
        stored = len(hub.learning.versions(CRASH_KEY))
        best = hub.learning.best(CRASH_KEY)
    # At most the STORE in flight at the kill got in unacknowledged; it would be the best.
    assert len(acked) <= stored <= len(acked) + 1
    assert best is not None
    if stored == len(acked):
        assert best.version == acked[-1][1]

    # The killed server left its socket file and lock behind; a new one takes over.
    assert server.socket_path.exists()
    again = serve(store_url, server.socket_path)
    r = rconn(again.socket_path)
    assert r.ping() is True
    assert pairs(r.execute_command("LOOKUP", CRASH_KEY))[b"version"].decode() == best.version
    r.close()


# --- 8. an internal error costs one reply, not the server -------------------------------------


def test_internal_error_keeps_serving(server: ServeProcess, tmp_path: Path) -> None:
    r = rconn(server.socket_path)
    kept = r.execute_command(*store_args("k", "1", {"f": b"kept"}))
    db = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    db.execute("PRAGMA busy_timeout = 30000")
    try:
        # Hide a table behind the server's back: its queries now fail in the database layer.
        db.execute("ALTER TABLE artifact_files RENAME TO artifact_files_hidden")
        with pytest.raises(redis.ResponseError, match="artifact_files"):
            r.execute_command("LOOKUP", "k")
        with pytest.raises(redis.ResponseError, match="artifact_files"):
            r.execute_command(*store_args("k", "0", {"f": b"half-written"}))
        assert r.ping() is True  # same connection
        assert rconn(server.socket_path).echo("new connection") == b"new connection"
        db.execute("ALTER TABLE artifact_files_hidden RENAME TO artifact_files")
    finally:
        db.close()
    # The failed STORE rolled back entirely, and the server serves as before.
    assert pairs(r.execute_command("LOOKUP", "k"))[b"version"] == kept
    assert r.info()["learning_versions"] == 1
    assert server.proc.poll() is None
    r.close()


# --- the worker threads of blocking commands ----------------------------------------------


def test_pool_reuses_the_thread_that_finished_last():
    from learnhub.server.pool import WarmPool

    pool = WarmPool(8, thread_name_prefix="t")
    try:
        # Four at once start four threads; afterwards one-at-a-time work stays on one thread.
        barrier = threading.Barrier(4)
        names = [pool.submit(lambda: (barrier.wait(TIMEOUT), threading.current_thread().name))
                 for _ in range(4)]  # fmt: skip
        assert len({f.result(TIMEOUT)[1] for f in names}) == 4
        last = [pool.submit(lambda: threading.current_thread().name).result(TIMEOUT)
                for _ in range(20)]  # fmt: skip
        assert len(set(last)) == 1
    finally:
        pool.shutdown()


def test_pool_queues_beyond_its_threads_and_carries_errors():
    from learnhub.server.pool import WarmPool

    pool = WarmPool(2)
    release = threading.Event()
    blocked = [pool.submit(release.wait, TIMEOUT) for _ in range(2)]
    queued = [pool.submit(lambda i=i: i * i) for i in range(5)]
    assert not any(f.done() for f in queued)  # both threads are busy
    release.set()
    assert [f.result(TIMEOUT) for f in queued] == [0, 1, 4, 9, 16]
    assert all(f.result(TIMEOUT) for f in blocked)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(TIMEOUT)
    assert pool.submit(lambda: "still working").result(TIMEOUT) == "still working"
    assert len(pool._threads) == 2
    pool.shutdown()


def test_pool_shutdown_finishes_running_and_queued_work_then_refuses_more():
    from learnhub.server.pool import WarmPool

    pool = WarmPool(1)
    started, release = threading.Event(), threading.Event()
    running = pool.submit(lambda: (started.set(), release.wait(TIMEOUT))[1])
    queued = pool.submit(lambda: "queued")
    assert started.wait(TIMEOUT)
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    wait_for(lambda: pool._shutdown, TIMEOUT, "shutdown to begin")
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: "late")
    release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert running.result(0) is True and queued.result(0) == "queued"
    assert not any(t.is_alive() for t in pool._threads)
    with pytest.raises(ValueError, match="at least 1"):
        WarmPool(0)
