"""Sharing against real servers: S3 (moto_server), GCS (gcp-storage-emulator), a source that
hangs (a socket that never answers). Faults: S3 stopped mid-poll and mid-backup, then
restarted, and everything converges with nothing lost. The three-users scenario: three hubs
(three SQLite stores) share one S3 bucket and one local folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import learnhub
import sharing_servers
from conftest import wait_for
from learnhub.config import Config, SharingConfig
from learnhub.sharing.examples import SUFFIX
from sharing_servers import backup_jobs, worker

MODEL = "hashing"
BUCKET = "team-bucket"

# real servers, one per test (see sharing_servers.py)
moto = sharing_servers.moto
gcs = sharing_servers.gcs
hanging = sharing_servers.hanging


def open_hub(url: str, **kw) -> learnhub.Hub:
    kw.setdefault("model", MODEL)
    kw.setdefault("timeout", 5)
    return learnhub.open(url, config=Config(sharing=SharingConfig(**kw)))


def test_s3_backup_and_load(moto, store_url: str, tmp_path: Path) -> None:
    moto.make_bucket(BUCKET)
    opts = {"s3://": moto.options()}
    with (
        open_hub(store_url, backup=f"s3://{BUCKET}/examples/alice/", options=opts) as alice,
        open_hub(
            f"sqlite:///{tmp_path / 'bob.db'}",
            sources=[f"s3://{BUCKET}/examples/**/*.json"],
            options=opts,
        ) as bob,
    ):
        made = [alice.examples.add(f"how to fix flaky test {i}", f"retry {i}") for i in range(5)]
        assert alice.sharing.sync().backed_up == 5
        report = bob.sharing.sync()
        assert (report.listed, report.loaded, report.errors) == (5, 5, {})
        assert bob.examples.nearest("fix flaky test 3", k=1)[0].id == made[3].id
        assert bob.sharing.sync().read == 0  # etags unchanged: nothing read again
        alice.examples.rm(made[0].id)
        alice.sharing.backup_example(made[0].id)  # what the job does
        assert bob.sharing.sync().dropped == 1
        [status] = bob.sharing.status()
        assert status["ok"] and status["examples"] == 4


def test_gcs_backup_and_load(gcs, tmp_path: Path) -> None:
    gcs.make_bucket("learned")
    opts = {"gs://": gcs.options()}
    with (
        open_hub(f"sqlite:///{tmp_path / 'a.db'}", backup="gs://learned/alice", options=opts) as a,
        open_hub(
            f"sqlite:///{tmp_path / 'b.db'}", sources=["gs://learned/*/*.json"], options=opts
        ) as b,
    ):
        e = a.examples.add("where is the on-call rota", "in the wiki")
        assert a.sharing.sync().backed_up == 1
        assert b.sharing.sync().loaded == 1
        assert b.examples.get(e.id).output == "in the wiki"
        assert b.sharing.sync().read == 0


def test_hanging_source_times_out_and_others_load(hanging, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / f"ok1{SUFFIX}").write_text(
        '{"id": "ok1", "input": "a question", "output": "an answer", "created_ns": 1}'
    )
    with open_hub(
        f"sqlite:///{tmp_path / 'h.db'}",
        sources=["s3://hangs/*.json", f"{folder}/*.json"],
        options={"s3://": {"endpoint_url": hanging.endpoint, "key": "k", "secret": "s"}},
        timeout=1,
    ) as hub:
        report = hub.sharing.sync()
        assert report.loaded == 1
        assert "did not answer within 1s" in report.errors["s3://hangs/*.json"]
        status = {s["location"]: s for s in hub.sharing.status()}
        assert not status["s3://hangs/*.json"]["ok"] and status[f"{folder}/*.json"]["ok"]
        assert hub.examples.nearest("a question", k=1)[0].id == "ok1"  # serving


def test_s3_down_mid_backup_and_mid_poll_converges(moto, tmp_path: Path) -> None:
    moto.make_bucket(BUCKET)
    opts = {"s3://": moto.options()}
    src = [f"s3://{BUCKET}/examples/*/*.json"]
    with (
        open_hub(
            f"sqlite:///{tmp_path / 'a.db'}",
            backup=f"s3://{BUCKET}/examples/alice",
            options=opts,
            poll_interval="1s",
        ) as alice,
        open_hub(f"sqlite:///{tmp_path / 'b.db'}", sources=src, options=opts) as bob,
    ):
        before = [alice.examples.add(f"before the outage {i}", "a") for i in range(3)]
        with worker(alice):
            wait_for(lambda: alice.examples.count()["backed_up"] == 3, what="first backups")
            assert bob.sharing.sync().loaded == 3
            saved = moto.snapshot()
            moto.stop()  # S3 goes away
            during = [alice.examples.add(f"during the outage {i}", "b") for i in range(3)]
            wait_for(
                lambda: sum(j.attempts for j in backup_jobs(alice) if j.state != "succeeded") >= 4,
                timeout=60,
                what="failed backup attempts",
            )
            poll = bob.sharing.sync()  # mid-poll: the source is down
            assert poll.errors and poll.dropped == 0
            assert bob.examples.count()["total"] == 3  # nothing dropped while it is down
            assert not {s["role"]: s for s in alice.sharing.status()}["backup"]["ok"]
            moto.start()
            moto.restore(saved)
            wait_for(
                lambda: all(j.state == "succeeded" for j in backup_jobs(alice)),
                timeout=90,
                what="the retried backup jobs",
            )
        assert alice.examples.count()["backed_up"] == 6
        report = bob.sharing.sync()
        assert report.loaded == 3 and not report.errors
        want = {e.id for e in before + during}
        assert {e.id for e in bob.examples.ls()} == want
        assert {s["role"]: s["ok"] for s in alice.sharing.status()}["backup"]


def test_three_users_share_a_bucket_and_a_folder(moto, tmp_path: Path) -> None:
    """Alice backs up to S3, Bob to S3, Carol to the shared folder; everyone loads both. After
    one poll each finds the others' examples; Carol's folder goes away for a while and her
    examples arrive after it comes back."""
    moto.make_bucket(BUCKET)
    opts = {"s3://": moto.options()}
    folder = tmp_path / "nfs"
    sources = [f"s3://{BUCKET}/examples/*/*.json", f"{folder}/*/*.json"]
    backups = {
        "alice": f"s3://{BUCKET}/examples/alice",
        "bob": f"s3://{BUCKET}/examples/bob",
        "carol": f"{folder}/carol",
    }
    learned = {
        "alice": [("how do I deploy to production", "make deploy ENV=prod")],
        "bob": [("how do I rotate database credentials", "vault rotate db")],
        "carol": [("how do I page the on-call engineer", "pd trigger oncall")],
    }
    hubs = {
        name: open_hub(
            f"sqlite:///{tmp_path / f'{name}.db'}", sources=sources, backup=b, options=opts
        )
        for name, b in backups.items()
    }
    try:
        folder.mkdir()
        (folder / "carol").write_text("the mount is broken: a file where the folder should be")
        mine = {n: [hubs[n].examples.add(q, a, author=n) for q, a in learned[n]] for n in hubs}
        for hub in hubs.values():
            hub.sharing.sync()  # back up, then poll
        for hub in hubs.values():
            hub.sharing.sync()  # one poll after everyone's backups
        for name, hub in hubs.items():
            for other in ("alice", "bob"):
                q = learned[other][0][0]
                assert hub.examples.nearest(q, k=1)[0].id == mine[other][0].id, (name, other)
            top = hub.examples.nearest(learned["carol"][0][0], k=1)[0]
            assert (top.id == mine["carol"][0].id) == (name == "carol")  # not yet shared
        carol_status = {s["role"]: s for s in hubs["carol"].sharing.status()}["backup"]
        assert not carol_status["ok"] and hubs["carol"].examples.count()["backed_up"] == 0
        (folder / "carol").unlink()  # the folder is back
        hubs["carol"].sharing.sync()
        for hub in hubs.values():
            hub.sharing.sync()
        for hub in hubs.values():
            assert hub.examples.nearest(learned["carol"][0][0], k=1)[0].id == mine["carol"][0].id
            assert hub.examples.count()["total"] == 3
    finally:
        for hub in hubs.values():
            hub.close()


def test_backup_write_is_verified_and_atomic_on_s3(moto, tmp_path: Path) -> None:
    moto.make_bucket(BUCKET)
    with open_hub(
        f"sqlite:///{tmp_path / 'a.db'}",
        backup=f"s3://{BUCKET}/x",
        options={"s3://": moto.options()},
    ) as hub:
        loc = hub.sharing.backup
        path = loc.write("a.example.json", b"{}")
        assert loc.fs.cat_file(path) == b"{}"
        assert loc.list_folder(".json") and loc.delete("a.example.json")
        loc.delete("a.example.json")  # again: no error (S3 deletes are idempotent)
        assert loc.list_folder(".json") == {}
        moto.stop()
        t0 = time.monotonic()
        with pytest.raises(learnhub.sharing.LocationError, match="s3://team-bucket/x"):
            loc.write("b.example.json", b"{}")
        assert time.monotonic() - t0 >= 0  # it returned: the error, not a hang


def test_s3_stopped_during_a_poll_then_converges(moto, tmp_path: Path) -> None:
    """The server goes away while a poll is reading: what was read is kept, what was not is
    read by the next poll once the server is back; nothing is dropped meanwhile."""
    moto.make_bucket(BUCKET)
    opts = {"s3://": moto.options()}
    with (
        open_hub(
            f"sqlite:///{tmp_path / 'a.db'}", backup=f"s3://{BUCKET}/ex/alice", options=opts
        ) as alice,
        open_hub(
            f"sqlite:///{tmp_path / 'b.db'}", sources=[f"s3://{BUCKET}/ex/*/*.json"], options=opts
        ) as bob,
    ):
        for i in range(400):
            alice.examples.add(f"question {i} about the build", f"answer {i}")
        assert alice.sharing.sync().backed_up == 400
        saved = moto.snapshot()
        gets_before = _example_gets(moto)
        outcome: dict = {}
        poll = threading.Thread(target=lambda: outcome.update(r=bob.sharing.sync()))
        poll.start()
        wait_for(lambda: _example_gets(moto) - gets_before >= 20, what="the poll reading")
        moto.stop()  # mid-poll
        poll.join(120)
        first = outcome["r"]
        assert first.errors and first.loaded < 400  # some reads failed
        assert bob.examples.count()["total"] == first.loaded  # what was read is kept
        moto.start()
        moto.restore(saved)
        second = bob.sharing.sync()
        assert not second.errors and second.dropped == 0
        assert first.loaded + second.loaded == 400
        assert second.read == 400 - first.loaded  # only what was not read before
        assert bob.examples.count()["total"] == 400


def test_s3_stopped_during_backups_and_wiped_loses_nothing(moto, tmp_path: Path) -> None:
    """The server goes away while the worker is writing backups and comes back empty (a
    wiped bucket): the jobs retry, the next sync writes again what the bucket lost, and
    another user ends up with every example."""
    moto.make_bucket(BUCKET)
    opts = {"s3://": moto.options()}
    with (
        open_hub(
            f"sqlite:///{tmp_path / 'a.db'}",
            backup=f"s3://{BUCKET}/ex/alice",
            options=opts,
            poll_interval="1s",
        ) as alice,
        open_hub(
            f"sqlite:///{tmp_path / 'b.db'}", sources=[f"s3://{BUCKET}/ex/*/*.json"], options=opts
        ) as bob,
    ):
        made = [alice.examples.add(f"learned {i} during the incident", "ok") for i in range(150)]
        with worker(alice):
            wait_for(lambda: alice.examples.count()["backed_up"] >= 10, what="some backups")
            moto.stop()  # mid-backup
            wait_for(
                lambda: any(j.attempts >= 2 for j in backup_jobs(alice)),
                timeout=60,
                what="a failed backup attempt",
            )
            moto.start()  # back, but empty
            moto.make_bucket(BUCKET)
            wait_for(
                lambda: all(j.state == "succeeded" for j in backup_jobs(alice)),
                timeout=180,
                what="every backup job",
            )
        report = alice.sharing.sync()  # finds the files the wipe took and writes them again
        assert not report.errors
        assert alice.examples.count()["backed_up"] == 150
        assert bob.sharing.sync().loaded == 150
        assert {e.id for e in bob.examples.ls(limit=1000)} == {e.id for e in made}


def _example_gets(server) -> int:
    log = server.log
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.seek(0, 2)
    return text.count(".example.json HTTP")
