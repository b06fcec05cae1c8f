"""Combination policies: a store whose key moved on since its base. Both backends."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

import learnhub
from learnhub.errors import ConfigError, InvalidInput
from learnhub.learning import LearningConfig, parse_learning_config


def policy(hub, pattern: str, name: str) -> None:
    hub.learning.configure(LearningConfig(policies={pattern: name}))


def history(hub, key: str) -> set[str]:
    return {v.version for v in hub.learning.versions(key)}


# --- the default: best --------------------------------------------------------------------


def test_best_is_the_default_and_a_stale_base_is_combined_and_recorded(hub):
    a = hub.learning.store("k", {"f": b"a"}, 0.5)
    token = hub.learning.lookup("k").version
    assert token == a
    b = hub.learning.put("k", {"f": b"b"}, 0.3, base=token)  # another run, first to finish
    assert b.current == b.version and b.combination is None
    c = hub.learning.put("k", {"f": b"c"}, 0.4, base=token)  # this run: the key moved on
    assert c.current == b.version  # 0.3 beats 0.4
    combo = c.combination
    assert combo.policy == "best"
    assert (combo.base, combo.current, combo.incoming, combo.result) == (
        a,
        b.version,
        c.version,
        b.version,
    )
    assert combo.inputs == [a, b.version, c.version]
    assert hub.learning.combinations("k") == [combo]
    assert hub.learning.lookup("k").version == b.version == hub.learning.best("k").version
    assert history(hub, "k") == {a, b.version, c.version}


def test_best_without_a_conflict_keeps_the_lower_metric(hub):
    a = hub.learning.store("k", {"f": b"a"}, 0.1)
    worse = hub.learning.put("k", {"f": b"w"}, 0.9, base=a)
    assert worse.current == a and worse.combination is None
    assert hub.learning.lookup("k").version == a
    assert hub.learning.combinations("k") == []


# --- newest, smallest, largest ----------------------------------------------------------------


def test_newest_replaces_and_wins_combinations(hub):
    policy(hub, "asc/*", "newest")
    a = hub.learning.store("asc/p", {"f": b"a"}, 0.1)
    b = hub.learning.put("asc/p", {"f": b"b"}, 0.9, base=a)  # worse, yet current: it is newest
    assert b.current == b.version and b.combination is None
    assert hub.learning.lookup("asc/p").version == b.version
    c = hub.learning.put("asc/p", {"f": b"c"}, 0.5, base=a)  # stale base
    assert c.current == c.version and c.combination.policy == "newest"
    assert (c.combination.current, c.combination.result) == (b.version, c.version)
    assert hub.learning.lookup("asc/p").version == c.version
    # Keys the pattern does not match keep the default.
    hub.learning.store("other", {"f": b"1"}, 0.1)
    hub.learning.store("other", {"f": b"2"}, 0.9)
    assert hub.learning.lookup("other").metric == 0.1


@pytest.mark.parametrize("name", ["smallest", "largest"])
def test_smallest_and_largest_compare_total_file_size(hub, name):
    policy(hub, "*", name)
    a = hub.learning.store("k", {"f": b"a" * 10}, 0.5)
    mid = hub.learning.put("k", {"f": b"m" * 20, "g": b"x" * 5}, 0.5, base=a)  # 25 bytes
    assert mid.current == mid.version  # no conflict: it replaces, whatever its size
    small = hub.learning.put("k", {"f": b"s" * 3}, 0.1, base=a)
    big = hub.learning.put("k", {"f": b"b" * 100}, 0.9, base=a)
    expected = small.version if name == "smallest" else big.version
    assert hub.learning.lookup("k").version == expected
    combos = list(reversed(hub.learning.combinations("k")))
    assert [c.incoming for c in combos] == [small.version, big.version]
    assert combos[0].current == mid.version
    assert combos[1].current == combos[0].result
    assert history(hub, "k") == {a, mid.version, small.version, big.version}


def test_a_store_without_base_on_an_existing_key_is_combined(hub):
    policy(hub, "*", "smallest")
    small = hub.learning.store("k", {"f": b"s"}, 0.5)
    big = hub.learning.put("k", {"f": b"bigger"}, 0.1)  # started from a miss, too
    assert big.current == small and big.combination.base is None
    assert hub.learning.lookup("k").version == small


def test_storing_the_current_content_again_changes_nothing(hub):
    policy(hub, "*", "newest")
    a = hub.learning.store("k", {"f": b"a"}, 0.5)
    b = hub.learning.store("k", {"f": b"b"}, 0.5, base=a)
    again = hub.learning.put("k", {"f": b"b"}, 0.5, base=a)
    assert again.version == b and again.combination is None
    assert hub.learning.combinations("k") == []


def test_where_under_a_head_policy_returns_the_last_current_match(hub):
    policy(hub, "*", "newest")
    fast1 = hub.learning.store("k", {"f": b"1"}, 0.1, {"mode": "fast"})
    slow = hub.learning.store("k", {"f": b"2"}, 0.9, {"mode": "slow"}, base=fast1)
    assert hub.learning.lookup("k").version == slow
    assert hub.learning.lookup("k", {"mode": "fast"}).version == fast1
    fast2 = hub.learning.store("k", {"f": b"3"}, 0.5, {"mode": "fast"}, base=slow)
    assert hub.learning.lookup("k", {"mode": "fast"}).version == fast2
    with pytest.raises(InvalidInput, match="unknown attribute 'speed'"):
        hub.learning.lookup("k", {"speed": "x"})


def test_first_matching_pattern_wins(hub):
    hub.learning.configure(
        LearningConfig(policies={"asc/big/*": "largest", "asc/*": "smallest", "*": "newest"})
    )
    rule = hub.learning.policies.rule_for
    assert rule("asc/big/p").policy == "largest"
    assert rule("asc/p").policy == "smallest"
    assert rule("zzz").policy == "newest"
    hub.learning.configure(LearningConfig())
    assert rule("asc/p").policy == "best"


# --- merge -----------------------------------------------------------------------------------


def union_pairs(key, base, current, incoming):
    """Training pairs, one per line: the union of both runs', sorted; "retrained" metric."""
    lines = set(current.files["pairs"].split(b"\n")) | set(incoming.files["pairs"].split(b"\n"))
    lines.discard(b"")
    merged = b"\n".join(sorted(lines))
    return {"pairs": merged}, min(current.metric, incoming.metric) / 2, {"merged": True}


def test_merge_calls_the_function_with_base_current_incoming(hub):
    seen = []

    def merge(key, base, current, incoming):
        seen.append((key, base and base.version, current.version, incoming.version))
        return union_pairs(key, base, current, incoming)

    hub.learning.configure(LearningConfig(policies={"asc/*": "merge"}))
    hub.learning.register_merge("asc/*", merge)
    a = hub.learning.store("asc/p", {"pairs": b"1 1"}, 0.8)
    b = hub.learning.store("asc/p", {"pairs": b"1 1\n2 4"}, 0.6, base=a)
    c = hub.learning.put("asc/p", {"pairs": b"1 1\n3 9"}, 0.4, base=a)
    assert seen == [("asc/p", a, b, c.version)]
    merged = hub.learning.lookup("asc/p")
    assert merged.version == c.current not in (b, c.version)
    assert merged.files == {"pairs": b"1 1\n2 4\n3 9"}
    assert merged.metric == 0.2 and merged.attrs == {"merged": True}
    assert merged.base == b  # made from the version that was current
    assert c.combination.policy == "merge" and c.combination.result == merged.version
    assert history(hub, "asc/p") == {a, b, c.version, merged.version}


def test_merge_from_a_miss_gets_no_base(hub):
    seen = []

    def merge(key, base, current, incoming):
        seen.append(base)
        return union_pairs(key, base, current, incoming)

    hub.learning.register_merge("*", merge)
    hub.learning.store("k", {"pairs": b"a"}, 0.5)
    out = hub.learning.put("k", {"pairs": b"b"}, 0.5)
    assert seen == [None]
    assert hub.learning.lookup("k").files == {"pairs": b"a\nb"} and out.combination.base is None


@pytest.mark.parametrize(
    "bad",
    [
        lambda k, b, c, i: 1 / 0,
        lambda k, b, c, i: "not a tuple",
        lambda k, b, c, i: ({}, 0.1, None),  # no files
        lambda k, b, c, i: ({"f": b"x"}, float("nan"), None),
    ],
)
def test_a_failing_merge_keeps_the_lower_metric_and_says_why(hub, bad):
    hub.learning.register_merge("*", bad)
    a = hub.learning.store("k", {"f": b"a"}, 0.5)
    b = hub.learning.store("k", {"f": b"b"}, 0.7, base=a)
    c = hub.learning.put("k", {"f": b"c"}, 0.6, base=a)
    assert c.current == c.version  # 0.6 beats the current 0.7
    assert "merge function failed" in c.combination.detail
    assert hub.learning.lookup("k").version == c.version
    assert history(hub, "k") == {a, b, c.version}


def test_merge_policy_without_a_function_refuses_and_stores_nothing(hub):
    hub.learning.configure(LearningConfig(policies={"asc/*": "merge"}))
    with pytest.raises(InvalidInput, match=r"register_merge\('asc/\*', fn\).*nothing was stored"):
        hub.learning.store("asc/p", {"f": b"a"}, 0.5)
    assert hub.learning.versions("asc/p") == []


def test_merge_named_in_config_is_imported(hub, isolated_env: Path):
    (isolated_env / "my_merges.py").write_text(
        "def keep_incoming(key, base, current, incoming):\n"
        "    return incoming.files, incoming.metric, {'by': 'my_merges'}\n"
    )
    try:
        hub.learning.configure(
            parse_learning_config({"policies": {"*": "merge:my_merges:keep_incoming"}})
        )
        a = hub.learning.store("k", {"f": b"a"}, 0.5)
        hub.learning.store("k", {"f": b"b"}, 0.5, base=a)
        out = hub.learning.put("k", {"f": b"c"}, 0.5, base=a)
        assert hub.learning.lookup("k").attrs == {"by": "my_merges"}
        assert out.combination.policy == "merge"
    finally:
        sys.modules.pop("my_merges", None)


# --- the configuration -------------------------------------------------------------------------


def test_config_parses_and_defaults():
    cfg = parse_learning_config(
        {
            "policies": {"asc/*": "newest", "*": "best"},
            "upstream": "unix:///run/learnhub/hub.sock",
            "lookup_timeout": "250ms",
        }
    )
    assert cfg.policies == {"asc/*": "newest", "*": "best"}
    assert cfg.upstream == "unix:///run/learnhub/hub.sock"
    assert cfg.lookup_timeout == 0.25
    default = parse_learning_config(None)
    assert default.policies == {} and default.upstream is None and default.lookup_timeout == 0.5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"policy": {}}, "unknown key 'learning.policy'"),
        ({"policies": {"*": "biggest"}}, "unknown learning policy 'biggest'"),
        ({"policies": {"": "best"}}, "pattern '' must be a non-empty key glob"),
        ({"policies": ["*"]}, "must be a table of pattern = policy"),
        ({"policies": {"*": "merge:nomodule"}}, '"merge:package.module:function"'),
        ({"policies": {"*": 3}}, "unknown learning policy 3"),
        ({"upstream": "/run/hub.sock"}, "must be unix:///path/to/hub.sock"),
        ({"upstream": "unix://relative.sock"}, "absolute socket path"),
        ({"lookup_timeout": 0}, "'learning.lookup_timeout' must be a positive duration"),
        ({"lookup_timeout": "soon"}, "'learning.lookup_timeout' must be a positive duration"),
    ],
)
def test_bad_config_is_a_clear_error(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_learning_config(values)


def test_config_naming_a_missing_merge_module_fails_and_keeps_the_old_rules(hub):
    policy(hub, "*", "newest")
    with pytest.raises(ConfigError, match="cannot import 'no_such_mod'"):
        hub.learning.configure(LearningConfig(policies={"*": "merge:no_such_mod:fn"}))
    assert hub.learning.policies.rule_for("k").policy == "newest"


# --- concurrency: 8 writers against one base ---------------------------------------------------


def _race(store_url: str, key: str, configure, payloads: list[tuple[dict, float]]) -> tuple:
    """Store ``payloads`` from 8 hubs (own connections) at once, all with the same base."""
    hubs = [learnhub.open(store_url) for _ in payloads]
    try:
        for h in hubs:
            configure(h)
        base = hubs[0].learning.store(key, {"pairs": b"0 0", "pad": b""}, 0.55)
        barrier = threading.Barrier(len(hubs))
        results: list = [None] * len(hubs)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                barrier.wait()
                files, metric = payloads[i]
                results[i] = hubs[i].learning.put(key, files, metric, base=base)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(hubs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        return base, results, hubs[0].learning.lookup(key), hubs[0].learning.combinations(key)
    finally:
        for h in hubs:
            h.close()


def _payloads() -> list[tuple[dict, float]]:
    # Distinct sizes and metrics, not in the same order, so each policy picks another one.
    metrics = [0.7, 0.2, 0.9, 0.4, 0.1, 0.8, 0.3, 0.6]
    return [
        ({"pairs": f"{i} {i * i}".encode(), "pad": b"x" * ((i * 5) % 8 * 10 + 1)}, metrics[i])
        for i in range(8)
    ]


def _check_chain(combos, base: str, first_current: set[str]) -> None:
    """Combinations happened one at a time: each started from the previous one's result."""
    chain = list(reversed(combos))
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.current == before.result
    if chain:
        assert chain[0].current in first_current
        assert all(c.base == base for c in chain)


@pytest.mark.parametrize("name", ["best", "newest", "smallest", "largest"])
def test_eight_concurrent_stores_follow_the_policy_exactly(store_url, name):
    payloads = _payloads()
    base, results, current, combos = _race(
        store_url, "race", lambda h: policy(h, "*", name), payloads
    )
    hub = learnhub.open(store_url)
    try:
        assert history(hub, "race") == {base} | {r.version for r in results}  # none lost
        versions = {v.version: v for v in hub.learning.versions("race")}
    finally:
        hub.close()
    incoming = [r.version for r in results]
    size = {v: sum(versions[v].sizes.values()) for v in versions}
    if name == "best":
        assert current.version == min(versions, key=lambda v: versions[v].metric)
        for c in combos:
            assert c.result == min((c.current, c.incoming), key=lambda v: versions[v].metric)
    else:
        # Exactly one store found the base current and replaced it; the 7 others combined.
        assert len(combos) == 7
        first = set(incoming) - {c.incoming for c in combos}
        assert len(first) == 1
        _check_chain(combos, base, first)
        rule = {
            "newest": lambda cur, inc: inc,
            "smallest": lambda cur, inc: inc if size[inc] < size[cur] else cur,
            "largest": lambda cur, inc: inc if size[inc] > size[cur] else cur,
        }[name]
        for c in combos:
            assert c.result == rule(c.current, c.incoming)
        expected = list(reversed(combos))[-1].result
        assert current.version == expected
        if name == "smallest":
            assert current.version == min(incoming, key=size.get)
        if name == "largest":
            assert current.version == max(incoming, key=size.get)


def test_eight_concurrent_merges_lose_no_pair(store_url):
    payloads = _payloads()

    def configure(h):
        h.learning.register_merge("*", union_pairs)

    base, results, current, combos = _race(store_url, "race", configure, payloads)
    assert len(combos) == 7
    first = {r.version for r in results} - {c.incoming for c in combos}
    _check_chain(combos, base, first)
    pairs = set(current.files["pairs"].split(b"\n"))
    assert pairs >= {f"{i} {i * i}".encode() for i in range(8)}
    assert current.version == list(reversed(combos))[-1].result


# --- the current version across policy changes and upgrades ------------------------------------


def test_changing_a_keys_policy_starts_from_what_lookups_returned(hub):
    a = hub.learning.store("k", {"f": b"a"}, 0.1)
    hub.learning.store("k", {"f": b"b"}, 0.9, base=a)  # under best, a stays current
    policy(hub, "*", "newest")
    assert hub.learning.lookup("k").version == a  # not the newest: a is what was current
    c = hub.learning.store("k", {"f": b"c"}, 0.5, base=a)
    assert hub.learning.lookup("k").version == c
    hub.learning.configure(LearningConfig())
    assert hub.learning.lookup("k").version == a  # best again: the lowest metric


def test_storing_an_old_version_again_under_best_keeps_the_newest_tie(hub):
    old = hub.learning.store("k", {"f": b"old"}, 0.5)
    new = hub.learning.store("k", {"f": b"new"}, 0.5, base=old)
    again = hub.learning.put("k", {"f": b"old"}, 0.5, base=new)
    assert again.version == old and again.current == new == hub.learning.lookup("k").version


def test_upgrading_a_store_makes_each_keys_best_version_current(store_url):
    from learnhub.store.open import _connector, migrate

    connector = _connector(store_url)
    migrate(connector, target=7)
    with connector.transaction() as tx:  # versions written by a learnhub before policies
        for version, metric, ns in (("v1", 0.3, 1), ("v2", 0.1, 2), ("v3", 0.7, 3)):
            tx.execute(
                "insert_artifact", key="k", version=version, metric=metric, attrs="{}",
                origin="old", base=None, created_ns=ns,
            )  # fmt: skip
    connector.close()
    with learnhub.open(store_url) as hub:
        policy(hub, "*", "newest")
        assert hub.learning.best("k").version == "v2"  # the best, not the newest (v3)
