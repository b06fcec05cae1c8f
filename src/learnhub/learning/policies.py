"""Combination policies: what a store does when its key moved on since the writer's lookup.

A store carries the version its writer started from (``base``, the token a lookup returned;
none after a miss). When the key's current version is no longer that base, another run
stored meanwhile, and the key's policy combines the two instead of replacing:

``best`` (the default)
    The current version is always the one with the lowest metric (ties: the newest), so a
    plain store and a combination agree: the better metric wins.
``newest``
    The current version is the last one stored: the incoming version wins.
``smallest`` / ``largest``
    The smaller / larger total file size of the current and the incoming version wins (ties
    keep the current one).
``merge``
    A Python function registered for the key's pattern makes a new version from the three:
    ``fn(key, base, current, incoming) -> (files, metric, attrs)`` (``base`` is None when the
    writer started from a miss). Configured as ``"merge"`` (the function is registered with
    ``hub.learning.register_merge(pattern, fn)``) or ``"merge:package.module:function"``.

Under every policy but ``best``, the current version is the last one *made current*: a store
without a conflict makes its version current (it replaces), a combination makes its result
current. Policies are chosen per key by glob patterns (Redis syntax), first match wins;
keys no pattern matches use ``best``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from learnhub._glob import glob_match
from learnhub.errors import ConfigError

if TYPE_CHECKING:
    from learnhub.learning.artifacts import Artifact

POLICIES = ("best", "newest", "smallest", "largest", "merge")
DEFAULT_POLICY = "best"
DEFAULT_LOOKUP_TIMEOUT = 0.5
UPSTREAM_SCHEMES = ("unix://", "redis://", "rediss://")

# fn(key, base, current, incoming) -> (files, metric, attrs)
MergeFn = Callable[
    [str, "Artifact | None", "Artifact", "Artifact"],
    tuple[Mapping[str, bytes], float, Mapping[str, Any] | None],
]


@dataclass(frozen=True)
class LearningConfig:
    """The ``[learning]`` section of the config file.

    ```toml
    [learning]
    upstream = "unix:///run/learnhub/hub.sock"   # ask this hub on a lookup miss
    lookup_timeout = "500ms"                      # how long a miss may wait elsewhere

    [learning.policies]                           # in order: the first match wins
    "asc/*" = "newest"
    "model/*" = "merge:myapp.merges:union_pairs"
    ```
    """

    policies: dict[str, str] = field(default_factory=dict)
    """Key pattern (glob) → best | newest | smallest | largest | merge | merge:module:fn."""
    upstream: str | None = None
    """A hub asked on a lookup miss: unix:///path/hub.sock or redis://[:token@]host:port."""
    lookup_timeout: float | str = DEFAULT_LOOKUP_TIMEOUT
    """How long a lookup miss may wait for other hubs: seconds, or "500ms", "2s"."""

    def __post_init__(self) -> None:
        if not isinstance(self.policies, Mapping):
            raise ConfigError(
                "'learning.policies' must be a table of pattern = policy, "
                'e.g. {"asc/*" = "newest"}'
            )
        for pattern, policy in self.policies.items():
            _check_pattern(pattern)
            _check_policy(pattern, policy)
        object.__setattr__(self, "policies", dict(self.policies))
        if self.upstream is not None:
            _check_upstream(self.upstream)
        object.__setattr__(
            self, "lookup_timeout", _seconds(self.lookup_timeout, "'learning.lookup_timeout'")
        )


def parse_learning_config(values: Mapping[str, Any] | None) -> LearningConfig:
    """A ``LearningConfig`` from the ``[learning]`` table of a TOML file (a dict)."""
    if values is None:
        return LearningConfig()
    if not isinstance(values, Mapping):
        raise ConfigError("[learning] must be a table")
    known = {"policies", "upstream", "lookup_timeout"}
    for name in values:
        if name not in known:
            raise ConfigError(
                f"unknown key 'learning.{name}'; known keys: "
                + ", ".join(f"learning.{k}" for k in sorted(known))
            )
    return LearningConfig(**values)


@dataclass(frozen=True)
class Rule:
    """One pattern's policy, with its merge function when the policy is ``merge``."""

    pattern: str
    policy: str
    merge: MergeFn | None = None


DEFAULT_RULE = Rule("*", DEFAULT_POLICY)


class Policies:
    """The rules in effect: the configured patterns, and merge functions registered in code.

    A registered merge function's pattern is checked before the configured ones unless the
    configuration names that same pattern (then the configuration decides, at its place):
    registering is an explicit request, and an operator can still override it in config.
    """

    def __init__(self, config: LearningConfig | None = None) -> None:
        self._config = config or LearningConfig()
        self._merges: dict[str, MergeFn] = {}
        self._rules = self._compile()

    @property
    def config(self) -> LearningConfig:
        return self._config

    def configure(self, config: LearningConfig) -> None:
        self._config = config
        self._rules = self._compile()

    def register_merge(self, pattern: str, fn: MergeFn) -> None:
        _check_pattern(pattern)
        if not callable(fn):
            raise ConfigError(f"the merge function for {pattern!r} must be callable, got {fn!r}")
        self._merges[pattern] = fn
        self._rules = self._compile()

    def rule_for(self, key: str) -> Rule:
        for rule in self._rules:
            if glob_match(rule.pattern, key):
                return rule
        return DEFAULT_RULE

    def rules(self) -> list[Rule]:
        return list(self._rules)

    def _compile(self) -> list[Rule]:
        configured = self._config.policies
        rules = [Rule(p, "merge", fn) for p, fn in self._merges.items() if p not in configured]
        for pattern, policy in configured.items():
            if policy == "merge":
                rules.append(Rule(pattern, "merge", self._merges.get(pattern)))
            elif policy.startswith("merge:"):
                rules.append(Rule(pattern, "merge", _import_merge(pattern, policy[6:])))
            else:
                rules.append(Rule(pattern, policy))
        return rules


def _check_pattern(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern.strip() or any(ord(c) < 32 for c in pattern):
        raise ConfigError(
            f"learning policy pattern {pattern!r} must be a non-empty key glob without control "
            'characters, e.g. "asc/*"'
        )


def _check_policy(pattern: str, policy: Any) -> None:
    if isinstance(policy, str) and policy.startswith("merge:"):
        module, sep, attr = policy[6:].partition(":")
        if sep and module and attr:
            return
        raise ConfigError(
            f"learning policy {policy!r} for {pattern!r} must name the function as "
            '"merge:package.module:function"'
        )
    if policy not in POLICIES:
        raise ConfigError(
            f"unknown learning policy {policy!r} for {pattern!r}; use one of "
            + ", ".join(POLICIES)
            + ' or "merge:package.module:function"'
        )


def _check_upstream(url: Any) -> None:
    if not isinstance(url, str) or not url.startswith(UPSTREAM_SCHEMES):
        raise ConfigError(
            f"'learning.upstream' {url!r} must be unix:///path/to/hub.sock or "
            "redis://[:token@]host:port"
        )
    if url.startswith("unix://") and not url[len("unix://") :].startswith("/"):
        raise ConfigError(
            f"'learning.upstream' {url!r} must give an absolute socket path: unix:///path/hub.sock"
        )


def _seconds(value: Any, what: str) -> float:
    from learnhub.config import duration  # the config's own duration syntax

    return duration(value, what)


def _import_merge(pattern: str, target: str) -> MergeFn:
    module_name, _, attr = target.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like python -m and --app: modules in the working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r} for the merge policy of {pattern!r}: {exc}"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(
            f"the merge policy of {pattern!r} names {module_name}.{attr}, which is not a function"
        )
    return fn
