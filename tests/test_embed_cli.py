"""``learnhub embed add|search|backfill``: in process through click's CliRunner (fast), and
as real processes for the one-line errors, quiet pipes and the progress bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import learnhub
from learnhub.cli import cli
from learnhub.embed import Embeddings, available, default_name

TIMEOUT = 120
DOCS = {
    "retro/1": "the deploy pipeline was slow and flaky all sprint",
    "retro/2": "standups ran long because we discussed details",
    "retro/3": "pairing on the database migration went really well",
    "notes/1": "the deploy pipeline needs caching to be faster",
}


def invoke(*args: str, db: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["embed", *args, "--db", db], input=stdin)


def ok(*args: str, db: str, stdin: str | None = None) -> str:
    result = invoke(*args, db=db, stdin=stdin)
    assert result.exit_code == 0, f"embed {' '.join(args)}: {result.output}{result.exception!r}"
    return result.stdout


def ok_json(*args: str, db: str, stdin: str | None = None) -> dict:
    return json.loads(ok(*args, "--json", db=db, stdin=stdin))


def fails(*args: str, db: str) -> str:
    """A command that must fail with one 'error: ' line on stderr; that line."""
    result = invoke(*args, db=db)
    assert result.exit_code != 0, result.stdout
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def run(*args: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "learnhub", "embed", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def write_jsonl(path: Path, items: dict[str, str], blank_lines: bool = False) -> Path:
    lines = [json.dumps({"ref": ref, "text": text}) + "\n" for ref, text in items.items()]
    if blank_lines:
        lines.insert(1, "\n")
        lines.append("   \n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def corpus(n: int, suffix: str = "") -> dict[str, str]:
    topics = ["deploys", "standups", "testing", "on-call", "planning", "reviews", "pairing"]
    return {
        f"retro/{i:03d}": f"discussion {i} about {topics[i % len(topics)]} and item {i}{suffix}"
        for i in range(n)
    }


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


def test_add_from_text_file_and_stdin(db: str, tmp_path: Path) -> None:
    first = ok_json("add", "retro/1", DOCS["retro/1"], "--model", "hashing", db=db)
    assert first == {"ref": "retro/1", "model": "hashing", "embedded": True, "count": 1}
    again = ok_json("add", "retro/1", DOCS["retro/1"], "--model", "hashing", db=db)
    assert again == {**first, "embedded": False}
    forced = ok_json("add", "retro/1", DOCS["retro/1"], "--model", "hashing", "--force", db=db)
    assert forced["embedded"] is True and forced["count"] == 1
    changed = ok_json("add", "retro/1", DOCS["retro/2"], "--model", "hashing", db=db)
    assert changed["embedded"] is True

    text_file = tmp_path / "doc.txt"
    text_file.write_text(DOCS["retro/3"], encoding="utf-8")
    from_file = ok_json("add", "retro/3", "--file", str(text_file), "--model", "hashing", db=db)
    assert from_file == {"ref": "retro/3", "model": "hashing", "embedded": True, "count": 2}
    from_stdin = ok_json(
        "add", "retro/4", "-f", "-", "--model", "hashing", db=db, stdin=DOCS["notes/1"]
    )
    assert from_stdin["embedded"] is True and from_stdin["count"] == 3

    human = ok("add", "retro/3", "--file", str(text_file), "--model", "hashing", db=db)
    assert human.strip() == "'retro/3': unchanged (already embedded) with hashing"
    with learnhub.open(db) as hub:
        assert hub.embed.count("hashing") == 3
        # what was stored is the text of the file and of stdin
        assert hub.embed.search(DOCS["retro/3"], k=1, model="hashing")[0][0] == "retro/3"
        assert hub.embed.search(DOCS["notes/1"], k=1, model="hashing")[0][0] == "retro/4"


def test_search_k_filter_exclude_and_output(db: str) -> None:
    for ref, text in DOCS.items():
        ok("add", ref, text, "--model", "hashing", db=db)
    query = "deploy pipeline slow"
    found = ok_json("search", query, "--model", "hashing", db=db)
    assert set(found) == {"model", "results"} and found["model"] == "hashing"
    results = found["results"]
    assert [set(r) for r in results] == [{"ref", "score"}] * len(DOCS)
    assert results[0]["ref"] == "retro/1" and results[1]["ref"] == "notes/1"
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0 + 1e-6
    with learnhub.open(db) as hub:
        expected = hub.embed.search(query, k=10, model="hashing")
    assert [(r["ref"], pytest.approx(r["score"])) for r in results] == expected

    top1 = ok_json("search", query, "-k", "1", "--model", "hashing", db=db)["results"]
    assert [r["ref"] for r in top1] == ["retro/1"]
    only_notes = ok_json("search", query, "--filter", "notes/", "--model", "hashing", db=db)
    assert [r["ref"] for r in only_notes["results"]] == ["notes/1"]
    args = ("search", query, "--exclude", "retro/1", "-x", "notes/1", "--model", "hashing")
    rest = ok_json(*args, db=db)["results"]
    assert {r["ref"] for r in rest} == {"retro/2", "retro/3"}

    table = ok("search", query, "-k", "2", "--model", "hashing", db=db)
    assert "retro/1" in table and "notes/1" in table and "retro/2" not in table
    assert "model hashing" in table
    empty_model = ok("search", query, "--model", "hashing", "--filter", "nothing/", db=db)
    assert empty_model.strip() == "no embeddings found (model hashing)"


def test_backfill_twice_batches_and_counts(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = corpus(150)
    path = write_jsonl(tmp_path / "discussions.jsonl", items, blank_lines=True)
    batches: list[int] = []
    put_many = Embeddings.put_many

    def counting(self: Embeddings, batch: dict, *args: object, **kwargs: object) -> int:
        batches.append(len(batch))
        return put_many(self, batch, *args, **kwargs)

    monkeypatch.setattr(Embeddings, "put_many", counting)
    first = ok_json("backfill", str(path), "--model", "hashing", db=store_url)
    assert first == {
        "file": str(path),
        "model": "hashing",
        "records": 150,
        "embedded": 150,
        "unchanged": 0,
        "count": 150,
    }
    assert batches == [64, 64, 22]
    second = ok_json("backfill", str(path), "--model", "hashing", db=store_url)
    assert second == {**first, "embedded": 0, "unchanged": 150}

    items["retro/007"] = "a completely new text about flaky integration tests"
    items["retro/999"] = "one more discussion, new in the file"
    write_jsonl(path, items)
    batches.clear()
    third = ok("backfill", str(path), "--model", "hashing", "--batch-size", "100", db=store_url)
    assert batches == [100, 51]
    assert third.strip() == (
        f"151 texts from {path}: 2 embedded, 149 unchanged (model hashing; 151 stored)"
    )
    forced = ok_json("backfill", str(path), "--model", "hashing", "--force", db=store_url)
    assert forced["embedded"] == 151 and forced["unchanged"] == 0
    with learnhub.open(store_url) as hub:
        assert hub.embed.count("hashing") == 151
        hit = hub.embed.search("flaky integration tests", k=1, model="hashing")
        assert hit[0][0] == "retro/007"


def test_backfill_same_ref_twice_keeps_the_last_text(db: str, tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text(
        json.dumps({"ref": "a", "text": "first version of the text"})
        + "\n"
        + json.dumps({"ref": "a", "text": "second words entirely different"})
        + "\n",
        encoding="utf-8",
    )
    done = ok_json("backfill", str(path), "--model", "hashing", db=db)
    assert done["records"] == 2 and done["embedded"] == 2 and done["count"] == 1
    again = ok_json("add", "a", "second words entirely different", "--model", "hashing", db=db)
    assert again["embedded"] is False


BAD_LINES = [
    ("not json at all", "{path}:3: not valid JSON (Expecting value at column 1)"),
    ('["ref", "text"]', '{path}:3: expected an object {{"ref": ..., "text": ...}}, got list'),
    ('{"ref": "x"}', "{path}:3: missing 'text'"),
    ('{"body": "x"}', "{path}:3: missing 'ref' and 'text'"),
    ('{"ref": "", "text": "words"}', "{path}:3: 'ref' must be a non-empty string, got ''"),
    ('{"ref": 7, "text": "words"}', "{path}:3: 'ref' must be a non-empty string, got 7"),
    ('{"ref": "x", "text": 5}', "{path}:3: 'text' of 'x' is int, not a string"),
    ('{"ref": "x", "text": "  "}', "{path}:3: the text of 'x' is empty"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_backfill_bad_line_names_it_and_embeds_nothing(
    db: str, tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    good = [json.dumps({"ref": f"ok/{i}", "text": f"fine text {i}"}) for i in range(2)]
    path.write_text("\n".join([*good, line, good[0]]) + "\n", encoding="utf-8")
    error = fails("backfill", str(path), "--model", "hashing", db=db)
    assert error == "error: " + message.format(path=path)
    with learnhub.open(db) as hub:
        assert hub.embed.count("hashing") == 0  # the file is checked before anything is embedded


def test_bad_inputs_fail_with_one_line(db: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    missing = tmp_path / "missing.jsonl"
    h = ("--model", "hashing")

    assert "missing the text" in fails("add", "r", *h, db=db)
    assert "not both" in fails("add", "r", "words", "--file", str(empty), *h, db=db)
    assert fails("add", "r", "", *h, db=db) == "error: TEXT is empty; pass some words to embed"
    assert "TEXT is empty" in fails("add", "r", " \t ", *h, db=db)
    assert fails("add", "r", "--file", str(missing), *h, db=db) == f"error: {missing}: no such file"
    assert fails("add", "r", "--file", str(empty), *h, db=db) == (
        f"error: {empty}: is empty; there is no text to embed"
    )
    assert fails("add", "r", "--file", str(tmp_path), *h, db=db) == (
        f"error: {tmp_path}: is a directory"
    )
    assert "not UTF-8" in fails("add", "r", "--file", str(latin), *h, db=db)
    assert "unknown embedder 'nope'" in fails("add", "r", "words", "--model", "nope", db=db)

    assert "TEXT is empty" in fails("search", "  ", *h, db=db)
    assert "-k" in fails("search", "words", "-k", "0", *h, db=db)
    assert "unknown embedder 'nope'" in fails("search", "words", "--model", "nope", db=db)

    assert fails("backfill", str(missing), *h, db=db) == f"error: {missing}: no such file"
    assert fails("backfill", str(tmp_path), *h, db=db) == f"error: {tmp_path}: is a directory"
    assert "not UTF-8" in fails("backfill", str(latin), *h, db=db)
    assert "--batch-size" in fails("backfill", str(empty), "--batch-size", "0", *h, db=db)
    with learnhub.open(db) as hub:
        assert hub.embed.count("hashing") == 0


def test_real_process_quiet_pipe_and_one_line_error(db: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", DOCS)
    done = run("backfill", str(path), "--model", "hashing", "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    assert json.loads(done.stdout)["embedded"] == len(DOCS)

    path.write_text('{"ref": "a", "text": "x"}\n{"ref": "b", "text": ""}\n', encoding="utf-8")
    bad = run("backfill", str(path), "--model", "hashing", db=db)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"error: {path}:2: the text of 'b' is empty"]


def test_progress_bar_on_a_terminal(db: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", corpus(300))
    main, tty = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "learnhub", "embed", "backfill", str(path)]
            + ["--model", "hashing", "--json", "--db", db],
            stdout=subprocess.PIPE,
            stderr=tty,
            timeout=TIMEOUT,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(tty)
        tty = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if tty != -1:
            os.close(tty)
        os.close(main)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["embedded"] == 300
    screen = shown.decode(errors="replace")
    assert "embedding big.jsonl" in screen
    assert "/300" in screen


@pytest.mark.skipif("minilm" not in available(), reason="the embed extra is not installed")
def test_default_model_is_minilm_and_finds_paraphrases(db: str) -> None:
    assert default_name() == "minilm"
    texts = {
        "retro/a": "Our releases kept breaking because nobody ran the integration tests.",
        "retro/b": "The team lunch on Friday was a lot of fun.",
        "retro/c": "Meetings start late and run over their time slot.",
    }
    for ref, text in texts.items():
        assert ok_json("add", ref, text, db=db)["model"] == "minilm"
    found = ok_json("search", "deployments fail since the test suite is skipped", db=db)
    assert found["model"] == "minilm"
    assert [r["ref"] for r in found["results"]][0] == "retro/a"
    with learnhub.open(db) as hub:
        assert hub.embed.count("minilm") == 3
        assert hub.embed.count("hashing") == 0
