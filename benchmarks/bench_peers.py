"""Peers: lookup latency (local, via 1 peer, via the DHT at 20 and 100 hubs), propagation of
a new version to 10 interested hubs, and a 50 MB transfer against a raw socket copy.

Hubs run in *worker* processes, several per process (100 single-hub processes would take
~9 GB here): each hub has its own SQLite store, peer link, DHT node and loop thread, and the
hubs of one worker talk to each other over loopback TCP/UDP like any others. Lookups are
``hub.learning.lookup`` in the hub's worker, so the figures are the hub's own latency (no
client round trip). Propagation uses 11 separate ``python -m learnhub.peers`` processes.

    .venv/bin/python benchmarks/bench_peers.py [--quick] [--json] [--part transfer] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_model, learnhub_commit, terminate_as_interrupt  # noqa: E402

SECRET = "bench-peers-cluster-secret-0123456789"
HUBS_PER_WORKER = 10


# --- the worker: several hubs in one process, driven line by line over stdin ---------------


def worker_main(args: argparse.Namespace) -> None:
    from dataclasses import replace

    import learnhub
    from learnhub.peers import PeerService, parse_peers_config

    hubs, services = [], []
    boot = args.boot
    for i in range(args.hubs):
        hub = learnhub.open(f"sqlite:///{args.dir}/{args.name}_{i}.db")
        hub.learning.configure(replace(hub.learning.policies.config, lookup_timeout="10s"))
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "secret_file": args.secret,
            "watch_interval": args.watch,
            "digest_interval": "1h",
        }
        if args.dht:
            values.update(dht=[boot] if boot else [], dht_listen="127.0.0.1:0")
        if args.peer:
            values["peers"] = args.peer
        service = PeerService(hub, parse_peers_config(values)).start()
        hub.learning.elsewhere.add(service.source)
        if args.dht and not boot:
            boot = f"127.0.0.1:{service.dht.port}"  # the first hub bootstraps the others
        hubs.append(hub)
        services.append(service)
        print(f"READY {i} {service.port} {service.dht.port if service.dht else 0}", flush=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "quit":
            break
        i = int(rest[0])
        hub, service = hubs[i], services[i]
        if cmd == "store":
            key, size, metric = rest[1], int(rest[2]), float(rest[3])
            version = hub.learning.store(key, {"data": os.urandom(size)}, metric)
            print(version, flush=True)
        elif cmd == "lookup":
            start = time.perf_counter()
            found = hub.learning.lookup(rest[1])
            print(f"{time.perf_counter() - start} {int(found is not None)}", flush=True)
        elif cmd == "published":
            print(service.dht.published if service.dht else 0, flush=True)
        elif cmd == "fetch":  # transfer + verification only, nothing stored
            addr, node, key, version = rest[1:5]
            start = time.perf_counter()
            artifact = service.run(service._fetch(addr, node, key, version), timeout=600)
            took = time.perf_counter() - start
            print(f"{took} {sum(len(d) for d in artifact.files.values())}", flush=True)
        elif cmd == "node":
            print(hub.node_id, flush=True)
    for service in services:
        service.stop()
    for hub in hubs:
        hub.close()


class Worker:
    """A worker process, from the benchmark's side."""

    def __init__(
        self,
        name: str,
        tmp: Path,
        hubs: int,
        *,
        dht: bool = False,
        boot: str | None = None,
        peers: list[str] = (),
        watch: str = "0.5s",
    ) -> None:
        cmd = [sys.executable, __file__, "--worker", "--name", name, "--dir", str(tmp),
               "--hubs", str(hubs), "--secret", str(tmp / "secret"), "--watch", watch]  # fmt: skip
        if dht:
            cmd += ["--dht"] + (["--boot", boot] if boot else [])
        for p in peers:
            cmd += ["--peer", p]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self.ports: list[int] = []
        self.dht_ports: list[int] = []
        for _ in range(hubs):
            line = self.proc.stdout.readline()
            if not line.startswith("READY"):
                raise SystemExit(f"worker {name} failed to start: {line!r}")
            _, _, port, dht_port = line.split()
            self.ports.append(int(port))
            self.dht_ports.append(int(dht_port))

    def ask(self, *words: Any) -> str:
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.ask("quit")
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000, "n": len(ordered)}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the measurements ------------------------------------------------------------------------


def bench_local_and_one_peer(tmp: Path, n: int) -> dict[str, Any]:
    a = Worker("one_a", tmp, 1)
    b = Worker("one_b", tmp, 1, peers=[f"127.0.0.1:{a.ports[0]}"])
    try:
        for k in range(n):
            a.ask("store", 0, f"k{k}", 1024, 0.5)
        local = [float(a.ask("lookup", 0, f"k{k}").split()[0]) for k in range(n)]
        peer = []
        for k in range(n):  # each a miss on b: asked of a, fetched, stored
            took, found = b.ask("lookup", 0, f"k{k}").split()
            assert found == "1", f"k{k} not found via the peer"
            peer.append(float(took))
        return {"local": percentiles(local), "1 peer": percentiles(peer)}
    finally:
        a.close()
        b.close()


def bench_dht(tmp: Path, hubs: int, n: int) -> dict[str, Any]:
    workers: list[Worker] = []
    try:
        first = Worker(f"dht{hubs}_0", tmp, min(HUBS_PER_WORKER, hubs), dht=True)
        workers.append(first)
        boot = f"127.0.0.1:{first.dht_ports[0]}"
        left = hubs - len(first.ports)
        while left > 0:
            count = min(HUBS_PER_WORKER, left)
            workers.append(Worker(f"dht{hubs}_{len(workers)}", tmp, count, dht=True, boot=boot))
            left -= count
        everyone = [(w, i) for w in workers for i in range(len(w.ports))]
        rng = random.Random(hubs)
        plan = []
        for k in range(n):
            (sw, si), (lw, li) = rng.sample(everyone, 2)
            sw.ask("store", si, f"d{k}", 1024, 0.5)
            plan.append((sw, si, lw, li, f"d{k}"))
        deadline = time.monotonic() + 120
        for sw, si, *_ in plan:  # each key's provider record is in the DHT
            while int(sw.ask("published", si)) < sum(1 for p in plan if p[:2] == (sw, si)):
                if time.monotonic() > deadline:
                    raise SystemExit("DHT records not published within 120 s")
                time.sleep(0.05)
        samples, misses = [], 0
        for _, _, lw, li, key in plan:
            took, found = lw.ask("lookup", li, key).split()
            if found == "1":
                samples.append(float(took))
            else:
                misses += 1
        return {**percentiles(samples), "misses": misses}
    finally:
        for w in workers:
            w.close()


def bench_propagation(tmp: Path, interested: int, rounds: int) -> dict[str, Any]:
    """Separate processes: a hub, and ``interested`` hubs that asked it for the key."""
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, *peers: str) -> tuple[str, int]:
        store = f"sqlite:///{tmp}/{name}.db"
        cmd = [sys.executable, "-m", "learnhub.peers", "--store", store, "--listen",
               "127.0.0.1:0", "--secret-file", str(tmp / "secret"), "--socket",
               str(tmp / f"{name}.sock"), "--lookup-timeout", "10s"]  # fmt: skip
        for p in peers:
            cmd += ["--peer", p]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        port = int(dict(f.split("=", 1) for f in line.split()[1:])["port"])
        wait_socket(tmp / f"{name}.sock")
        return store, port

    import learnhub

    try:
        _, port = start("prop_src")
        others = [start(f"prop_{i}", f"127.0.0.1:{port}")[0] for i in range(interested)]
        src = learnhub.connect(socket=tmp / "prop_src.sock")
        src.store("prop/key", {"f": b"v0"}, 1.0)
        for i in range(interested):
            with learnhub.connect(socket=tmp / f"prop_{i}.sock") as c:
                assert c.lookup("prop/key") is not None  # asked: a now offers it new versions
        opened = [learnhub.open(url) for url in others]
        times = []
        for r in range(rounds):
            start_t = time.perf_counter()
            version = src.store("prop/key", {"f": f"v{r + 1}".encode()}, 0.9 - r * 0.01)
            waiting = set(range(interested))
            deadline = time.monotonic() + 30
            while waiting and time.monotonic() < deadline:
                for i in list(waiting):
                    if opened[i].learning.get("prop/key", version) is not None:
                        waiting.discard(i)
                time.sleep(0.002)
            if waiting:
                raise SystemExit(f"{len(waiting)} hubs did not get the new version in 30 s")
            times.append(time.perf_counter() - start_t)
        for hub in opened:
            hub.close()
        src.close()
        return {**percentiles(times), "hubs": interested}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def wait_socket(path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no socket at {path}") from None
            time.sleep(0.02)


RAW_SENDER = """
import socket, sys
data = open(sys.argv[1], "rb").read()
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    mode = conn.recv(1)
    if mode == b"m":  # memory: bytes already in memory, sent at once
        conn.sendall(data)
    else:  # file: read the file in parts and send each (what scp does, less the cipher)
        with open(sys.argv[1], "rb", buffering=0) as f:
            while part := f.read(1 << 20):
                conn.sendall(part)
    conn.close()
"""


class RawSender:
    """The baselines' sending side: a process of its own serving ``source``'s bytes."""

    def __init__(self, source: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", RAW_SENDER, str(source)],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.port = int(self.proc.stdout.readline())

    def memory_copy(self, size: int) -> float:
        """Seconds to receive ``size`` bytes into memory (recv chunks appended to a
        bytearray) from the sender's memory: the raw socket copy."""
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"m")
            buf = bytearray()
            while chunk := s.recv(1 << 20):
                buf += chunk
        took = time.perf_counter() - start
        assert len(buf) == size
        return took

    def file_copy(self, size: int, dest: Path) -> float:
        """Seconds to copy the sender's file into ``dest`` over the socket (read, send,
        receive, write; no fsync, like scp): the scp-like copy."""
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.port)) as s, open(dest, "wb") as out:
            s.sendall(b"f")
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while n := s.recv_into(view):
                out.write(view[:n])
        took = time.perf_counter() - start
        assert dest.stat().st_size == size
        dest.unlink()
        return took

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def bench_transfer(tmp: Path, size: int, rounds: int) -> dict[str, Any]:
    """Each round stores a new version on hub a, then, interleaved so that all see the same
    load: the raw socket copy, hub b's first fetch of the version, the scp-like file copy, a
    second fetch of it, and a lookup on b that fetches and stores it (a miss asked of a).

    Each timed step starts with nothing left for the disk to write (``os.sync()``, untimed):
    storing 50 MB, the file copy and the lookup leave up to 100 MB of dirty pages, whose
    writeback would otherwise land on whichever step comes next. A first round, the same
    but not counted, warms the processes up."""
    a = Worker("xfer_a", tmp, 1)
    b = Worker("xfer_b", tmp, 1, peers=[f"127.0.0.1:{a.ports[0]}"])
    source = tmp / "xfer_source"
    source.write_bytes(os.urandom(size))
    sender = RawSender(source)
    try:
        node = a.ask("node", 0)
        addr = f"127.0.0.1:{a.ports[0]}"
        runs: dict[str, list[float]] = {k: [] for k in
                                        ("raw", "file", "first", "again", "lookup")}  # fmt: skip

        def timed(name: str, record: bool, step: Callable[[], float]) -> None:
            os.sync()
            took = step()
            if record:
                runs[name].append(took)

        def fetch(key: str, version: str) -> float:
            took, got = b.ask("fetch", 0, addr, node, key, version).split()
            assert int(got) == size
            return float(took)

        def lookup(key: str) -> float:
            took, found = b.ask("lookup", 0, key).split()
            assert found == "1", f"{key} not found via the peer"
            return float(took)

        for r in range(rounds + 1):
            record, key = r > 0, f"big{r}"
            version = a.ask("store", 0, key, size, 0.1)
            timed("raw", record, lambda: sender.memory_copy(size))
            timed("first", record, lambda k=key, v=version: fetch(k, v))
            timed("file", record, lambda: sender.file_copy(size, tmp / "xfer_dest"))
            timed("again", record, lambda k=key, v=version: fetch(k, v))
            timed("lookup", record, lambda k=key: lookup(k))
            if record:
                progress(f"  round {r}/{rounds}: " + ", ".join(
                    f"{k} {size / 1e6 / v[-1]:.0f} MB/s" for k, v in runs.items()))  # fmt: skip
        mb = size / 1e6
        med = {k: statistics.median(v) for k, v in runs.items()}

        # Per round, the fetch against the baseline measured next to it; then the median.
        def ratio(base: str, measured: str) -> float:
            pairs = zip(runs[base], runs[measured], strict=True)
            return statistics.median(b / m for b, m in pairs)

        return {
            "size_mb": mb,
            "rounds": rounds,
            "raw_MBps": mb / med["raw"],
            "file_MBps": mb / med["file"],
            "first_MBps": mb / med["first"],
            "again_MBps": mb / med["again"],
            "lookup_with_store_s": med["lookup"],
            "lookup_MBps": mb / med["lookup"],
            "ratio": ratio("raw", "first"),
            "again_ratio": ratio("raw", "again"),
            "file_ratio": ratio("file", "first"),
            "samples_s": runs,
        }
    finally:
        sender.close()
        a.close()
        b.close()


PARTS = ("lookup", "dht", "propagation", "transfer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--part",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable) [all]: e.g. --part transfer",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="transfer rounds (median of) [7; 5 with --quick]"
    )
    parser.add_argument("--size-mb", type=int, default=50, help="transfer size [50]")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="w", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--hubs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    parser.add_argument("--dht", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--boot", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--watch", default="0.5s", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    parts = args.part or PARTS
    n = 30 if args.quick else 100
    rounds = args.rounds or (5 if args.quick else 7)
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-", dir="/tmp"))
    (tmp / "secret").write_text(SECRET)
    results: dict[str, Any] = {
        "commit": learnhub_commit(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }  # fmt: skip
    try:
        with terminate_as_interrupt():
            if "lookup" in parts:
                progress("lookup: local and via 1 peer ...")
                results["lookup"] = bench_local_and_one_peer(tmp, n)
            if "dht" in parts:
                for hubs in (20, 100):
                    progress(f"lookup via the DHT, {hubs} hubs ...")
                    results.setdefault("lookup", {})[f"DHT, {hubs} hubs"] = bench_dht(tmp, hubs, n)
            if "propagation" in parts:
                progress("propagation to 10 interested hubs ...")
                results["propagation"] = bench_propagation(tmp, 10, 5 if args.quick else 20)
            if "transfer" in parts:
                progress(f"{args.size_mb} MB transfer vs a raw socket copy, {rounds} rounds ...")
                results["transfer"] = bench_transfer(tmp, args.size_mb * 1_000_000, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"learnhub {results['commit']} on {results['cpu']} ({results['cpus']} CPUs), "
          "load average before %.2f %.2f %.2f, after %.2f %.2f %.2f"
          % (*results["load_before"], *results["load_after"]))  # fmt: skip
    if "lookup" in results:
        print(f"\n{'lookup':<18} {'p50 ms':>9} {'p99 ms':>9} {'n':>5}  hops")
        hops = {"local": "0", "1 peer": "1 link"}
        for name, r in results["lookup"].items():
            extra = f"  misses {r['misses']}" if r.get("misses") else ""
            print(f"{name:<18} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['n']:>5}  "
                  f"{hops.get(name, 'DHT get + 1 link')}{extra}")  # fmt: skip
    if "propagation" in results:
        p = results["propagation"]
        print(f"\npropagation of a new version to {p['hubs']} interested hubs (all have it): "
              f"p50 {p['p50_ms']:.0f} ms, p99 {p['p99_ms']:.0f} ms over {p['n']} "
              "versions")  # fmt: skip
    if "transfer" in results:
        t = results["transfer"]
        print(f"\n{t['size_mb']:.0f} MB transfer, medians of {t['rounds']} interleaved rounds "
              "(each round a new version):")  # fmt: skip
        rows = [
            ("raw socket copy (memory to memory)", t["raw_MBps"], "baseline"),
            ("scp-like copy (file to file, no fsync)", t["file_MBps"], "baseline"),
            ("fetch, first of its version (+ sha256 check)", t["first_MBps"],
             f"{t['ratio']:.0%} of raw, {t['file_ratio']:.0%} of scp-like"),
            ("fetch again (+ sha256 check)", t["again_MBps"], f"{t['again_ratio']:.0%} of raw"),
            ("lookup via the peer, fetched and stored", t["lookup_MBps"],
             f"{t['lookup_with_store_s']:.2f} s"),
        ]  # fmt: skip
        for name, mbps, note in rows:
            print(f"  {name:<46} {mbps:>7.0f} MB/s  {note}")
        verdict = "met" if t["ratio"] >= 0.5 else "NOT met"
        print(f"  target: first fetch >= 50% of the raw socket copy (median of per-round ratios):"
              f" {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
