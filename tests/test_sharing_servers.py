"""Sharing against real servers: S3 (moto_server), GCS (gcp-storage-emulator), Azure Blob
(Azurite), a source that hangs (a socket that never answers). Faults: S3 (and Azure) stopped
mid-poll and mid-backup, then restarted, and everything converges with nothing lost. The
three-users scenario: three hubs (three SQLite stores) share one S3 bucket and one local
folder."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import learnhub
import sharing_servers
from conftest import wait_for
from learnhub.config import Config, SharingConfig
from learnhub.sharing.examples import SUFFIX
from learnhub.sharing.locations import Location
from sharing_servers import backup_jobs, worker

MODEL = "hashing"
BUCKET = "team-bucket"

# real servers, one per test (see sharing_servers.py)
moto = sharing_servers.moto
gcs = sharing_servers.gcs
azurite_session = sharing_servers.azurite_session
azurite = sharing_servers.azurite
hanging = sharing_servers.hanging


def open_hub(url: str, **kw) -> learnhub.Hub:
    kw.setdefault("model", MODEL)
    kw.setdefault("timeout", 5)
    return learnhub.open(url, config=Config(sharing=SharingConfig(**kw)))


@dataclass
class Bucket:
    """A bucket (S3, GCS) or container (Azure Blob) on a real server, for one test."""

    url: str  # scheme://bucket
    options: dict  # [sharing.options]
    server: Any

    def put(self, path: str, data: bytes) -> None:
        """Write an object directly (a file another user's tool left there)."""
        loc = Location(f"{self.url}/x", self.options)
        loc.fs.pipe_file(f"{loc.path.rsplit('/', 1)[0]}/{path}", data)


@pytest.fixture(params=["s3", "gs", "az"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    """The same bucket tests on S3 (moto_server), GCS (gcp-storage-emulator) and Azure Blob
    (Azurite)."""
    kind = request.param
    server = request.getfixturevalue({"s3": "moto", "gs": "gcs", "az": "azurite"}[kind])
    name = f"lh-{uuid.uuid4().hex[:12]}"
    if kind == "az":
        server.make_container(name)
    else:
        server.make_bucket(name)
    return Bucket(f"{kind}://{name}", {f"{kind}://": server.options()}, server)


def test_backup_load_poll_vanish_and_garbage(bucket: Bucket, store_url: str, tmp_path) -> None:
    """One user backs up to the bucket, another loads from it: the first poll reads every
    file, the next only what changed (a rewritten example: one GET), a removed example's
    file vanishes and the example goes, a garbage file is skipped and reported."""
    opts = bucket.options
    with (
        open_hub(store_url, backup=f"{bucket.url}/examples/alice/", options=opts) as alice,
        open_hub(
            f"sqlite:///{tmp_path / 'bob.db'}",
            sources=[f"{bucket.url}/examples/**/*.json"],
            options=opts,
        ) as bob,
    ):
        made = [alice.examples.add(f"how to fix flaky test {i}", f"retry {i}") for i in range(5)]
        assert alice.sharing.sync().backed_up == 5
        report = bob.sharing.sync()
        assert (report.listed, report.read, report.loaded, report.errors) == (5, 5, 5, {})
        assert bob.examples.nearest("fix flaky test 3", k=1)[0].id == made[3].id
        assert bob.sharing.sync().read == 0  # stamps unchanged: nothing read again
        # a changed file: only it is read
        alice.examples.add("how to quarantine a flaky test", "mark it", id=made[1].id)
        alice.sharing.backup_example(made[1].id)  # what the job does
        [loc] = bob.sharing.sources
        gets = loc.gets
        report = bob.sharing.sync()
        assert (report.read, report.loaded, loc.gets - gets) == (1, 1, 1)
        assert bob.examples.get(made[1].id).input == "how to quarantine a flaky test"
        # a vanished file: its example goes
        alice.examples.rm(made[0].id)
        alice.sharing.backup_example(made[0].id)
        assert bob.sharing.sync().dropped == 1 and bob.examples.get(made[0].id) is None
        # a garbage file: skipped and reported, not fatal, not read again while unchanged
        bucket.put(f"examples/mallory/bad{SUFFIX}", b"{not json")
        report = bob.sharing.sync()
        assert (report.read, report.skipped, report.loaded, report.errors) == (1, 1, 0, {})
        [status] = bob.sharing.status()
        assert status["ok"] and status["examples"] == 4 and status["skipped"] == 1
        assert "not JSON" in status["skipped_files"][0]
        assert bob.sharing.sync().read == 0
        assert bob.examples.count()["total"] == 4


def test_az_account_from_the_environment(azurite, tmp_path, monkeypatch) -> None:
    """No options: the account comes from AZURE_STORAGE_CONNECTION_STRING, as for adlfs."""
    azurite.make_container("from-env")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    with open_hub(f"sqlite:///{tmp_path / 'a.db'}", backup="az://from-env/alice") as hub:
        e = hub.examples.add("where are the azure credentials", "in the environment")
        assert hub.sharing.sync().backed_up == 1
        assert list(hub.sharing.backup.list_folder(SUFFIX)) == [f"from-env/alice/{e.id}{SUFFIX}"]
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with open_hub(f"sqlite:///{tmp_path / 'b.db'}", sources=["az://from-env/*/*.json"]) as hub:
        report = hub.sharing.sync()  # no account at all: a clear error, the hub serves
        assert "AZURE_STORAGE_CONNECTION_STRING" in report.errors["az://from-env/*/*.json"]


def _hanging_options(kind: str, endpoint: str) -> dict:
    if kind == "az":
        cs = sharing_servers.Azurite().connection_string
        cs = cs.replace(cs.split("BlobEndpoint=")[1], f"{endpoint}/devstoreaccount1;")
        return {"connection_string": cs}
    return {"endpoint_url": endpoint, "key": "k", "secret": "s"}


@pytest.mark.parametrize("kind", ["s3", "az"])
def test_hanging_source_times_out_and_others_load(kind: str, hanging, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / f"ok1{SUFFIX}").write_text(
        '{"id": "ok1", "input": "a question", "output": "an answer", "created_ns": 1}'
    )
    source = f"{kind}://hangs/*.json"
    with open_hub(
        f"sqlite:///{tmp_path / 'h.db'}",
        sources=[source, f"{folder}/*.json"],
        options={f"{kind}://": _hanging_options(kind, hanging.endpoint)},
        timeout=1,
    ) as hub:
        report = hub.sharing.sync()
        assert report.loaded == 1
        assert "did not answer within 1s" in report.errors[source]
        status = {s["location"]: s for s in hub.sharing.status()}
        assert not status[source]["ok"] and status[f"{folder}/*.json"]["ok"]
        assert hub.examples.nearest("a question", k=1)[0].id == "ok1"  # serving
        if kind == "az":  # the SDK's own waits are bounded too (not its default minutes)
            wait_for(lambda: len(hanging.accepted) >= 1, what="a connection to the hang")
            fs = hub.sharing.sources[0].fs
            assert fs.service_client._config.retry_policy.total_retries == 1


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


@pytest.mark.parametrize("kind", ["s3", "az"])
def test_stopped_during_backups_and_wiped_loses_nothing(kind, request, tmp_path: Path) -> None:
    """The server (moto_server, Azurite) goes away while the worker is writing backups and
    comes back empty (a wiped bucket): the jobs retry, the next sync writes again what the
    bucket lost, and another user ends up with every example."""
    server = request.getfixturevalue({"s3": "moto", "az": "azurite"}[kind])
    server.make_bucket(BUCKET)
    opts = {f"{kind}://": server.options()}
    root = f"{kind}://{BUCKET}"
    with (
        open_hub(
            f"sqlite:///{tmp_path / 'a.db'}",
            backup=f"{root}/ex/alice",
            options=opts,
            poll_interval="1s",
        ) as alice,
        open_hub(
            f"sqlite:///{tmp_path / 'b.db'}", sources=[f"{root}/ex/*/*.json"], options=opts
        ) as bob,
    ):
        made = [alice.examples.add(f"learned {i} during the incident", "ok") for i in range(150)]
        with worker(alice):
            wait_for(lambda: alice.examples.count()["backed_up"] >= 10, what="some backups")
            server.stop()  # mid-backup
            wait_for(
                lambda: any(j.attempts >= 2 for j in backup_jobs(alice)),
                timeout=60,
                what="a failed backup attempt",
            )
            server.start()  # back, but empty
            server.make_bucket(BUCKET)
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
