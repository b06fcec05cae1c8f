"""hub.learning: store, lookup, versions, and the inputs it refuses. Both backends."""

from __future__ import annotations

import math

import pytest

from learnhub.errors import InvalidInput


def test_store_returns_a_content_version_and_lookup_finds_it(hub):
    v = hub.learning.store("prog", {"a.net": b"\x00\x01", "a.train": b"1 2"}, 0.5, {"mode": "x"})
    art = hub.learning.lookup("prog")
    assert art.version == v
    assert art.files == {"a.net": b"\x00\x01", "a.train": b"1 2"}
    assert art.metric == 0.5 and art.attrs == {"mode": "x"}
    assert art.origin == hub.node_id
    assert art.updated.tzinfo is not None
    assert art.sizes == {"a.net": 2, "a.train": 3}


def test_same_content_is_the_same_version_and_stored_once(hub):
    v1 = hub.learning.store("k", {"f": b"same"}, 1.0, {"a": 1})
    v2 = hub.learning.store("k", {"f": b"same"}, 1.0, {"a": 1})
    assert v1 == v2
    assert len(hub.learning.versions("k")) == 1


def test_version_depends_on_files_names_and_attrs(hub):
    base = hub.learning.store("k", {"f": b"x"}, 1.0, {"a": 1})
    assert hub.learning.store("k", {"f": b"y"}, 1.0, {"a": 1}) != base
    assert hub.learning.store("k", {"g": b"x"}, 1.0, {"a": 1}) != base
    assert hub.learning.store("k", {"f": b"x"}, 1.0, {"a": 2}) != base


def test_lookup_returns_the_lowest_metric(hub):
    hub.learning.store("k", {"f": b"1"}, 0.9)
    best = hub.learning.store("k", {"f": b"2"}, 0.1)
    hub.learning.store("k", {"f": b"3"}, 0.5)
    assert hub.learning.lookup("k").version == best


def test_ties_go_to_the_newest(hub):
    hub.learning.store("k", {"f": b"old"}, 0.5)
    newest = hub.learning.store("k", {"f": b"new"}, 0.5)
    assert hub.learning.lookup("k").version == newest


def test_where_selects_by_attributes_and_matches_wire_text(hub):
    fast = hub.learning.store("k", {"f": b"1"}, 0.2, {"mode": "fast", "period": 10, "on": True})
    slow = hub.learning.store("k", {"f": b"2"}, 0.9, {"mode": "slow", "period": 20, "on": False})
    assert hub.learning.lookup("k", {"mode": "slow"}).version == slow
    assert hub.learning.lookup("k", {"period": 20}).version == slow
    assert hub.learning.lookup("k", {"period": "10"}).version == fast  # as sent over RESP
    assert hub.learning.lookup("k", {"on": "false"}).version == slow
    assert hub.learning.lookup("k", {"mode": "none"}) is None


def test_unknown_where_field_is_an_error_naming_it(hub):
    hub.learning.store("k", {"f": b"1"}, 0.2, {"mode": "fast"})
    with pytest.raises(InvalidInput, match="unknown attribute 'colour'.*mode"):
        hub.learning.lookup("k", {"colour": "red"})


def test_lookup_of_an_unknown_key_is_none(hub):
    assert hub.learning.lookup("nothing") is None
    assert hub.learning.lookup("nothing", {"any": "thing"}) is None
    assert hub.learning.versions("nothing") == []


def test_history_is_kept_newest_first_with_base(hub):
    v1 = hub.learning.store("k", {"f": b"1"}, 0.5)
    v2 = hub.learning.store("k", {"f": b"2"}, 0.7, base=v1)
    history = hub.learning.versions("k")
    assert [v.version for v in history] == [v2, v1]
    assert history[0].base == v1
    assert hub.learning.get("k", v1).files == {"f": b"1"}
    assert hub.learning.get("k", "nope") is None


def test_versions_share_file_bytes(hub):
    big = b"z" * 10_000
    hub.learning.store("k", {"net": big, "train": b"1"}, 0.5)
    hub.learning.store("k", {"net": big, "train": b"2"}, 0.4)
    with hub.store.transaction(readonly=True) as tx:
        row = tx.conn.execute("SELECT count(*) AS n FROM blobs").fetchone()
    assert dict(row)["n"] == 3


def test_keys_and_counts(hub):
    hub.learning.store("a/1", {"f": b"1"}, 0.5)
    hub.learning.store("a/1", {"f": b"2"}, 0.25)
    hub.learning.store("a_2", {"f": b"1"}, 0.5)
    hub.learning.store("b", {"f": b"1"}, 0.5)
    assert [k["key"] for k in hub.learning.list()] == ["a/1", "a_2", "b"]
    assert [k["key"] for k in hub.learning.list("a/")] == ["a/1"]  # '_' is not a wildcard
    assert hub.learning.list("a/")[0]["best_metric"] == 0.25
    assert hub.learning.counts() == {"keys": 3, "versions": 4}


def test_zero_byte_file(hub):
    hub.learning.store("k", {"empty": b""}, 0.5)
    assert hub.learning.lookup("k").files == {"empty": b""}


def test_100_mb_file_round_trips(hub):
    big = bytes(range(256)) * (100 * 1024 * 1024 // 256)
    version = hub.learning.store("big", {"weights.bin": big}, 0.1)
    art = hub.learning.lookup("big")
    assert art.version == version
    assert art.files["weights.bin"] == big


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"files": {}}, "at least one file"),
        ({"metric": "abc"}, "metric must be a number"),
        ({"metric": math.nan}, "finite"),
        ({"metric": math.inf}, "finite"),
        ({"metric": True}, "metric must be a number"),
        ({"key": ""}, "non-empty"),
        ({"key": "a\nb"}, "control characters"),
        ({"key": "k" * 2000}, "limit is 1024"),
        ({"files": {"../x": b""}}, "slashes"),
        ({"files": {"..": b""}}, "not a usable file name"),
        ({"files": {"f": "text"}}, "must be bytes"),
        ({"attrs": {"a": [1]}}, "string, number or boolean"),
        ({"attrs": {"a": math.nan}}, "finite"),
        ({"base": "not-a-version"}, "is not a version of"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(hub, kwargs, message):
    args = {"key": "k", "files": {"f": b"1"}, "metric": 0.5, "attrs": None, "base": None}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        hub.learning.store(**args)
    assert hub.learning.counts() == {"keys": 0, "versions": 0}
