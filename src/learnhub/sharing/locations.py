"""Storage locations over fsspec: list a glob with stamps, read many files at once, write one
atomically, each under a deadline and with every failure turned into one ``LocationError``.

A location is a URL (a path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``az://``) and
its fsspec storage options. Sources are globs (object stores list the prefix before the first
wildcard and match the rest); the backup is a folder.

A file's *stamp* says whether it changed since it was last seen without reading it: the
object store's etag (S3, GCS, Azure), else mtime and size (local folders, NFS).

Azure Blob (``az://container/path``, also ``abfs://``) goes through adlfs. The account comes
from the location's options (``connection_string``, or ``account_name`` with ``account_key``
or ``sas_token``) or from adlfs's standard environment (``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_ACCOUNT_NAME`` + ``AZURE_STORAGE_ACCOUNT_KEY``, ...).
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import fsspec

from learnhub.errors import LearnhubError

T = TypeVar("T")

READ_THREADS = 32  # concurrent reads on a filesystem without async I/O (local, NFS)
ASYNC_BATCH = 256  # concurrent requests on an object store
LOCAL_RUN = 64  # files one thread reads in a row on a filesystem without async I/O
GLOB_CHARS = "*?["

# One pool for the deadlines: a call that hangs past its deadline keeps its thread until the
# client library gives up (its own timeouts are set below), but never blocks the caller.
_pool = cf.ThreadPoolExecutor(max_workers=16, thread_name_prefix="learnhub-sharing")


class LocationError(LearnhubError):
    """A storage location could not be listed, read or written (unreachable, slow, refused);
    the message names the location and what to check."""


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def redact(url: str) -> str:
    """The URL without credentials, for messages and status."""
    if "://" not in url:
        return url
    head, rest = url.split("://", 1)
    netloc, sep, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{head}://{netloc}{sep}{path}"


def _stamp(info: Mapping[str, Any]) -> str:
    """What changes when a file's content does, without reading it."""
    for key in ("ETag", "etag", "md5Hash", "generation"):
        value = info.get(key)
        if value:
            return f"{key}:{str(value).strip(chr(34))}:{info.get('size')}"
    mtime = info.get("mtime", info.get("LastModified", info.get("updated", info.get("created"))))
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"mtime:{mtime}:{info.get('size')}"


def _options_for(url: str, options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The storage options of the longest configured prefix of ``url``."""
    best: tuple[int, Mapping[str, Any]] = (-1, {})
    for prefix, opts in options.items():
        if url.startswith(prefix) and len(prefix) > best[0]:
            best = (len(prefix), opts)
    return dict(best[1])


def _make_fs(proto: str, opts: dict[str, Any], timeout: float) -> fsspec.AbstractFileSystem:
    if proto in ("s3", "s3a"):
        import s3fs

        config = dict(opts.pop("config_kwargs", {}) or {})
        # Bounded waits and few retries: a dead endpoint must fail within the deadline, and
        # learnhub retries the whole operation later with its own backoff.
        config.setdefault("connect_timeout", min(timeout, 10.0))
        config.setdefault("read_timeout", timeout)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        return s3fs.S3FileSystem(skip_instance_cache=True, config_kwargs=config, **opts)
    if proto in ("gs", "gcs"):
        # The plain class: gcsfs's experimental one (its default) probes each bucket's type
        # over gRPC, which waits a minute on emulators and private endpoints.
        import gcsfs.core

        opts.setdefault("timeout", timeout)
        return gcsfs.core.GCSFileSystem(skip_instance_cache=True, **opts)
    if proto in ("az", "abfs", "abfss"):
        return _azure_fs(opts, timeout)
    if proto in ("file", "local"):
        return fsspec.filesystem("file", **opts)
    return fsspec.filesystem(proto, skip_instance_cache=proto != "memory", **opts)


AZURE_ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME")


def _azure_fs(opts: dict[str, Any], timeout: float) -> fsspec.AbstractFileSystem:
    """adlfs with bounded waits: the Azure SDK's default retry policy waits 15 s, then 45 s,
    ... before giving up on an endpoint that refuses (minutes of a thread held per call);
    here a call makes at most one retry a second later, and each request has the timeout."""
    import adlfs
    from azure.storage.blob.aio import BlobServiceClient

    if not (
        opts.get("connection_string")
        or opts.get("account_name")
        or any(os.environ.get(v) for v in AZURE_ENV)
    ):
        raise ValueError(
            "no Azure storage account: give connection_string (or account_name and "
            "account_key) in [sharing.options] for it, or set AZURE_STORAGE_CONNECTION_STRING"
        )

    class BoundedAzureBlobFileSystem(adlfs.AzureBlobFileSystem):
        def do_connect(self) -> None:
            super().do_connect()
            made = self.service_client  # not used yet: nothing to close
            self.service_client = BlobServiceClient(
                account_url=made.url,
                credential=made.credential,
                retry_total=1,
                initial_backoff=1,
                increment_base=2,
                connection_timeout=min(timeout, 10.0),
                read_timeout=timeout,
            )

    return BoundedAzureBlobFileSystem(skip_instance_cache=True, **opts)


class Location:
    """One storage location (a source glob or the backup folder) with its filesystem."""

    def __init__(
        self, url: str, options: Mapping[str, Mapping[str, Any]] | None = None, timeout: float = 30
    ) -> None:
        self.url = url
        self.name = redact(url)
        self.timeout = timeout
        self.proto = scheme(url)
        self._options = _options_for(url, options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._fs_lock = threading.Lock()
        # the path part: what fsspec calls the location, without the scheme
        raw = url.split("://", 1)[1] if "://" in url else url
        if self.proto in ("file", "local"):
            raw = os.path.abspath(os.path.expanduser(raw))
        self.path = raw
        self.gets = 0  # files read (what an incremental poll must keep proportional to changes)

    @property
    def local(self) -> bool:
        return self.proto in ("file", "local")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        with self._fs_lock:
            if self._fs is None:
                try:
                    self._fs = _make_fs(self.proto, dict(self._options), self.timeout)
                except Exception as exc:  # bad options, missing credentials ...
                    raise LocationError(
                        f"{self.name}: cannot open the {self.proto}:// filesystem: "
                        f"{_reason(exc)}; check [sharing.options] for it"
                    ) from None
            return self._fs

    # --- running under a deadline ------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        limit = self.timeout if timeout is None else timeout
        future = _pool.submit(fn)
        try:
            return future.result(timeout=limit)
        except cf.TimeoutError:
            future.cancel()
            raise LocationError(
                f"{self.name}: {what} did not answer within {limit:g}s; the location is slow or "
                "unreachable (it is retried later; raise sharing.timeout if it is just slow)"
            ) from None
        except LocationError:
            raise
        except Exception as exc:
            raise LocationError(f"{self.name}: {what} failed: {_reason(exc)}") from None

    # --- listing -----------------------------------------------------------------------------

    def list(self) -> dict[str, str]:
        """``{path: stamp}`` of the files matching this source's glob."""

        def run() -> dict[str, str]:
            if self.local:
                if not os.path.isdir(_static_root(self.path)):
                    raise FileNotFoundError(f"no folder {_static_root(self.path)}")
                return _list_local(self.path)
            fs = self.fs
            fs.invalidate_cache()  # a poll must see what changed since the last one
            found = fs.glob(self.path, detail=True)
            return {
                _strip(fs, p): _stamp(info)
                for p, info in found.items()
                if info.get("type", "file") == "file"
            }

        return self._call("listing", run)

    def list_folder(self, suffix: str = "") -> dict[str, str]:
        """``{path: stamp}`` of the files directly in this folder (the backup) ending in
        ``suffix``; an absent folder is empty."""

        def run() -> dict[str, str]:
            fs = self.fs
            fs.invalidate_cache()
            try:
                found = fs.ls(self.path.rstrip("/"), detail=True)
            except FileNotFoundError:
                return {}
            return {
                _strip(fs, i["name"]): _stamp(i)
                for i in found
                if i.get("type", "file") == "file" and i["name"].endswith(suffix)
            }

        return self._call("listing", run)

    # --- reading -----------------------------------------------------------------------------

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes | LocationError]:
        """The contents of ``paths``, read concurrently; a file that fails is an error in its
        place (the others are still returned). The deadline is per batch of reads."""
        paths = list(paths)
        out: dict[str, bytes | LocationError] = {}
        if not paths:
            return out
        fs = self.fs
        if getattr(fs, "async_impl", False):
            for i in range(0, len(paths), ASYNC_BATCH):
                chunk = paths[i : i + ASYNC_BATCH]
                got = self._call(
                    f"reading {len(chunk)} files",
                    lambda chunk=chunk: fs.cat(chunk, on_error="return", batch_size=ASYNC_BATCH),
                )
                if not isinstance(got, dict):  # one path: fsspec returns the bytes
                    got = {chunk[0]: got}
                for path in chunk:
                    out[path] = self._result(path, got.get(path, got.get(_strip(fs, path))))
        else:
            # Threads each read a run of files: one task per file costs as much as reading
            # a cached local file; NFS and other remote mounts gain from the concurrency.
            read = _read_local if self.local else fs.cat_file
            runs = [paths[i : i + LOCAL_RUN] for i in range(0, len(paths), LOCAL_RUN)]
            pool = cf.ThreadPoolExecutor(min(READ_THREADS, len(runs)))
            try:
                futures = {pool.submit(_read_run, read, run): run for run in runs}
                done, pending = cf.wait(futures, timeout=max(self.timeout, 1.0) * 4)
            finally:
                # a read stuck on a hung mount must not hold the poll: leave its thread
                pool.shutdown(wait=False, cancel_futures=True)
            for future in done:
                for path, value in future.result().items():
                    out[path] = self._result(path, value)
            for future in pending:
                for path in futures[future]:
                    out[path] = LocationError(
                        f"{self.name}: reading {path} did not finish within "
                        f"{max(self.timeout, 1.0) * 4:g}s (a slow or hung mount)"
                    )
        self.gets += len(paths)
        return out

    def _result(self, path: str, value: Any) -> bytes | LocationError:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, BaseException):
            return LocationError(f"{self.name}: reading {path} failed: {_reason(value)}")
        return LocationError(f"{self.name}: reading {path} returned nothing")

    # --- writing (the backup) ----------------------------------------------------------------

    def join(self, name: str) -> str:
        return self.path.rstrip("/") + "/" + name

    def write(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``name`` in this folder atomically, then verify it; returns its
        path. Readers never see a partial file: local folders get a temporary name then a
        rename; object stores make an object visible only once its upload completed."""
        path = self.join(name)

        def run() -> str:
            fs = self.fs
            if self.local:
                os.makedirs(self.path, exist_ok=True)
                tmp = self.join(f".{name}.{secrets.token_hex(4)}.tmp")
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())  # errors surface here, before the rename
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                # Object stores report a failed upload only when it completes: pipe_file
                # returns after the PUT was answered; check what the store says it holds.
                fs.pipe_file(path, data)
            fs.invalidate_cache(path)
            self._verify(fs, path, data)
            return path

        return self._call(f"writing {name}", run)

    def _verify(self, fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
        # refresh: ask the store, not a listing of the folder cached by another call (adlfs
        # answers "not found" for a file missing from a cached listing of its folder)
        info = fs.info(path, refresh=True)
        if info.get("type", "file") != "file":
            raise LocationError(f"{self.name}: {path} is not a file after writing it")
        size = info.get("size")
        if size is not None and int(size) != len(data):
            raise LocationError(
                f"{self.name}: {path} holds {size} bytes after writing {len(data)}; "
                "the write did not complete (it is retried)"
            )
        md5 = hashlib.md5(data, usedforsecurity=False)
        etag = str(info.get("ETag", "")).strip('"')
        single_part = etag and "-" not in etag and len(etag) == 32  # then the etag is the md5
        # Azure: the MD5 the service computed for a single-shot upload (Put Blob)
        content_md5 = (info.get("content_settings") or {}).get("content_md5")
        if (single_part and etag != md5.hexdigest()) or (
            content_md5 and bytes(content_md5) != md5.digest()
        ):
            raise LocationError(f"{self.name}: {path} does not hold what was written")

    def delete(self, name: str) -> bool:
        """Remove ``name`` from this folder; False if it was known not to be there (object
        stores answer a delete of a missing object like any other)."""
        path = self.join(name)

        def run() -> bool:
            fs = self.fs
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                return False
            fs.invalidate_cache(path)
            return True

        return self._call(f"deleting {name}", run)

    def __repr__(self) -> str:
        return f"<Location {self.name}>"


def _read_run(read: Callable[[str], bytes], paths: list[str]) -> dict[str, Any]:
    """Read each path; an error takes the place of a file that failed."""
    out: dict[str, Any] = {}
    for path in paths:
        try:
            out[path] = read(path)
        except Exception as exc:
            out[path] = exc
    return out


def _list_local(pattern: str) -> dict[str, str]:
    """``{path: stamp}`` of the files matching ``pattern`` in a local folder: the stdlib's
    glob and one stat per file (fsspec's local glob costs 3x as much on 100,000 files). The
    same matches (``**`` any depth, hidden files too) and stamps as fsspec's listing."""
    out = {}
    for path in glob.iglob(pattern, recursive=True, include_hidden=True):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # removed since it was listed
        if stat.S_ISREG(st.st_mode):
            out[path] = f"mtime:{st.st_mtime}:{st.st_size}"
    return out


def _read_local(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _static_root(path: str) -> str:
    """The folder before the first wildcard."""
    cut = min((path.find(c) for c in GLOB_CHARS if c in path), default=len(path))
    return path[:cut].rsplit("/", 1)[0] or "/"


def _strip(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs._strip_protocol(path) if hasattr(fs, "_strip_protocol") else path


def _reason(exc: BaseException) -> str:
    """One line for an error from fsspec, botocore, aiohttp, gcsfs or the OS."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"not found ({text or 'no such file or folder'})"
    if isinstance(exc, PermissionError):
        return f"permission denied ({text})"
    return f"{name}: {text}" if text else name
