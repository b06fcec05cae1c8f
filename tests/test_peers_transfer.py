"""Large transfers over the peer link: the reply reader that takes chunks straight into the
receiver's buffer, verified artifacts stored without hashing them again, a large version
fetched by a lookup and stored once, and (on PostgreSQL) blobs kept uncompressed so that a
part of one is cheap to read. The hubs here are in-process (a PeerService on its own loop
thread each), talking over loopback TCP like any others."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import learnhub
from conftest import postgres_schema_url
from learnhub.learning.artifacts import VerifiedArtifact, content_version
from learnhub.learning.policies import LearningConfig
from learnhub.peers import PeerService, parse_peers_config
from learnhub.peers.service import HUGE_PAGES_FROM, ReceiveBuffers, receive_buffer
from learnhub.peers.wire import LINE_READ_SIZE, READ_SIZE, Conn, PeerError
from peers_procs import SECRET

# --- the reply reader -------------------------------------------------------------------


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def receive_all(wire: bytes, sizes: list[int], piece: int) -> list[bytes | PeerError]:
    """Send ``wire`` (in pieces of ``piece`` bytes, from a thread) and read one bulk reply per
    entry of ``sizes`` with ``Conn.receive_into`` into a buffer of that size."""
    ours, theirs = socket.socketpair()

    def send() -> None:
        with theirs:
            for i in range(0, len(wire), piece):
                theirs.sendall(wire[i : i + piece])

    sender = threading.Thread(target=send)
    sender.start()

    async def read() -> list[bytes | PeerError]:
        ours.setblocking(False)
        conn = Conn(ours)
        out: list[bytes | PeerError] = []
        for size in sizes:
            buf = bytearray(size)
            try:
                n = await conn.receive_into(memoryview(buf))
                out.append(bytes(buf[:n]))
            except PeerError as exc:
                out.append(exc)
                if exc.code == "LINK":
                    break
        conn.close()
        return out

    try:
        return asyncio.run(read())
    finally:
        sender.join()


@pytest.mark.parametrize("piece", [7, 4096, 1 << 22])
def test_chunks_are_read_whole_however_the_bytes_arrive(piece: int) -> None:
    big = os.urandom(2 * READ_SIZE + 3)  # more than one read of the parser's size
    small = b"x" * (LINE_READ_SIZE - 5)  # ends inside what a header read takes
    wire = bulk(small) + bulk(big) + bulk(b"") + b"-NOTFOUND no such file\r\n" + bulk(b"after")
    got = receive_all(wire, [len(small), len(big), 1, 10, 10], piece)
    assert got[:3] == [small, big, b""]
    assert isinstance(got[3], PeerError) and got[3].code == "NOTFOUND"
    assert got[4] == b"after"  # an error reply leaves the link usable


def test_a_chunk_larger_than_asked_or_not_a_bulk_breaks_the_link() -> None:
    got = receive_all(bulk(b"y" * 100), [10], 4096)
    assert isinstance(got[0], PeerError) and got[0].code == "LINK"
    got = receive_all(b"+OK\r\n", [10], 4096)
    assert isinstance(got[0], PeerError) and got[0].code == "LINK"
    got = receive_all(b"$5\r\nab", [5], 4096)  # the peer goes away mid-chunk
    assert isinstance(got[0], PeerError) and got[0].code == "LINK"


def test_a_receive_buffer_is_zeroed_memory_of_the_size_asked() -> None:
    for size in (0, 10, 5 * 1024 * 1024):
        buf = receive_buffer(size)
        assert len(buf) >= size and buf[: min(size, 4096)] == bytes(min(size, 4096))
        buf.close()


def test_a_receive_buffer_is_lent_again_only_once_nothing_refers_to_it() -> None:
    buffers = ReceiveBuffers()
    size = HUGE_PAGES_FROM * 4
    first = buffers.take(size)
    view = memoryview(first)[:size]  # what a fetched artifact's files are
    first_id = id(first)
    del first
    second = buffers.take(size)
    assert id(second) != first_id  # the first is still in use through its view
    assert buffers.take(size) is not second  # and so is the second
    ids = {id(b) for b in buffers._kept}
    assert first_id in ids and id(second) in ids
    view[:5] = b"first"
    del view
    again = buffers.take(size)  # the first map, idle now: lent again, not fresh memory
    assert id(again) == first_id and again[:5] == b"first"
    del again, second
    assert id(buffers.take(size)) in ids
    assert len(buffers.take(size // 4)) == size // 4  # too small a file for those maps
    assert buffers.take(100) is not buffers.take(100)  # small files: fresh maps, not kept


# --- verified artifacts -----------------------------------------------------------------


def verified(key: str, files: dict[str, bytes], attrs: dict, hashes=None) -> VerifiedArtifact:
    """What a fetch hands over: files in receive buffers, their hashes computed already."""
    views = {}
    for name, data in files.items():
        buf = receive_buffer(len(data))
        view = memoryview(buf)[: len(data)]
        view[:] = data
        views[name] = view
    if hashes is None:
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return VerifiedArtifact(
        key=key, version=content_version(hashes, attrs), metric=0.5, attrs=attrs,
        origin="elsewhere01", updated=datetime.datetime.now(datetime.UTC), base=None,
        sizes={n: len(d) for n, d in files.items()}, files=views, hashes=hashes,
    )  # fmt: skip


def test_a_verified_artifact_is_adopted_once_and_read_back_as_bytes(hub) -> None:
    files = {"prog.net": os.urandom(300_000), "prog.train": b"1 2\n" * 10_000}
    art = verified("asc/v", files, {"mode": "x"})
    hub.learning.adopt(art)
    hub.learning.adopt(art)  # already there: nothing more
    versions = hub.learning.versions("asc/v")
    assert [v.version for v in versions] == [art.version]
    assert versions[0].origin == "elsewhere01" and versions[0].sizes == {
        n: len(d) for n, d in files.items()
    }
    found = hub.learning.lookup("asc/v", local=True)
    assert found.files == files and all(type(d) is bytes for d in found.files.values())
    # Stored under the same version as the same files stored the ordinary way.
    assert hub.learning.store("asc/v2", files, 0.5, {"mode": "x"}) == art.version


def test_a_verified_artifact_without_all_its_hashes_is_not_stored(hub) -> None:
    files = {"a": b"aaa", "b": b"bbb"}
    art = verified("asc/h", files, {}, hashes={"a": hashlib.sha256(b"aaa").hexdigest()})
    hub.learning.adopt(art)  # logged, not raised
    assert hub.learning.versions("asc/h") == []


# --- a large version through a lookup ---------------------------------------------------


@pytest.fixture
def two_services(tmp_path: Path) -> Iterator[tuple[learnhub.Hub, PeerService, learnhub.Hub]]:
    """Hub a serving its store; hub b, whose lookup misses ask a."""
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    base = {"listen": "127.0.0.1:0", "secret_file": str(secret), "digest_interval": "1h"}
    hub_a = learnhub.open(f"sqlite:///{tmp_path / 'a.db'}")
    service_a = PeerService(hub_a, parse_peers_config(base)).start()
    hub_b = learnhub.open(f"sqlite:///{tmp_path / 'b.db'}")
    hub_b.learning.configure(LearningConfig(lookup_timeout="10s"))
    service_b = PeerService(
        hub_b, parse_peers_config({**base, "peers": [f"127.0.0.1:{service_a.port}"]})
    ).start()
    hub_b.learning.elsewhere.add(service_b.source)
    try:
        yield hub_a, service_b, hub_b
    finally:
        hub_b.learning.elsewhere.remove(service_b.source)
        service_b.stop()
        service_a.stop()
        hub_b.close()
        hub_a.close()


def test_a_large_version_is_fetched_by_a_lookup_and_stored_once(two_services) -> None:
    hub_a, service_b, hub_b = two_services
    chunk = service_b.config.chunk_size
    files = {"big": os.urandom(5 * chunk + 123), "small": b"s" * 10}
    version = hub_a.learning.store("asc/big", files, 0.2, {"mode": "m"})
    found = hub_b.learning.lookup("asc/big")
    assert found is not None and found.version == version
    assert found.files == files and all(type(d) is bytes for d in found.files.values())
    # Stored before the lookup returned, from one transfer.
    assert [v.version for v in hub_b.learning.versions("asc/big")] == [version]
    assert hub_b.learning.lookup("asc/big", local=True).files == files
    assert service_b.stats["fetched"] == 1 and service_b.stats["rejected"] == 0


# --- PostgreSQL: blobs stay uncompressed ------------------------------------------------


def test_postgres_blobs_are_stored_uncompressed() -> None:
    """A part of a compressed value costs decompressing everything before it; blobs are
    stored EXTERNAL (migration 0010), so a file served in parts is read once."""
    url_cm = postgres_schema_url()
    url = next(url_cm)
    try:
        with learnhub.open(url) as hub:
            data = b"0.125 0.25\n" * 200_000  # pglz would shrink this to almost nothing
            version = hub.learning.store("asc/text", {"train": data}, 0.1)
            with hub.store.transaction(readonly=True) as tx:
                row = tx.conn.execute(
                    "SELECT pg_column_size(data) AS stored, size FROM blobs"
                ).fetchone()
            assert row["stored"] >= row["size"] == len(data)
            parts = hub.learning.iter_file("asc/text", version, "train", 65536, 1000)
            assert b"".join(parts) == data[1000:]
    finally:
        next(url_cm, None)
