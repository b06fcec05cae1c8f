"""The sharing scenario, for ``learnhub demo``: three users (three hubs, three SQLite stores)
share one "bucket" and one "NFS" folder (local folders standing in for S3 and a mount). Each
learns something different; after one poll each finds the others' examples; Carol's backup
is down for a while, and her example reaches the others once it is back.

    from learnhub.sharing.scenario import three_users
    three_users(console, Path(tempfile.mkdtemp()))
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

import learnhub
from learnhub.config import Config, SharingConfig

LEARNED = {
    "alice": ("how do I deploy the api to production", "make deploy ENV=prod (needs the VPN)"),
    "bob": ("how do I rotate the database credentials", "vault write -f db/rotate-root/app"),
    "carol": ("who do I page when the queue backs up", "the platform on-call: pd trigger platform"),
}


def three_users(console: Console, root: Path, model: str = "hashing") -> dict[str, int]:
    """Run the scenario under ``root`` (made if missing); returns how many examples each
    user ends with (3 each when it worked)."""
    bucket, nfs = root / "bucket", root / "nfs"
    bucket.mkdir(parents=True, exist_ok=True)
    nfs.mkdir(parents=True, exist_ok=True)
    backups = {"alice": bucket / "alice", "bob": bucket / "bob", "carol": nfs / "carol"}
    hubs = {}
    try:
        for name, backup in backups.items():
            config = Config(
                sharing=SharingConfig(
                    sources=[f"{bucket}/*/*.json", f"{nfs}/*/*.json"],
                    backup=str(backup),
                    model=model,
                )
            )
            hubs[name] = learnhub.open(f"sqlite:///{root / f'{name}.db'}", config=config)
        # Carol's mount is broken: a file where her folder should be.
        backups["carol"].write_text("not a folder")
        for name, hub in hubs.items():
            question, answer = LEARNED[name]
            e = hub.examples.add(question, answer, author=name)
            console.print(f"[bold]{name}[/bold] learns {e.id}: {question!r}")
        for _ in range(2):  # back up, then one poll after everyone's backups
            for hub in hubs.values():
                hub.sharing.sync()
        status = {s["role"]: s for s in hubs["carol"].sharing.status()}["backup"]
        console.print(f"carol's backup: [red]down[/red] ({status['last_error']})")
        _who_knows(console, hubs)
        backups["carol"].unlink()  # the mount is back
        console.print("carol's backup is back: her pending example is written, others poll")
        for hub in [hubs["carol"], *hubs.values()]:
            hub.sharing.sync()
        _who_knows(console, hubs)
        return {name: hub.examples.count()["total"] for name, hub in hubs.items()}
    finally:
        for hub in hubs.values():
            hub.close()


def _who_knows(console: Console, hubs: dict[str, learnhub.Hub]) -> None:
    for name, hub in hubs.items():
        found = []
        for other, (question, _) in LEARNED.items():
            if other == name:
                continue
            best = hub.examples.nearest(question, k=1)
            hit = bool(best) and best[0].author == other
            found.append(f"{other}'s {'[green]yes[/green]' if hit else '[red]not yet[/red]'}")
        console.print(f"  {name} nearest(): " + ", ".join(found))
