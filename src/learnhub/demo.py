"""``learnhub demo``: the main job, end to end, on whatever store the hub has."""

from __future__ import annotations

import importlib.util
import logging
import secrets
import socket
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

import learnhub
from learnhub.hub import Hub
from learnhub.jobs import JobContext
from learnhub.server.app import serving

KEY = "demo/fft-solver"
DEMO_QUEUE = "demo"
# Three runs of one program: what each learned, in which regime, and how well it did.
FAST = {"mode": "fast", "period": "10"}
EXACT = {"mode": "exact", "period": "20"}
RUNS = [
    (FAST, {"model.net": b"\x01" * 512, "pairs.train": b"1 2\n3 4\n"}, 0.42),
    (FAST, {"model.net": b"\x02" * 512, "pairs.train": b"1 2\n3 4\n5 6\n"}, 0.17),
    (EXACT, {"model.net": b"\x03" * 512, "pairs.train": b"7 8\n"}, 0.30),
]


def run(hub: Hub, socket_path: Path, console: Console) -> None:
    logging.getLogger("learnhub").setLevel(logging.WARNING)  # the demo narrates itself
    console.print(f"[bold]hub[/bold] node {hub.node_id} on {hub.store!r}")
    with serving(hub, socket_path) as server, learnhub.connect(socket=socket_path) as client:
        console.print(f"[bold]serving[/bold] the Redis protocol on {server.socket_path}")
        console.print(f"PING → {client.redis.ping()}")
        token = None
        for attrs, files, metric in RUNS:
            before = client.lookup(KEY, local=True)
            token = before.version if before else None
            best = client.store(KEY, files, metric, attrs, base=token)
            console.print(f"STORE {KEY} metric={metric} {attrs} → best is now [cyan]{best}[/cyan]")
        best_artifact = client.lookup(KEY)
        assert best_artifact is not None
        console.print(
            f"LOOKUP {KEY} → version [cyan]{best_artifact.version}[/cyan] "
            f"metric {best_artifact.metric:g}, files {sorted(best_artifact.files)}"
        )
        exact = client.lookup(KEY, where={"mode": "exact"})
        assert exact is not None
        console.print(
            f"LOOKUP {KEY} WHERE mode exact → version [cyan]{exact.version}[/cyan] "
            f"metric {exact.metric:g}"
        )
    table = Table("version", "metric", "attrs", "base", title=f"history of {KEY}")
    for v in hub.learning.versions(KEY):
        table.add_row(
            v.version[:12],
            f"{v.metric:g}",
            " ".join(f"{k}={x}" for k, x in v.attrs.items()),
            (v.base or "-")[:12],
        )
    console.print(table)
    console.print(
        "The lowest metric wins; running the demo again stores nothing new "
        "(versions are content hashes)."
    )
    run_flow(hub, console)
    run_continuous(hub, console)
    run_sharing(console)
    run_peers(console)
    console.print("Next: [bold]learnhub serve[/bold], [bold]learnhub worker --app ...[/bold].")


def run_flow(hub: Hub, console: Console) -> None:
    """A small workflow: fan out, a dynamic extra child, fan in."""
    from learnhub.cli.jobs import flow_tree

    @hub.task("demo.start", queue=DEMO_QUEUE)
    def start(ctx: JobContext, meeting: str) -> str:
        return meeting

    @hub.task("demo.embed", queue=DEMO_QUEUE)
    def embed(ctx: JobContext, item: str) -> int:
        if item == "topic-0":  # found a related item: embed it too, before the join runs
            joins = [c for p, c, _ in ctx.hub.jobs.edges(ctx.job.flow_id) if p == ctx.job.id]
            ctx.spawn("demo.embed", {"item": "topic-0-related"}, before=joins)
        return len(item)

    @hub.task("demo.rerank", queue=DEMO_QUEUE)
    def rerank(ctx: JobContext) -> str:
        return "published"

    flow = hub.jobs.flow("demo-related", priority=50)
    first = flow.add("demo.start", {"meeting": "retro-42"})
    embeds = [flow.add("demo.embed", {"item": f"topic-{i}"}, after=[first]) for i in range(3)]
    last = flow.add("demo.rerank", after=embeds)
    flow.submit()
    console.print(f"FLOW {flow.id}: start → 3 × embed → rerank, submitted at once")
    hub.run_worker(queues=[DEMO_QUEUE], concurrency=2, burst=True)
    job = hub.jobs.get(last.id)
    assert job is not None
    console.print(flow_tree(job, hub.jobs.list(flow=flow.id), hub.jobs.edges(flow.id)))


def run_continuous(hub: Hub, console: Console) -> None:
    """examples/continuous_sensors.py: samples stream in, models train and fine-tune."""
    # The example is a script of the repository, not of the package: a wheel install has no
    # examples/ and skips this part.
    path = Path(__file__).resolve().parents[2] / "examples" / "continuous_sensors.py"
    if not path.is_file():
        console.print("(continuous learning: examples/continuous_sensors.py not found, skipped)")
        return
    spec = importlib.util.spec_from_file_location("continuous_sensors", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # its dataclasses look their module up there
    spec.loader.exec_module(example)
    console.print("[bold]continuous learning[/bold]: sensor readings arrive in rounds")
    example.run(hub, console)


def run_sharing(console: Console) -> None:
    """Three users share a bucket and an NFS folder (local folders stand in for them)."""
    from learnhub.sharing.scenario import three_users

    console.print("[bold]sharing[/bold]: three users, three stores, one bucket, one NFS folder")
    quiet = logging.getLogger("learnhub.sharing")  # the outage is staged: the demo reports it
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="learnhub-demo-sharing-") as root:
            three_users(console, Path(root))
    finally:
        quiet.setLevel(level)


def run_peers(console: Console) -> None:
    """Two hubs on loopback: what one learned, the other finds on its first lookup."""
    from learnhub.config import Config

    if importlib.util.find_spec("cryptography") is None:
        console.print(
            "[bold]peers[/bold]: skipped, the p2p extra is not installed "
            "(pip install 'learnhub\\[p2p]' to see two hubs share)"
        )
        return

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    secret = secrets.token_hex(32)  # the cluster's shared secret: never sent on the wire
    console.print("[bold]peers[/bold]: hub A and hub B on loopback, B has A as its peer")
    with tempfile.TemporaryDirectory(prefix="learnhub-demo-peers-") as root:
        a_conf = Config(peers={"listen": f"127.0.0.1:{ports[0]}", "secret": secret})
        b_conf = Config(
            peers={
                "listen": f"127.0.0.1:{ports[1]}",
                "peers": [f"127.0.0.1:{ports[0]}"],
                "secret": secret,
            }
        )
        with (
            learnhub.open(f"sqlite:///{root}/a.db", config=a_conf) as a,
            learnhub.open(f"sqlite:///{root}/b.db", config=b_conf) as b,
        ):
            a.start_peers()
            b.start_peers()
            version = a.learning.store("asc/solver", {"solver.net": b"\x05" * 4096}, 0.12)
            console.print(f"A: STORE asc/solver metric=0.12 → {version[:12]}")
            found = b.learning.lookup("asc/solver")
            where = "nowhere" if found is None else f"{found.version[:12]} from node {found.origin}"
            console.print(f"B: LOOKUP asc/solver (never seen here) → {where}")
