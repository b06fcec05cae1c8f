"""Peers: lookup latency (local, via 1 peer, via the DHT at 20 and 100 hubs), propagation of
a new version to 10 interested hubs, and a 50 MB transfer against a raw socket copy.

Hubs run in *worker* processes, several per process (100 single-hub processes would take
~9 GB here): each hub has its own SQLite store, peer link, DHT node and loop thread, and the
hubs of one worker talk to each other over loopback TCP/UDP like any others. Lookups are
``hub.learning.lookup`` in the hub's worker, so the figures are the hub's own latency (no
client round trip). Propagation uses 11 separate ``python -m learnhub.peers`` processes.

    .venv/bin/python benchmarks/bench_peers.py [--quick] [--json]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_model, learnhub_commit, terminate_as_interrupt  # noqa: E402

SECRET = "bench-peers-cluster-secret-0123456789"
HUBS_PER_WORKER = 10


# --- the worker: several hubs in one process, driven line by line over stdin ---------------


def worker_main(args: argparse.Namespace) -> None:
    import learnhub
    from learnhub.learning.policies import LearningConfig
    from learnhub.peers import PeerService, parse_peers_config

    hubs, services = [], []
    boot = args.boot
    for i in range(args.hubs):
        hub = learnhub.open(f"sqlite:///{args.dir}/{args.name}_{i}.db")
        hub.learning.configure(LearningConfig(lookup_timeout="10s"))
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
size = int(sys.argv[1])
data = (bytes(range(256)) * (size // 256 + 1))[:size]
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(data)
    conn.close()
"""


def raw_copy(size: int) -> float:
    """Seconds to receive ``size`` bytes over loopback TCP from another process."""
    proc = subprocess.Popen([sys.executable, "-c", RAW_SENDER, str(size)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = int(proc.stdout.readline())
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            buf = bytearray()
            while chunk := s.recv(1 << 20):
                buf += chunk
        took = time.perf_counter() - start
        assert len(buf) == size
        return took
    finally:
        proc.kill()
        proc.wait()


def bench_transfer(tmp: Path, size: int, rounds: int) -> dict[str, Any]:
    a = Worker("xfer_a", tmp, 1)
    b = Worker("xfer_b", tmp, 1, peers=[f"127.0.0.1:{a.ports[0]}"])
    try:
        version = a.ask("store", 0, "big", size, 0.1)
        node = a.ask("node", 0)
        peer, raw = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            took, got = b.ask("fetch", 0, f"127.0.0.1:{a.ports[0]}", node, "big", version).split()
            assert int(got) == size
            peer.append(float(took))
            raw.append(raw_copy(size))
        end_to_end = float(b.ask("lookup", 0, "big").split()[0])
        mb = size / 1e6
        # The first fetch is the headline: the serving hub reads the version from its store
        # for the first time (the others find its pages in the OS's cache).
        cold, warm = peer[0], statistics.median(peer[1:])
        raw_s = statistics.median(raw)
        return {
            "size_mb": mb,
            "cold_MBps": mb / cold,
            "peer_MBps": mb / warm,
            "raw_MBps": mb / raw_s,
            "ratio": raw_s / cold,
            "warm_ratio": raw_s / warm,
            "lookup_with_store_s": end_to_end,
        }
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
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
    n = 30 if args.quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-", dir="/tmp"))
    (tmp / "secret").write_text(SECRET)
    results: dict[str, Any] = {
        "commit": learnhub_commit(), "cpu": cpu_model(), "cpus": os.cpu_count(),
    }  # fmt: skip
    try:
        with terminate_as_interrupt():
            progress("lookup: local and via 1 peer ...")
            results["lookup"] = bench_local_and_one_peer(tmp, n)
            for hubs in (20, 100):
                progress(f"lookup via the DHT, {hubs} hubs ...")
                results["lookup"][f"DHT, {hubs} hubs"] = bench_dht(tmp, hubs, n)
            progress("propagation to 10 interested hubs ...")
            results["propagation"] = bench_propagation(tmp, 10, 5 if args.quick else 20)
            progress("50 MB transfer vs a raw socket copy ...")
            results["transfer"] = bench_transfer(tmp, 50_000_000, 3 if args.quick else 6)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"learnhub {results['commit']} on {results['cpu']} ({results['cpus']} CPUs)")
    print(f"\n{'lookup':<18} {'p50 ms':>9} {'p99 ms':>9} {'n':>5}  hops")
    hops = {"local": "0", "1 peer": "1 link"}
    for name, r in results["lookup"].items():
        extra = f"  misses {r['misses']}" if r.get("misses") else ""
        print(f"{name:<18} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['n']:>5}  "
              f"{hops.get(name, 'DHT get + 1 link')}{extra}")  # fmt: skip
    p = results["propagation"]
    print(f"\npropagation of a new version to {p['hubs']} interested hubs (all have it): "
          f"p50 {p['p50_ms']:.0f} ms, p99 {p['p99_ms']:.0f} ms over {p['n']} versions")  # fmt: skip
    t = results["transfer"]
    print(f"\n{t['size_mb']:.0f} MB transfer (fetch + sha256 check): first fetch "
          f"{t['cold_MBps']:.0f} MB/s = {t['ratio']:.0%} of the raw socket copy's "
          f"{t['raw_MBps']:.0f} MB/s; later fetches {t['peer_MBps']:.0f} MB/s "
          f"({t['warm_ratio']:.0%}); "
          f"lookup incl. storing it: {t['lookup_with_store_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
