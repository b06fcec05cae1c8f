"""Sharing on both store backends: hub.examples (add/get/ls/rm/nearest, durable, backup job in
the same transaction), loading from local folders, file:// and memory:// with incremental
polls (only new or changed files read), vanished files, newest-wins, garbage files, status,
the [sharing] config and bad input (clear error, nothing changed)."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import learnhub
from conftest import postgres_schema_url, wait_for
from learnhub.config import Config, SharingConfig
from learnhub.errors import ConfigError, InvalidInput
from learnhub.sharing.examples import SUFFIX
from sharing_servers import backup_jobs, worker

MODEL = "hashing"


def sharing(**kw) -> Config:
    kw.setdefault("model", MODEL)
    kw.setdefault("timeout", 10)
    return Config(sharing=SharingConfig(**kw))


@pytest.fixture
def make_hub(store_url: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Open hubs with a [sharing] config: the first on ``store_url``, more on fresh stores
    of the same backend (each user has a store of their own)."""
    opened: list[learnhub.Hub] = []
    extra: list[Iterator[str]] = []

    def make(url: str | None = None, **kw) -> learnhub.Hub:
        if url is None:
            if not opened:
                url = store_url
            elif store_url.startswith("sqlite"):
                url = f"sqlite:///{tmp_path / f'hub-{len(opened)}.db'}"
            else:
                gen = postgres_schema_url()
                extra.append(gen)
                url = next(gen)
        hub = learnhub.open(url, config=sharing(**kw))
        opened.append(hub)
        return hub

    yield make
    for hub in opened:
        hub.close()
    for gen in extra:
        with contextlib.suppress(StopIteration):
            next(gen)


def ids(examples) -> set[str]:
    return {e.id for e in examples}


def write_example(folder: Path, example_id: str, input: str, output: str = "an answer", **kw):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"id": example_id, "input": input, "output": output, "author": "x"}
    doc.update(kw)
    doc.setdefault("created_ns", 1_700_000_000_000_000_000)
    path = folder / f"{example_id}{SUFFIX}"
    path.write_text(json.dumps(doc))
    return path


# --- hub.examples ------------------------------------------------------------------------------


def test_add_get_ls_nearest_rm(make_hub, tmp_path: Path) -> None:
    hub = make_hub(backup=str(tmp_path / "backup"))
    a = hub.examples.add("how do I deploy the web service", "run make deploy", author="alice",
                         tags=["ops", "deploy"])  # fmt: skip
    b = hub.examples.add("where are the database backups kept", "in the backups bucket",
                         author="bob")  # fmt: skip
    c = hub.examples.add("how do I restart the web service", "systemctl restart web",
                         author="alice", tags=["ops"])  # fmt: skip
    assert hub.examples.get(a.id) == a
    assert a.local and a.author == "alice" and a.tags == ("ops", "deploy")
    assert [e.id for e in hub.examples.ls()] == [c.id, b.id, a.id]  # newest first
    assert ids(hub.examples.ls(author="alice")) == {a.id, c.id}
    assert ids(hub.examples.ls(tag="deploy")) == {a.id}
    found = hub.examples.nearest("deploy the web service", k=2)
    assert [e.id for e in found][0] == a.id
    assert len(found) == 2 and found[0].score >= found[1].score
    assert hub.examples.count() == {"total": 3, "local": 3, "backed_up": 0}
    # each add scheduled its backup, in the same transaction
    assert sorted(j.args["id"] for j in backup_jobs(hub)) == sorted([a.id, b.id, c.id])
    assert hub.examples.rm(b.id) is True
    assert hub.examples.rm(b.id) is False
    assert hub.examples.get(b.id) is None
    assert b.id not in ids(hub.examples.nearest("database backups", k=3))


def test_examples_are_durable_and_backed_up_by_the_worker(make_hub, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    hub = make_hub(backup=str(backup))
    e = hub.examples.add("what is the staging url", "https://staging.example")
    url = hub.store.url
    hub.close()
    with learnhub.open(url, config=sharing(backup=str(backup))) as again:
        assert again.examples.get(e.id) == e
        with worker(again):
            wait_for(lambda: (backup / f"{e.id}{SUFFIX}").exists(), what="the backup file")
            wait_for(lambda: again.examples.count()["backed_up"] == 1, what="backed up")
        doc = json.loads((backup / f"{e.id}{SUFFIX}").read_text())
        assert doc["input"] == "what is the staging url" and doc["embedding"]["model"] == MODEL
        assert not [p for p in backup.iterdir() if p.name.startswith(".")]  # no temp files left
        # removing it removes the backup file too
        again.examples.rm(e.id)
        with worker(again):
            wait_for(lambda: not (backup / f"{e.id}{SUFFIX}").exists(), what="file removed")


def test_same_id_again_replaces_with_a_newer_version(make_hub) -> None:
    hub = make_hub()
    first = hub.examples.add("q one", "a one", id="fixed-id")
    second = hub.examples.add("q two", "a two", id="fixed-id")
    assert second.created == first.created and second.updated > first.updated
    assert hub.examples.get("fixed-id").output == "a two"
    assert hub.examples.count()["total"] == 1
    assert not backup_jobs(hub)  # no backup location: no jobs


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("", "out"), {}, "input is empty"),
        (("in", "   "), {}, "output is empty"),
        ((None, "out"), {}, "input must be a string"),
        (("in", 3), {}, "output must be a string"),
        (("in", "out"), {"tags": "ops"}, "list of strings"),
        (("in", "out"), {"tags": ["ok", ""]}, "tag ''"),
        (("in", "out"), {"id": "../etc/passwd"}, "example id"),
        (("in", "out"), {"id": ""}, "example id"),
        (("in", "out"), {"author": "a\nb"}, "author"),
        (("in\x00", "out"), {}, "NUL"),
    ],
)
def test_bad_example_input_changes_nothing(make_hub, tmp_path, args, kwargs, message) -> None:
    hub = make_hub(backup=str(tmp_path / "backup"))
    hub.examples.add("a good one", "fine")
    before = (hub.examples.count(), len(backup_jobs(hub)), hub.embed.count(MODEL))
    with pytest.raises(InvalidInput, match=message):
        hub.examples.add(*args, **kwargs)
    assert (hub.examples.count(), len(backup_jobs(hub)), hub.embed.count(MODEL)) == before


def test_bad_queries(make_hub) -> None:
    hub = make_hub()
    hub.examples.add("something", "else")
    for query, k, message in [("", 3, "non-empty"), ("x", 0, "positive"), ("x", True, "positive"),
                              (None, 3, "non-empty")]:  # fmt: skip
        with pytest.raises(InvalidInput, match=message):
            hub.examples.nearest(query, k=k)
    with pytest.raises(InvalidInput, match="limit"):
        hub.examples.ls(limit=0)
    with pytest.raises(InvalidInput, match="example id"):
        hub.examples.rm("no/slashes")
    assert hub.examples.nearest("nothing like it at all", k=3)  # still serving
    empty = make_hub()
    assert empty.examples.nearest("anything") == [] and empty.examples.ls() == []
    assert empty.sharing.sync().loaded == 0  # no locations: nothing to do


# --- loading from folders ----------------------------------------------------------------------


def test_incremental_poll_reads_only_new_and_changed_files(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    for i in range(20):
        write_example(shared / "team", f"ex{i}", f"question number {i} about topic {i}")
    hub = make_hub(sources=[f"{shared}/*/*.json"])
    first = hub.sharing.sync()
    assert (first.listed, first.read, first.loaded, first.errors) == (20, 20, 20, {})
    assert hub.examples.count()["total"] == 20 and hub.embed.count(MODEL) == 20
    again = hub.sharing.sync()
    assert (again.read, again.loaded, again.dropped) == (0, 0, 0)
    # one changed, one new, one gone: three files matter, two are read
    write_example(shared / "team", "ex3", "a rewritten question", updated_ns=2_000_000_000 * 10**9)
    write_example(shared / "other", "new1", "a brand new question")
    (shared / "team" / f"ex7{SUFFIX}").unlink()
    loc = hub.sharing.sources[0]
    gets = loc.gets
    third = hub.sharing.sync()
    assert (third.read, third.loaded, third.dropped) == (2, 2, 1)
    assert loc.gets - gets == 2
    assert hub.examples.get("ex3").input == "a rewritten question"
    assert hub.examples.get("ex7") is None and hub.examples.get("new1") is not None
    assert "ex7" not in ids(hub.examples.nearest("question number 7 about topic 7", k=20))
    [status] = hub.sharing.status()
    assert status["ok"] and status["examples"] == 20 and status["skipped"] == 0


def test_local_listing_matches_any_depth_and_only_files(tmp_path: Path) -> None:
    """A local source is listed with the stdlib's glob: ``**`` is any depth (none too),
    hidden files match as on object stores, a folder named like a file is not a file."""
    from learnhub.sharing.locations import Location

    root = tmp_path / "shared"
    for rel in ("a.json", "u/b.json", "u/v/w/c.json", ".hidden/d.json", "u/.e.json", "u/f.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    (root / "u" / "folder.json").mkdir()
    found = Location(f"{root}/**/*.json").list()
    names = sorted(os.path.relpath(p, root) for p in found)
    assert names == [".hidden/d.json", "a.json", "u/.e.json", "u/b.json", "u/v/w/c.json"]
    assert sorted(Location(f"file://{root}/*/*.json").list()) == [
        f"{root}/.hidden/d.json", f"{root}/u/.e.json", f"{root}/u/b.json"
    ]  # fmt: skip
    stamp = found[f"{root}/a.json"]
    (root / "a.json").write_text('{"changed": true}')
    assert Location(f"{root}/*.json").list()[f"{root}/a.json"] != stamp


def test_same_id_in_several_locations_newest_wins(make_hub, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_example(one, "dup", "the old question", updated_ns=1_800_000_000 * 10**9)
    write_example(two, "dup", "the new question", updated_ns=1_900_000_000 * 10**9)
    hub = make_hub(sources=[f"{one}/*.json", f"file://{two}/*.json"])
    hub.sharing.sync()
    assert hub.examples.get("dup").input == "the new question"
    assert hub.examples.count()["total"] == 1
    assert ids(hub.examples.nearest("question", k=5)) == {"dup"}  # one example, once
    # the newest file vanishes: the other copy takes over; then none: the example goes
    (two / f"dup{SUFFIX}").unlink()
    report = hub.sharing.sync()
    assert hub.examples.get("dup").input == "the old question" and report.dropped == 0
    (one / f"dup{SUFFIX}").unlink()
    assert hub.sharing.sync().dropped == 1
    assert hub.examples.get("dup") is None and hub.examples.nearest("question") == []


def test_removed_loaded_example_stays_away_until_a_newer_version(make_hub, tmp_path) -> None:
    """rm of a loaded example sticks: the same version touched, rewritten or copied to another
    source is not loaded again; a newer version by its author is, as new learning."""
    one, two = tmp_path / "one", tmp_path / "two"
    path = write_example(one, "bad", "a misleading answer", updated_ns=1_800_000_000 * 10**9)
    write_example(one, "good", "a helpful answer")
    hub = make_hub(sources=[f"{one}/*.json", f"{two}/*.json"])
    assert hub.sharing.sync().loaded == 2
    assert hub.examples.rm("bad") is True
    path.write_text(path.read_text())  # the same content again: a new mtime
    os.utime(path, ns=(2_000_000_000 * 10**9, 2_000_000_000 * 10**9))
    write_example(two, "bad", "a misleading answer", updated_ns=1_700_000_000 * 10**9)  # older
    report = hub.sharing.sync()
    assert report.read == 2 and report.loaded == 0
    assert hub.examples.get("bad") is None
    assert ids(hub.examples.nearest("a misleading answer", k=5)) == {"good"}
    status = hub.sharing.status()
    assert [s["location"] for s in status] == [f"{one}/*.json", f"{two}/*.json"]
    assert all(s["ok"] and s["skipped"] == 0 for s in status)
    # its author fixes it: a newer version is loaded
    write_example(one, "bad", "now a correct answer", updated_ns=1_900_000_000 * 10**9)
    assert hub.sharing.sync().loaded == 1
    assert hub.examples.get("bad").input == "now a correct answer"
    assert hub.examples.count()["total"] == 2


def test_garbage_files_are_skipped_and_reported(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write_example(shared, "good", "a good question")
    (shared / f"bad{SUFFIX}").write_text("{not json")
    (shared / "empty.json").write_bytes(b"")
    (shared / "list.json").write_text("[1, 2]")
    (shared / "latin1.json").write_bytes(b"\xff\xfe")
    write_example(shared, "noout", "a question", output="")
    (shared / f"misnamed{SUFFIX}").write_text(json.dumps({"id": "other", "input": "q",
                                               "output": "a", "created_ns": 1}))  # fmt: skip
    hub = make_hub(sources=[f"{shared}/*.json"])
    report = hub.sharing.sync()
    assert report.loaded == 1 and report.skipped == 6 and report.errors == {}
    [status] = hub.sharing.status()
    assert status["ok"] and status["examples"] == 1 and status["skipped"] == 6
    reasons = " ".join(status["skipped_files"])
    for needle in ("not JSON", "expected a JSON object", "not UTF-8", "output is empty",
                   "named for another id"):  # fmt: skip
        assert needle in reasons
    # unchanged garbage is not read again; fixed, it loads
    assert hub.sharing.sync().read == 0
    (shared / f"bad{SUFFIX}").unlink()
    write_example(shared, "bad", "now it is fine")
    assert hub.sharing.sync().loaded == 1
    assert hub.examples.get("bad").input == "now it is fine"


def test_own_backup_read_back_is_not_a_second_example(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    hub = make_hub(sources=[f"{shared}/*/*.json"], backup=str(shared / "me"))
    e = hub.examples.add("my own question", "my own answer")
    report = hub.sharing.sync()  # backs up, then loads the folder that holds the backup
    assert report.backed_up == 1 and report.loaded == 0
    assert hub.examples.get(e.id).local and hub.examples.count()["total"] == 1
    # its file vanishing does not drop an example learned here
    (shared / "me" / f"{e.id}{SUFFIX}").unlink()
    hub.sharing.sync()
    assert hub.examples.get(e.id) is not None


def test_memory_location(make_hub) -> None:
    root = f"memory://lh-{uuid.uuid4().hex[:8]}"
    alice = make_hub(backup=f"{root}/alice")
    bob = make_hub(sources=[f"{root}/*/*.json"])
    e = alice.examples.add("how do I rotate the api keys", "run keys rotate")
    assert alice.sharing.sync().backed_up == 1
    assert bob.sharing.sync().loaded == 1
    assert bob.examples.nearest("rotate the api keys", k=1)[0].id == e.id


def test_embeddings_in_files_are_used_as_they_are(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    alice = make_hub(backup=str(shared / "alice"))
    e = alice.examples.add("an example with a stored vector", "yes")
    alice.sharing.sync()
    bob = make_hub(sources=[f"{shared}/*/*.json"])
    bob.sharing.sync()
    import numpy as np

    assert np.allclose(bob.embed.get(e.ref, MODEL), alice.embed.get(e.ref, MODEL))
    # a file without an embedding (or of another model) is embedded from its input
    write_example(shared / "carol", "plain", "a plain question", embedding={"model": "other",
                  "dim": 2, "vector": "AAAAAAAAgD8="})  # fmt: skip
    bob.sharing.sync()
    assert bob.embed.get("example/plain", MODEL) is not None


def test_unreachable_folder_is_reported_and_retried(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "later"
    good = tmp_path / "good"
    write_example(good, "g1", "a question that loads")
    hub = make_hub(sources=[f"{shared}/*.json", f"{good}/*.json"], poll_interval="1h")
    report = hub.sharing.sync()  # the hub keeps working
    assert report.loaded == 1 and set(report.errors) == {f"{shared}/*.json"}
    status = {s["location"]: s for s in hub.sharing.status()}
    bad = status[f"{shared}/*.json"]
    assert not bad["ok"] and "not found" in bad["last_error"] and bad["failures"] == 1
    assert bad["next_try"] is not None
    # the scheduled poll waits out the backoff; sync (forced) tries again at once
    assert hub.sharing.sync(force=False).waiting == [f"{shared}/*.json"]
    write_example(shared, "l1", "it exists now")
    assert hub.sharing.sync().loaded == 1
    status = {s["location"]: s for s in hub.sharing.status()}
    assert status[f"{shared}/*.json"]["ok"] and status[f"{shared}/*.json"]["failures"] == 0


def test_unwritable_backup_keeps_the_job_retrying(make_hub, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    hub = make_hub(backup=str(blocker / "backup"), poll_interval="1s")
    e = hub.examples.add("learned while the backup is broken", "kept")
    with worker(hub):
        wait_for(lambda: any(j.attempts >= 2 for j in backup_jobs(hub)), what="retries")
        [status] = hub.sharing.status()
        assert not status["ok"] and status["last_error"]
        assert hub.examples.get(e.id) is not None  # nothing lost, the hub serves
        [job] = backup_jobs(hub)
        assert job.state in ("queued", "running")
        blocker.unlink()  # the location comes back
        wait_for(lambda: hub.examples.count()["backed_up"] == 1, what="the backup")
    assert (blocker / "backup" / f"{e.id}{SUFFIX}").exists()
    assert hub.sharing.status()[0]["ok"]


# --- the [sharing] config ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"sources": "/a/*.json"}, "must be a list of strings"),
        ({"sources": [3]}, "must be a list of strings"),
        ({"sources": [""]}, "empty location"),
        ({"sources": ["ftp://host/*.json"]}, "unknown location scheme 'ftp'"),
        ({"sources": ["/no/glob/here"]}, "is not a glob"),
        ({"sources": ["/a/*.json", "/a/*.json"]}, "twice"),
        ({"sources": ["s3:///*.json"]}, "names no bucket"),
        ({"backup": "/a/*/b"}, "wildcards"),
        ({"backup": "zz://x/y"}, "unknown location scheme"),
        ({"poll_interval": "0s"}, "positive duration"),
        ({"poll_interval": "-5"}, "positive duration"),
        ({"poll_interval": "soon"}, "positive duration"),
        ({"poll_interval": float("inf")}, "positive duration"),
        ({"timeout": 0}, "positive duration"),
        ({"artifacts": "model/*"}, "list of strings"),
        ({"artifacts": [""]}, "empty"),
        ({"options": {"s3://b": "x"}}, "table of tables"),
    ],
)
def test_bad_sharing_config(kw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        SharingConfig(**kw)


def test_sharing_config_from_file_and_environment(tmp_path: Path, monkeypatch) -> None:
    from learnhub import config as config_module

    (tmp_path / "work" / "learnhub.toml").write_text(
        '[sharing]\nsources = ["/mnt/nfs/examples/*.json", "s3://team/examples/**/*.json"]\n'
        'backup = "s3://team/examples/alice/"\npoll_interval = "5m"\n'
        'artifacts = ["model/*"]\n[sharing.options."s3://team"]\nendpoint_url = "http://x"\n'
    )
    cfg = config_module.load().sharing
    assert cfg.sources == ["/mnt/nfs/examples/*.json", "s3://team/examples/**/*.json"]
    assert cfg.poll_interval == 300.0 and cfg.artifacts == ["model/*"]
    assert cfg.options == {"s3://team": {"endpoint_url": "http://x"}}
    monkeypatch.setenv("LEARNHUB_SHARING_POLL_INTERVAL", "90s")
    monkeypatch.setenv("LEARNHUB_SHARING_SOURCES", '["/x/*.json"]')
    cfg = config_module.load().sharing
    assert cfg.poll_interval == 90.0 and cfg.sources == ["/x/*.json"]
    monkeypatch.setenv("LEARNHUB_SHARING_POLL_INTERVAL", "never")
    with pytest.raises(ConfigError, match="LEARNHUB|configuration.*poll_interval"):
        config_module.load()
    monkeypatch.delenv("LEARNHUB_SHARING_POLL_INTERVAL")
    (tmp_path / "work" / "learnhub.toml").write_text('[sharing]\nsources = ["gopher://x/*"]\n')
    with pytest.raises(ConfigError, match=r"learnhub.toml.*unknown location scheme"):
        config_module.load()
    (tmp_path / "work" / "learnhub.toml").write_text("[sharing]\npoll = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'sharing.poll'"):
        config_module.load()


def test_az_without_adlfs_is_a_clear_config_error() -> None:
    import importlib.util

    if importlib.util.find_spec("adlfs") is not None:
        pytest.skip("adlfs is installed")
    with pytest.raises(ConfigError, match="pip install adlfs"):
        SharingConfig(sources=["az://container/examples/*.json"])


def test_hub_starts_with_every_location_down(make_hub, tmp_path: Path) -> None:
    hub = make_hub(
        sources=[f"{tmp_path}/nowhere/*.json", "s3://no-such-bucket-lh/*.json"],
        backup=f"{tmp_path}/elsewhere/x",
        options={"s3://": {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s"}},
        timeout=5,
    )
    e = hub.examples.add("still learning", "yes")  # serving
    report = hub.sharing.sync()
    assert len(report.errors) == 2
    assert hub.examples.get(e.id) is not None
    statuses = {s["location"]: s for s in hub.sharing.status()}
    assert not statuses["s3://no-such-bucket-lh/*.json"]["ok"]
    assert os.path.exists(f"{tmp_path}/elsewhere/x/{e.id}{SUFFIX}")  # the backup made its folder


# --- artifacts by key pattern ------------------------------------------------------------------


def test_artifacts_matching_patterns_are_backed_up_and_loaded(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    alice = make_hub(backup=str(shared / "alice"), artifacts=["model/*"])
    v1 = alice.learning.store("model/churn", {"weights.bin": b"\x00\x01" * 50}, 0.25,
                              {"mode": "fast"})  # fmt: skip
    alice.learning.store("notes/private", {"n.txt": b"stays here"}, 1.0)
    report = alice.sharing.sync()
    assert report.backed_up == 1 and report.errors == {}
    files = sorted(p.name for p in (shared / "alice").iterdir())
    assert files == [f"model%2Fchurn@{v1}.artifact.json"]
    assert alice.sharing.sync().backed_up == 0  # a version is written once

    bob = make_hub(sources=[f"{shared}/*/*.json"], artifacts=["model/*"])
    assert bob.sharing.sync().loaded == 1
    got = bob.learning.lookup("model/churn")
    assert got is not None and got.version == v1 and got.files == {"weights.bin": b"\x00\x01" * 50}
    assert got.origin == alice.node_id and got.attrs == {"mode": "fast"}
    assert bob.learning.lookup("notes/private") is None
    assert bob.sharing.sync().read == 0

    # a tampered file is skipped and reported; a hub without the pattern ignores artifacts
    path = shared / "alice" / files[0]
    doc = json.loads(path.read_text())
    doc["metric"], doc["attrs"] = 0.0, {"mode": "slow"}
    (shared / "alice" / f"model%2Fother@{doc['version']}.artifact.json").write_text(
        json.dumps(doc | {"key": "model/other"})
    )
    report = bob.sharing.sync()
    assert report.skipped == 1 and bob.learning.lookup("model/other") is None
    [status] = bob.sharing.status()
    assert "does not match version" in " ".join(status["skipped_files"])
    carol = make_hub(sources=[f"{shared}/*/*.json"])
    report = carol.sharing.sync()
    assert report.loaded == 0 and carol.learning.lookup("model/churn") is None


def test_demo_scenario_three_users(tmp_path: Path) -> None:
    from rich.console import Console

    from learnhub.sharing.scenario import three_users

    console = Console(record=True, width=200)
    counts = three_users(console, tmp_path / "demo")
    assert counts == {"alice": 3, "bob": 3, "carol": 3}
    text = console.export_text()
    assert "carol's backup: down" in text
    assert "alice nearest(): bob's yes, carol's not yet" in text
    assert "alice nearest(): bob's yes, carol's yes" in text


def test_worker_loads_at_start_then_polls(make_hub, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write_example(shared / "team", "early", "there before the hub started")
    hub = make_hub(sources=[f"{shared}/*/*.json"], poll_interval="1s")
    with worker(hub):
        wait_for(lambda: hub.examples.get("early"), what="the load at start")
        write_example(shared / "team", "later", "written while the hub runs")
        wait_for(lambda: hub.examples.get("later"), what="a periodic poll")
        (shared / "team" / f"early{SUFFIX}").unlink()
        wait_for(lambda: hub.examples.get("early") is None, what="the vanished file dropped")
    [status] = hub.sharing.status()
    assert status["ok"] and status["examples"] == 1
