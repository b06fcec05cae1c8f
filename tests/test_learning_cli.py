"""The learning-data CLI around combinations: lookup --local, store --base, combinations."""

from __future__ import annotations

import json
from pathlib import Path

import learnhub
from test_daemon import fails, ok


def test_store_with_a_stale_base_reports_the_combination(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    for name, text in (("a", "first"), ("b", "second run"), ("c", "third")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pairs.train").write_text(text)
    first = json.loads(
        ok("store", "--db", db, "k", str(tmp_path / "a/pairs.train"), "-m", "0.5", "--json")
    )
    token = json.loads(ok("lookup", "--db", db, "k", "--local", "--json"))["version"]
    assert token == first["version"]
    ok("store", "--db", db, "k", str(tmp_path / "b/pairs.train"), "-m", "0.2", "--base", token)
    text = ok(
        "store", "--db", db, "k", str(tmp_path / "c/pairs.train"), "-m", "0.3", "--base", token
    )
    flat = text.replace("\n", "")
    assert "the key had moved on since" in flat and "best combined current" in flat
    combos = json.loads(ok("combinations", "--db", db, "k", "--json"))
    assert len(combos) == 1 and combos[0]["policy"] == "best" and combos[0]["base"] == token
    with learnhub.open(db) as hub:
        current = hub.learning.lookup("k", local=True)
        assert combos[0]["result"] == current.version and current.metric == 0.2
        assert len(hub.learning.versions("k")) == 3
    assert "best" in ok("combinations", "--db", db, "k")


def test_lookup_local_miss_and_a_bad_base(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    assert "no learning data for 'nothing'" in fails("lookup", "--db", db, "nothing", "--local")
    f = tmp_path / "f.bin"
    f.write_bytes(b"x")
    line = fails("store", "--db", db, "k", str(f), "-m", "1", "--base", "0" * 32)
    assert "is not a version of 'k'" in line
    assert json.loads(ok("combinations", "--db", db, "k", "--json")) == []
