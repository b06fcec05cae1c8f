"""DHT discovery (kademlia over UDP on 127.0.0.1): hubs find who has a key in the DHT and
fetch it over the peer link; the DHT holds small provider records only."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from learnhub.peers.dht import (
    MAX_RECORD,
    RECORD_PREFIX,
    merge_record,
    merge_records,
    merging_storage,
    parse_record,
)
from peers_procs import SECRET, HubProc, open_store

pytest.importorskip("kademlia")

FILES = {"prog.net": b"N" * 50_000, "prog.train": b"T" * 10_000, "prog.excite": b"\x01"}


@pytest.fixture
def dht_hubs(sock_dir: Path, tmp_path: Path) -> Iterator[Callable[..., HubProc]]:
    secret = sock_dir / "cluster.secret"
    secret.write_text(SECRET)
    started: list[HubProc] = []

    def start(name: str, boot: HubProc | None = None, ready: bool = True, **options: Any):
        dht = ["--dht", f"127.0.0.1:{boot.dht_port}" if boot else ""]
        hub = HubProc(
            f"sqlite:///{tmp_path / (name + '.db')}",
            secret_file=secret,
            socket=sock_dir / f"{name}.sock",
            lookup_timeout="10s",  # generous: the test is about finding, not speed
            extra=[*dht, "--dht-listen", "127.0.0.1:0"],
            **options,
        )
        started.append(hub)
        return hub.wait_ready() if ready else hub

    yield start
    for hub in started:
        hub.stop()


class Reader:
    """The test's own DHT node, alive for the whole test: one node that comes and goes per
    read would leave the hubs' routing tables full of dead contacts, each costing a 5 s
    timeout on later lookups."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.node: Any = None
        self.boot: int | None = None

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def read(self, boot_port: int, key: str) -> Any:
        from kademlia.network import Server

        if self.node is None:
            from kademlia.storage import ForgetfulStorage

            class KeepsNothing(ForgetfulStorage):  # so that a read asks the hubs' nodes
                def __setitem__(self, key: bytes, value: Any) -> None:
                    pass

            self.node = Server(storage=KeepsNothing())
            self._run(self.node.listen(0, interface="127.0.0.1"))
        if self.boot != boot_port:
            self._run(self.node.bootstrap([("127.0.0.1", boot_port)]))
            self.boot = boot_port
        return self._run(self.node.get(RECORD_PREFIX + key))

    def close(self) -> None:
        if self.node is not None:
            self.loop.call_soon_threadsafe(self.node.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def read_record() -> Iterator[Callable[[int, str], Any]]:
    """``read_record(boot_port, key)``: the DHT's record for ``key``."""
    reader = Reader()
    yield reader.read
    reader.close()


def test_dht_lookup_between_hubs_that_do_not_know_each_other(dht_hubs, read_record) -> None:
    boot = dht_hubs("boot")
    a = dht_hubs("a", boot)
    b = dht_hubs("b", boot)
    with a.client() as ca:
        version = ca.store("asc/dht", FILES, 0.3)
    record = wait_for(lambda: read_record(boot.dht_port, "asc/dht"), what="the DHT record")
    assert len(record.encode()) < MAX_RECORD  # a small record, not the blob
    [[node, address, got_version, metric, _]] = parse_record(record)
    assert (node, address, got_version, metric) == (a.node_id, a.address, version, 0.3)
    with b.client() as cb:
        found = cb.lookup("asc/dht")
        assert found is not None and found.version == version and found.files == FILES
    # b now provides it too: its entry joins the record.
    wait_for(lambda: len(parse_record(read_record(boot.dht_port, "asc/dht"))) == 2,
             what="b's entry in the record")  # fmt: skip


@pytest.mark.slow
def test_ten_hubs_in_the_dht_and_keys_learned_offline(
    dht_hubs, read_record, tmp_path: Path
) -> None:
    boot = dht_hubs("boot")
    # Learned while offline: in the store before the hub joins.
    with open_store(f"sqlite:///{tmp_path / 'offline.db'}") as hub:
        offline_version = hub.learning.store("asc/offline", {"f": b"learned offline"}, 0.2)
    others = [dht_hubs(f"h{i}", boot, ready=False) for i in range(8)]
    offline = dht_hubs("offline", boot, ready=False)
    for hub in [*others, offline]:
        hub.wait_ready()
    with others[0].client() as c:
        version = c.store("asc/ten", FILES, 0.1)
    wait_for(lambda: read_record(boot.dht_port, "asc/ten"), what="the record of asc/ten")
    for hub in others[1:4]:
        with hub.client() as c:
            assert c.lookup("asc/ten").version == version
    wait_for(lambda: read_record(boot.dht_port, "asc/offline"), what="the offline key")
    with others[5].client() as c:
        assert c.lookup("asc/offline").version == offline_version


def test_hubs_announcing_the_same_keys_at_once_all_stay_in_the_records(
    dht_hubs, read_record
) -> None:
    """Each hub writes its entry into a key's record by read, merge, write: hubs doing that
    at once each wrote a record without the others' entries. They read back and merge again,
    so every provider is in every record long before the next republish (10 min)."""
    boot = dht_hubs("boot")
    hubs = [dht_hubs(f"r{i}", boot, ready=False) for i in range(4)]
    for hub in hubs:
        hub.wait_ready()
    keys = [f"asc/race{k}" for k in range(12)]
    start = threading.Barrier(len(hubs))

    def store_all(hub: HubProc) -> None:
        with hub.client() as c:
            start.wait(timeout=30)
            for key in keys:
                c.store(key, {"f": f"{key} by {hub.node_id}".encode()}, 0.5)

    threads = [threading.Thread(target=store_all, args=(h,)) for h in hubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everyone = {h.node_id for h in hubs}

    def providers(key: str) -> set[str]:
        return {p[0] for p in parse_record(read_record(boot.dht_port, key))}

    for key in keys:
        wait_for(lambda key=key: providers(key) == everyone, timeout=30,
                 what=f"all four providers in the record of {key}")  # fmt: skip


def test_a_node_keeps_every_provider_of_racing_writes_in_any_order() -> None:
    base = merge_record(None, ["n0", "h0:1", "v0", 0.5, 10])
    one = merge_record(base, ["n1", "h1:1", "v1", 0.4, 20])  # two hubs merged base at once
    two = merge_record(base, ["n2", "h2:1", "v2", 0.6, 30])
    for first, second in ((one, two), (two, one)):
        held = merge_records(merge_records(base, first), second)
        assert [p[0] for p in parse_record(held)] == ["n1", "n0", "n2"]  # best first
    # A node's newer entry replaces its older one, whichever arrives last.
    newer = merge_record(None, ["n1", "h1:1", "v9", 0.9, 99])
    for held in (merge_records(newer, one), merge_records(one, newer)):
        assert [p[2] for p in parse_record(held) if p[0] == "n1"] == ["v9"]
    assert merge_records(one, "not a record") == "not a record"  # other values: replaced
    storage = merging_storage()
    storage[b"k"] = one
    storage[b"k"] = two
    assert {p[0] for p in parse_record(storage[b"k"])} == {"n0", "n1", "n2"}


def test_records_stay_small_and_keep_the_best() -> None:
    record = None
    for i in range(300):
        record = merge_record(record, [f"node{i:04d}", f"10.0.{i // 250}.{i % 250}:7433",
                                       "a" * 32, 1.0 - i / 1000, i])  # fmt: skip
    assert len(record.encode()) < MAX_RECORD
    providers = parse_record(record)
    assert providers[0][0] == "node0299"  # the best metric first
    assert 20 < len(providers) < 300
    # A node's new entry replaces its old one.
    again = parse_record(merge_record(record, ["node0299", "x:1", "b" * 32, 0.5, 1]))
    assert [p for p in again if p[0] == "node0299"] == [["node0299", "x:1", "b" * 32, 0.5, 1]]
    # Garbage in the DHT is dropped, not trusted.
    assert parse_record(merge_record("{not json", ["n", "a:1", "c" * 32, 0.1, 1])) == [
        ["n", "a:1", "c" * 32, 0.1, 1]
    ]
    assert parse_record(json.dumps({"p": [["short"]]})) == []
