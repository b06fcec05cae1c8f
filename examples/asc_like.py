"""An ASC-like program: it learns to predict its own input, and asks the hub first.

ASC keeps, per program and regime, a network (``.net``), the training pairs it saw
(``.train``) and the bits that were excited (``.excite``). Here the "program" emits a
noisy periodic signal; a small numpy MLP learns to predict the next value from the last
``WINDOW``. Before learning, the program looks its key up in the hub: whatever any run on
any hub learned before is the starting point, so a second run goes on from the first
instead of starting over. After learning it stores what it has, with the lookup's version
as its base (a concurrent run then gets combined by the key's policy, not overwritten).

Run against a hub (``learnhub serve`` with its peers, or ``python -m learnhub.peers``)::

    python examples/asc_like.py --socket /run/user/1000/learnhub/hub.sock

or see it across two hubs on loopback, each a process of its own::

    python examples/asc_like.py --demo
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import learnhub

WINDOW = 8
HIDDEN = 16
EPOCHS = 150  # the learning budget of one run
KEY = "asc/demo-signal"


def program_input(seed: int, n: int = 4000) -> np.ndarray:
    """What the program computes: a periodic signal with some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(t / 7.0) + 0.5 * np.sin(t / 3.1) + 0.05 * rng.standard_normal(n)


def pairs(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.lib.stride_tricks.sliding_window_view(signal[:-1], WINDOW)
    return x.astype(np.float32), signal[WINDOW:].astype(np.float32)


def init_net(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((WINDOW, HIDDEN)) / np.sqrt(WINDOW)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.standard_normal((HIDDEN, 1)) / np.sqrt(HIDDEN)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }


def predict(net: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return (np.tanh(x @ net["w1"] + net["b1"]) @ net["w2"] + net["b2"])[:, 0]


def error(net: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((predict(net, x) - y) ** 2))


def train(net: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    """Full-batch gradient descent with momentum, in place."""
    velocity = {k: np.zeros_like(v) for k, v in net.items()}
    for _ in range(epochs):
        hidden = np.tanh(x @ net["w1"] + net["b1"])
        out = (hidden @ net["w2"] + net["b2"])[:, 0]
        grad_out = (2 * (out - y) / len(y))[:, None]
        grad_hidden = (grad_out @ net["w2"].T) * (1 - hidden**2)
        grads = {
            "w2": hidden.T @ grad_out,
            "b2": grad_out.sum(0),
            "w1": x.T @ grad_hidden,
            "b1": grad_hidden.sum(0),
        }
        for k in net:
            velocity[k] = 0.9 * velocity[k] - 0.05 * grads[k]
            net[k] += velocity[k]


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _load(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as f:
        return {k: f[k] for k in f.files}


def run(client: learnhub.Client, seed: int, name: str) -> dict[str, float]:
    """One run of the program: look up, learn for EPOCHS, store. Returns what it measured."""
    x, y = pairs(program_input(seed))
    split = int(len(y) * 0.8)
    started = time.perf_counter()
    found = client.lookup(KEY, {"window": WINDOW})
    if found is not None:
        net = _load(found.files["signal.net"])
        old = _load(found.files["signal.train"])
        # The pairs seen before join this run's: ASC keeps what it was trained on.
        train_x = np.concatenate([old["x"], x[:split]])
        train_y = np.concatenate([old["y"], y[:split]])
        base = found.version
    else:
        net, train_x, train_y, base = init_net(seed), x[:split], y[:split], None
    before = error(net, x[split:], y[split:])
    train(net, train_x, train_y, EPOCHS)
    after = error(net, x[split:], y[split:])
    excite = np.packbits(np.abs(net["w1"]).max(axis=1) > 0.1).tobytes()
    files = {
        "signal.net": _npz(**net),
        "signal.train": _npz(x=train_x[-20000:], y=train_y[-20000:]),
        "signal.excite": excite,
    }
    client.store(KEY, files, after, {"window": WINDOW}, base=base)
    took = time.perf_counter() - started
    print(
        f"{name}: started from {'a previous run (' + base[:12] + ')' if base else 'scratch'}; "
        f"validation error {before:.5f} -> {after:.5f} in {EPOCHS} epochs ({took:.2f}s)"
    )
    return {"before": before, "after": after, "seconds": took}


def demo() -> int:
    """Two hubs on loopback, each a process: run 1 on hub A, run 2 on hub B (A is its peer)."""
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="asc-", dir="/tmp"))
    secret = tmp / "cluster.secret"
    secret.write_text("asc-like-demo-cluster-secret-0123")
    procs: list[subprocess.Popen[str]] = []

    def hub(name: str, *peers: str) -> tuple[Path, int]:
        sock = tmp / f"{name}.sock"
        cmd = [sys.executable, "-m", "learnhub.peers", "--store", f"sqlite:///{tmp}/{name}.db",
               "--listen", "127.0.0.1:0", "--secret-file", str(secret), "--socket", str(sock),
               "--lookup-timeout", "5s"]  # fmt: skip
        for p in peers:
            cmd += ["--peer", p]
        log = tmp / f"{name}.log"
        with log.open("w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        procs.append(proc)
        line = proc.stdout.readline()  # READY node=... port=...
        if not line.startswith("READY"):
            proc.wait(timeout=10)
            why = (log.read_text().strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"hub {name} did not start: {why}")
        port = int(dict(f.split("=", 1) for f in line.split()[1:])["port"])
        deadline = time.monotonic() + 30
        while not sock.exists():  # the RESP door comes up just after the READY line
            if time.monotonic() > deadline:
                raise SystemExit(f"hub {name} has no socket")
            time.sleep(0.05)
        return sock, port

    try:
        sock_a, port_a = hub("a")
        sock_b, _ = hub("b", f"127.0.0.1:{port_a}")
        with learnhub.connect(socket=sock_a) as a:
            first = run(a, seed=1, name="run 1 on hub A")
        with learnhub.connect(socket=sock_b) as b:
            second = run(b, seed=2, name="run 2 on hub B")
        print(
            f"run 2 started at error {second['before']:.5f} (run 1 started at "
            f"{first['before']:.5f}) and ended at {second['after']:.5f} (run 1: "
            f"{first['after']:.5f}) with the same budget"
        )
        if second["before"] <= first["after"]:
            print("run 2 was already as good as run 1's result before learning anything")
        return 0 if second["after"] < first["after"] else 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="the hub's UNIX socket (default: the configured one)")
    parser.add_argument("--seed", type=int, default=1, help="the program's input")
    parser.add_argument("--demo", action="store_true", help="two hubs on loopback")
    args = parser.parse_args()
    if args.demo:
        return demo()
    with learnhub.connect(socket=args.socket) as client:
        run(client, args.seed, "run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
