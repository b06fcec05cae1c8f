"""The job commands as real processes: ``learnhub worker``, ``learnhub jobs ...``, and
``learnhub serve --workers N --app ...``, with the tasks of tests/jobs_app.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import learnhub
from conftest import can_connect, wait_for
from learnhub.jobs import Job

TESTS_DIR = Path(__file__).resolve().parent
TIMEOUT = 60
APP = "jobs_app:hub"
MISSING_ID = 987_654_321


def app_env(store_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a command: jobs_app importable, the store in LEARNHUB_DB."""
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR) + (os.pathsep + path if path else "")}
    if store_url:
        env["LEARNHUB_DB"] = store_url
    return {**env, **extra}


def learnhub_cmd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )


def ok(*args: str, env: dict[str, str]) -> str:
    result = learnhub_cmd(*args, env=env)
    assert result.returncode == 0, f"learnhub {' '.join(args)}: {result.stderr}"
    return result.stdout


def fails(*args: str, env: dict[str, str]) -> str:
    """Run a command that must fail with exactly one clear line on stderr; return that line."""
    result = learnhub_cmd(*args, env=env)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def burst(store_url: str, *args: str, **extra: str) -> str:
    """Run a burst worker to the end; it must exit 0."""
    return ok("worker", "--app", APP, "--burst", *args, env=app_env(store_url, **extra))


def diamond(hub: learnhub.Hub) -> tuple[str, dict[str, int]]:
    """start → (left, right) → join; returns the flow id and the job ids by task name."""
    flow = hub.jobs.flow("diamond")
    start = flow.add("diamond.start")
    left = flow.add("diamond.left", after=[start])
    right = flow.add("diamond.right", after=[start])
    join = flow.add("diamond.join", after=[left, right])
    flow.submit()
    assert flow.id is not None
    ids = {n.spec.task: n.id for n in (start, left, right, join)}
    return flow.id, ids  # type: ignore[return-value]


def get(hub: learnhub.Hub, job_id: int) -> Job:
    job = hub.jobs.get(job_id)
    assert job is not None
    return job


# --- learnhub worker ---------------------------------------------------------------------


def test_burst_worker_runs_the_jobs_then_exits(store_url: str) -> None:
    with learnhub.open(store_url) as hub:
        adds = [hub.jobs.enqueue("add", {"a": i, "b": 1000}) for i in range(20)]
        flow_id, ids = diamond(hub)
        boom = hub.jobs.enqueue("explode", {"why": "on purpose"})
        elsewhere = hub.jobs.enqueue("add", {"a": 1, "b": 2}, queue="elsewhere")

        burst(store_url, "--queue", "default", "--concurrency", "3")

        for i, job in enumerate(adds):
            done = get(hub, job.id)
            assert (done.state, done.result) == ("succeeded", i + 1000)
        for task, job_id in ids.items():
            done = get(hub, job_id)
            assert (done.state, done.result) == ("succeeded", task.split(".")[1])
        join, left, right = (get(hub, ids[f"diamond.{t}"]) for t in ("join", "left", "right"))
        assert join.started_at >= max(left.finished_at, right.finished_at)  # type: ignore[operator]
        failed = get(hub, boom.id)
        assert failed.state == "failed" and "PermanentError: on purpose" in (failed.error or "")
        assert failed.attempts == 1
        # --queue default: the other queue's job was left alone.
        assert get(hub, elsewhere.id).state == "queued"

        burst(store_url, "--queue", "elsewhere")
        assert (get(hub, elsewhere.id).state, get(hub, elsewhere.id).result) == ("succeeded", 3)


def test_worker_app_from_the_environment_and_from_the_config_file(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    with learnhub.open(db) as hub:
        first = hub.jobs.enqueue("add", {"a": 1, "b": 1})
        ok("worker", "--burst", env=app_env(db, LEARNHUB_JOBS_APP=APP))
        assert get(hub, first.id).result == 2

        Path("learnhub.toml").write_text(f'[jobs]\napp = "{APP}"\n')
        second = hub.jobs.enqueue("add", {"a": 2, "b": 2})
        ok("worker", "--burst", env=app_env(db))
        assert get(hub, second.id).result == 4


# --- learnhub jobs list / show / stats -----------------------------------------------------


def test_list_show_and_stats(store_url: str) -> None:
    env = app_env(store_url)
    with learnhub.open(store_url) as hub:
        flow_id, ids = diamond(hub)
        boom = hub.jobs.enqueue("explode")
        burst(store_url)
        waiting = hub.jobs.enqueue("add", {"a": 1, "b": 2}, queue="later")

    listed = json.loads(ok("jobs", "list", "--json", env=env))
    assert [j["id"] for j in listed] == sorted([*ids.values(), boom.id, waiting.id], reverse=True)
    by_id = {j["id"]: j for j in listed}
    assert by_id[ids["diamond.join"]]["state"] == "succeeded"
    assert by_id[ids["diamond.join"]]["flow_id"] == flow_id
    assert by_id[boom.id]["state"] == "failed" and by_id[boom.id]["task"] == "explode"
    assert by_id[waiting.id]["state"] == "queued" and by_id[waiting.id]["args"] == {"a": 1, "b": 2}

    failed = json.loads(ok("jobs", "list", "--state", "failed", "--json", env=env))
    assert [j["id"] for j in failed] == [boom.id]
    flow = json.loads(ok("jobs", "list", "--flow", flow_id, "--json", env=env))
    assert sorted(j["id"] for j in flow) == sorted(ids.values())
    table = ok("jobs", "list", "--queue", "later", env=env)
    assert "later" in table and str(waiting.id) in table and "diamond" not in table

    # show draws the diamond: start, its two branches, and the join under one branch, with
    # the other branch named beside it.
    shown = ok("jobs", "show", str(ids["diamond.join"]), env=env)
    assert f"flow {flow_id}" in shown
    lines = shown.splitlines()

    def line_of(task: str) -> int:
        found = [i for i, line in enumerate(lines) if f"#{ids[task]} {task} " in line]
        assert len(found) == 1, f"{task} drawn {len(found)} times:\n{shown}"
        return found[0]

    start, left, right, join = (line_of(f"diamond.{t}") for t in ("start", "left", "right", "join"))
    assert start < min(left, right, join)
    assert f"also after #{ids['diamond.right']}" in lines[join]
    assert "◀" in lines[join]  # the job asked for is marked
    indent = {
        t: len(lines[i]) - len(lines[i].lstrip("│├└─ "))
        for t, i in (("start", start), ("left", left), ("join", join))
    }
    assert indent["start"] < indent["left"] < indent["join"], shown

    detail = json.loads(ok("jobs", "show", str(ids["diamond.join"]), "--json", env=env))
    assert detail["task"] == "diamond.join" and detail["result"] == "join"
    assert sorted((p, c) for p, c, _ in detail["flow_edges"]) == sorted(
        [
            (ids["diamond.start"], ids["diamond.left"]),
            (ids["diamond.start"], ids["diamond.right"]),
            (ids["diamond.left"], ids["diamond.join"]),
            (ids["diamond.right"], ids["diamond.join"]),
        ]
    )
    failed_detail = ok("jobs", "show", str(boom.id), env=env)
    assert "PermanentError" in failed_detail and "explode" in failed_detail

    stats = json.loads(ok("jobs", "stats", "--json", env=env))
    assert stats["default"]["succeeded"] == 4
    assert stats["default"]["failed"] == 1
    assert stats["later"]["queued"] == 1
    assert stats["later"]["succeeded"] == 0
    table = ok("jobs", "stats", env=env)
    assert "default" in table and "later" in table


# --- learnhub jobs cancel / retry ----------------------------------------------------------


def test_cancel_a_waiting_job_then_retry_it(store_url: str) -> None:
    env = app_env(store_url)
    with learnhub.open(store_url) as hub:
        parent = hub.jobs.enqueue("add", {"a": 1, "b": 1})
        child = hub.jobs.enqueue("add", {"a": 2, "b": 2}, after=[parent])
        grandchild = hub.jobs.enqueue("add", {"a": 3, "b": 3}, after=[child])
        assert get(hub, child.id).state == "waiting"

        assert f"cancelled job {child.id}" in ok("jobs", "cancel", str(child.id), env=env)
        assert get(hub, child.id).state == "cancelled"
        assert get(hub, grandchild.id).state == "cancelled"  # what depends on it, too
        assert get(hub, parent.id).state == "queued"  # what it depends on, not
        assert "already finished" in fails("jobs", "cancel", str(child.id), env=env)

        assert "queued again" in ok("jobs", "retry", str(child.id), env=env)
        assert get(hub, child.id).state == "waiting"  # its parent has still not run
        assert get(hub, grandchild.id).state == "waiting"
        assert "has not failed" in fails("jobs", "retry", str(child.id), env=env)

        burst(store_url)
        assert [get(hub, j.id).result for j in (parent, child, grandchild)] == [2, 4, 6]
        assert {get(hub, j.id).state for j in (parent, child, grandchild)} == {"succeeded"}
        assert "already finished" in fails("jobs", "cancel", str(parent.id), env=env)


def test_retry_a_failed_job(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = app_env(db)
    with learnhub.open(db) as hub:
        boom = hub.jobs.enqueue("explode")
        after = hub.jobs.enqueue("add", {"a": 1, "b": 1}, after=[boom])
        burst(db)
        assert get(hub, boom.id).state == "failed"
        assert get(hub, after.id).state == "cancelled"
        ok("jobs", "retry", str(boom.id), env=env)
        assert (get(hub, boom.id).state, get(hub, boom.id).attempts) == ("queued", 0)
        assert get(hub, after.id).state == "waiting"  # its failure's cancel is undone


# --- errors --------------------------------------------------------------------------------


def test_unknown_job_id(tmp_path: Path) -> None:
    env = app_env(f"sqlite:///{tmp_path / 'jobs.db'}")
    for command in ("show", "cancel", "retry"):
        line = fails("jobs", command, str(MISSING_ID), env=env)
        assert f"no job {MISSING_ID}" in line, (command, line)
    assert "not a valid integer" in fails("jobs", "show", "seven", env=env)
    assert "'nope'" in fails("jobs", "list", "--state", "nope", env=env)


def test_bad_app(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = app_env(db)
    line = fails("worker", "--app", "nosuchmodule:hub", "--burst", env=env)
    assert "cannot import 'nosuchmodule'" in line
    line = fails("worker", "--app", "jobs_app:notahub", "--burst", env=env)
    assert "jobs_app.notahub is str, not a Hub" in line
    line = fails("worker", "--app", "jobs_app:nosuchattr", "--burst", env=env)
    assert "jobs_app.nosuchattr" in line and "not a Hub" in line
    line = fails("worker", "--app", "jobs_app", "--burst", env=env)
    assert "package.module:attribute" in line
    line = fails("worker", "--db", db, "--app", APP, "--burst", env=env)
    assert "--db and --app" in line
    line = fails("serve", "--db", db, "--app", APP, "--socket", str(tmp_path / "s"), env=env)
    assert "--db and --app" in line
    # The app's own store is wrong: the import fails with the store's error, on one line.
    line = fails("worker", "--app", APP, "--burst", env=app_env("mysql://x"))
    assert "unknown store URL scheme 'mysql'" in line
    line = fails("worker", "--burst", env=app_env(db, LEARNHUB_JOBS_APP="nosuchmodule:hub"))
    assert "nosuchmodule" in line


# --- learnhub serve --workers --app --------------------------------------------------------


def test_serve_runs_the_apps_jobs(store_url: str, sock_dir: Path, tmp_path: Path) -> None:
    socket_path = sock_dir / "hub.sock"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "learnhub",
                "serve",
                "--workers",
                "2",
                "--app",
                APP,
                "--socket",
                str(socket_path),
            ],
            env=app_env(store_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()}"
            return can_connect(socket_path)

        wait_for(up, timeout=60, what="learnhub serve to listen")
        with learnhub.open(store_url) as hub:
            jobs = [hub.jobs.enqueue("add", {"a": i, "b": i}) for i in range(3)]
            flow_id, ids = diamond(hub)
            for job in jobs:
                done = hub.jobs.wait(job.id, timeout=60)
                assert (done.state, done.result) == ("succeeded", 2 * job.args["a"])
                assert done.worker_id is not None
                assert done.worker_id.split(":")[-2] == str(proc.pid)  # run by serve itself
            join = hub.jobs.wait(ids["diamond.join"], timeout=60)
            assert (join.state, join.result) == ("succeeded", "join")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
        assert not socket_path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
