"""Real storage servers for the sharing tests: moto_server (S3), gcp-storage-emulator (GCS),
Azurite (Azure Blob, from npm: tests/azurite/), and a loopback socket that accepts
connections and never answers (a hanging source).

Each runs as a real process (or a real socket) on a free loopback port; ``stop()`` and
``start()`` again on the same port let a test take a server away mid-poll and bring it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import learnhub
from learnhub.sharing.examples import BACKUP_TASK

BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
AZURITE_DIR = Path(__file__).parent / "azurite"
NPM_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error status: the server is up
    except (OSError, ValueError):
        return False


def _refuses(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


class ServerProcess:
    """A server process on a fixed loopback port that can be stopped and started again."""

    name = "server"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.cwd: str | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _answers(self.endpoint + "/")

    def start(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        _wait(lambda: _refuses(self.port), START_TIMEOUT, f"port {self.port} to be free")
        # The server logs every request: to a file, never to a pipe nobody drains (a full
        # pipe would block the server after a few hundred requests).
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=self.log, env=self.env(), cwd=self.cwd
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError(f"{self.name} exited: {self.log.read().decode()[-2000:]}")
            return self.ready()

        _wait(up, START_TIMEOUT, f"{self.name} on port {self.port}")
        return self

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
        self.proc = None
        _wait(lambda: _refuses(self.port), START_TIMEOUT, f"{self.name} to release its port")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class MotoServer(ServerProcess):
    """moto's S3 HTTP API (in memory: a restart loses the buckets, like a bucket wiped)."""

    name = "moto_server"

    def argv(self) -> list[str]:
        return [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        return _answers(self.endpoint + "/moto-api/")

    def options(self) -> dict:
        """s3fs storage options that point at this server."""
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "eu-west-1"},
        }

    def make_bucket(self, name: str) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.options())
        fs.mkdir(name)

    def snapshot(self) -> dict:
        """Every object of the server (moto's own API), to restore after a restart."""
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.options())
        objects = {}
        for bucket in fs.ls(""):
            for path in fs.find(bucket):
                objects[path] = fs.cat_file(path)
            objects.setdefault(bucket.rstrip("/") + "/", None)
        return objects

    def restore(self, objects: dict) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.options())
        for path, data in objects.items():
            if data is None:
                fs.mkdir(path.rstrip("/"))
        for path, data in objects.items():
            if data is not None:
                fs.pipe_file(path, data)


class GcsEmulator(ServerProcess):
    name = "gcp-storage-emulator"

    def __init__(self, port: int | None = None, folder: Path | None = None) -> None:
        super().__init__(port)
        self.folder = folder

    def argv(self) -> list[str]:
        return [
            str(BIN / "gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--in-memory",
            "-q",
        ]

    def ready(self) -> bool:
        return _answers(self.endpoint + "/storage/v1/b")

    def options(self) -> dict:
        return {"endpoint_url": self.endpoint, "token": "anon", "project": "test"}

    def make_bucket(self, name: str) -> None:
        import gcsfs.core

        fs = gcsfs.core.GCSFileSystem(skip_instance_cache=True, **self.options())
        fs.mkdir(name)


class Azurite(ServerProcess):
    """Azurite's Blob service (the Azure Storage emulator), in memory, with its well-known
    development account."""

    name = "azurite-blob"
    account = "devstoreaccount1"
    # Azurite's published development key (the same in every Azurite): not a secret.
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def argv(self) -> list[str]:
        return [
            shutil.which("node") or "node",
            str(AZURITE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--inMemoryPersistence",
            "--loose",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]

    def ready(self) -> bool:
        return _answers(f"{self.endpoint}/{self.account}?comp=list")

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.endpoint}/{self.account};"
        )

    def options(self) -> dict:
        """adlfs storage options that point at this server."""
        return {"connection_string": self.connection_string}

    def make_container(self, name: str) -> None:
        import adlfs

        fs = adlfs.AzureBlobFileSystem(skip_instance_cache=True, **self.options())
        fs.mkdir(name)

    make_bucket = make_container


def install_azurite() -> Path:
    """``npm ci`` in tests/azurite/ when its node_modules is missing (the versions are pinned
    by its package-lock.json); returns Azurite's blob entry point. Skips without npm."""
    main = AZURITE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("the az:// tests need node and npm (Azurite, the Azure Storage emulator)")
    # One installer at a time (parallel sessions, CI jobs sharing a checkout).
    lock_path = Path(tempfile.gettempdir()) / f"learnhub-azurite-{os.getuid()}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not main.exists():
            run = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=AZURITE_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
            if run.returncode != 0 or not main.exists():
                pytest.fail(
                    f"npm ci in {AZURITE_DIR} failed (it needs the npm registry): "
                    f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
                )
    return main


class HangingServer:
    """Accepts TCP connections on a loopback port and never answers: a source that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read or answered

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    if not (BIN / "moto_server").exists() and not shutil.which("moto_server"):
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs() -> Iterator[GcsEmulator]:
    if not (BIN / "gcp-storage-emulator").exists():
        pytest.skip("gcp-storage-emulator is not installed")
    server = GcsEmulator().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the session (tests use containers of their own)."""
    install_azurite()
    server = Azurite()
    server.cwd = str(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_session: Azurite) -> Azurite:
    if not azurite_session.running:  # a test stopped it: bring it back (empty)
        azurite_session.start()
    return azurite_session


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def worker(hub: learnhub.Hub) -> Iterator[None]:
    """A worker of ``hub`` running in a thread while the block runs."""
    w = hub.worker(concurrency=2)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        yield
    finally:
        w.stop()
        t.join(60)


def backup_jobs(hub: learnhub.Hub) -> list:
    """The hub's backup jobs, any state."""
    return [j for j in hub.jobs.list(limit=1000) if j.task == BACKUP_TASK]
