"""Configuration: defaults < config file < LEARNHUB_* environment < CLI flags.

The file is ``./learnhub.toml`` if present, else ``~/.config/learnhub/config.toml``
(``LEARNHUB_CONFIG`` names another). Every key is declared in the dataclasses below; an
unknown key or a value of the wrong type is an error that names it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

from learnhub.errors import ConfigError
from learnhub.learning.policies import LearningConfig

APP = "learnhub"


@dataclass(frozen=True)
class ServerConfig:
    socket: str | None = None
    """UNIX socket path; default: learnhub.sock in the user runtime dir."""
    listen: str | None = None
    """HOST:PORT to also serve on TCP (requires token)."""
    token: str | None = None
    """Clients on TCP must send AUTH <token>."""


@dataclass(frozen=True)
class JobsConfig:
    app: str | None = None
    """module:attribute of the Hub your tasks are registered on, for workers and serve."""
    lease_seconds: float = 30.0
    """A running job's lease; a worker that stops renewing it loses the job to others."""
    poll_seconds: float = 0.05
    """How often idle workers look for work other processes enqueued (SQLite; PostgreSQL
    notifies at once)."""
    retention_days: float = 7.0
    """Succeeded jobs older than this are pruned; failed ones are kept until deleted."""


@dataclass(frozen=True)
class EmbedConfig:
    approximate_above: int = 200_000
    """Models with at least this many vectors are searched through the approximate index
    (the ann extra); below it, exact search (under 20 ms up to about 200,000 x 384)."""

    def __post_init__(self) -> None:
        if isinstance(self.approximate_above, bool) or self.approximate_above < 0:
            raise ConfigError(
                f"'embed.approximate_above' must be a whole number of vectors >= 0, "
                f"got {self.approximate_above!r}"
            )


# Storage schemes sharing knows (fsspec protocols) and the package each needs.
SHARING_SCHEMES = {
    "file": None,
    "local": None,
    "memory": None,
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class SharingConfig:
    """Where learned examples (and matching artifacts) are loaded from and backed up to."""

    sources: list[str] = field(default_factory=list)
    """Globs to load examples from: paths, file://, s3://, gs://, az://, memory:// URLs."""
    backup: str | None = None
    """The folder (URL) this hub's own examples are written to, one file each."""
    poll_interval: float | str = 60.0
    """How often sources are polled: seconds, or "500ms", "60s", "5m", "1h"."""
    timeout: float | str = 30.0
    """A location that does not answer a listing, read or write within this fails."""
    artifacts: list[str] = field(default_factory=list)
    """Learning-data key patterns (e.g. "model/*") backed up and loaded like examples."""
    model: str | None = None
    """Embedder for examples; default: learnhub.embed.default_name()."""
    options: dict[str, Any] = field(default_factory=dict)
    """fsspec storage options by URL prefix, e.g. {"s3://team" = {endpoint_url = "..."}}."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sources", [_location(s, "sources", glob=True) for s in _strings(self.sources)])
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError("'sharing.sources' lists a location twice; list each once")
        if self.backup is not None:
            set_(self, "backup", _location(self.backup, "backup", glob=False))
        set_(self, "poll_interval", duration(self.poll_interval, "'sharing.poll_interval'"))
        set_(self, "timeout", duration(self.timeout, "'sharing.timeout'"))
        patterns = _strings(self.artifacts, "'sharing.artifacts'")
        for pattern in patterns:
            if not pattern.strip() or any(ord(c) < 32 for c in pattern):
                raise ConfigError(
                    f"'sharing.artifacts' pattern {pattern!r} is empty or has control "
                    'characters; give key patterns like "model/*"'
                )
        set_(self, "artifacts", patterns)
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ConfigError(f"'sharing.model' must be an embedder name, got {self.model!r}")
        if not isinstance(self.options, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in self.options.items()
        ):
            raise ConfigError(
                "'sharing.options' must be a table of tables: "
                '{"s3://bucket" = {endpoint_url = "http://..."}}'
            )


def duration(value: Any, what: str) -> float:
    """Seconds from a number or a string like "500ms", "60s", "5m", "1h"; positive, finite."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f'{what} must be a positive duration (seconds, or "500ms", "60s", "5m", "1h"), '
            f"got {value!r}"
        )
    return seconds


def _strings(value: Any, what: str = "'sharing.sources'") -> list[str]:
    if isinstance(value, str):
        raise ConfigError(f'{what} must be a list of strings: write ["{value}"]')
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings, got {value!r}")
    return list(value)


def _location(url: str, what: str, glob: bool) -> str:
    """A validated location: a known scheme whose package is installed; a glob for sources,
    a folder (no wildcards) for the backup."""
    where = f"'sharing.{what}'"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where} has an empty location; give a path or a URL")
    if any(ord(c) < 32 for c in url):
        raise ConfigError(f"{where} location {url!r} contains control characters")
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme not in SHARING_SCHEMES:
        raise ConfigError(
            f"{where}: unknown location scheme {scheme!r} in {url!r}; use a path or one of "
            + ", ".join(f"{s}://" for s in SHARING_SCHEMES)
        )
    package = SHARING_SCHEMES[scheme]
    if package is not None:
        import importlib.util

        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"{where}: {url!r} needs the {package} package: pip install {package}"
            )
    rest = url.split("://", 1)[1] if "://" in url else url
    bucket = rest.split("/", 1)[0]
    object_store = scheme not in ("file", "local", "memory")
    if not rest.strip("/") or (object_store and (not bucket or any(c in bucket for c in "*?["))):
        raise ConfigError(f"{where}: {url!r} names no bucket or folder")
    wild = any(c in rest for c in "*?[")
    if not glob and wild:
        raise ConfigError(f"{where}: {url!r} has wildcards; the backup is one folder")
    if glob and not wild:
        raise ConfigError(
            f"{where}: {url!r} is not a glob; add the files' pattern, e.g. {url.rstrip('/')}/*.json"
        )
    return url


@dataclass(frozen=True)
class Config:
    db: str | None = None
    """Store URL: sqlite:///PATH or postgresql://...; default: hub.db in the user data dir."""
    server: ServerConfig = field(default_factory=ServerConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    sharing: SharingConfig = field(default_factory=SharingConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    peers: dict[str, Any] = field(default_factory=dict)
    """The [peers] table, checked by learnhub.peers.config (its TOML key ``import`` is not a
    field name, so the table is kept raw)."""

    def __post_init__(self) -> None:
        if self.peers:
            from learnhub.peers.config import parse_peers_config

            parse_peers_config(self.peers)  # a bad [peers] fails at load, naming the key

    @property
    def store_url(self) -> str:
        return self.db or f"sqlite:///{Path(platformdirs.user_data_dir(APP)) / 'hub.db'}"

    @property
    def socket_path(self) -> Path:
        if self.server.socket:
            return Path(self.server.socket).expanduser()
        # The default directory is ours to make; a directory the user named is not.
        folder = Path(platformdirs.user_runtime_dir(APP))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder / "learnhub.sock"


def config_file() -> Path | None:
    """The config file in effect, if any."""
    if named := os.environ.get("LEARNHUB_CONFIG"):
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"LEARNHUB_CONFIG names {path}, which is not a file")
        return path
    for path in (Path("learnhub.toml"), Path(platformdirs.user_config_dir(APP)) / "config.toml"):
        if path.is_file():
            return path
    return None


def load(overrides: dict[str, Any] | None = None) -> Config:
    """The configuration in effect; ``overrides`` (CLI flags, dotted keys) win over all."""
    values: dict[str, Any] = {}
    if path := config_file():
        try:
            values = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        _build(Config, values, str(path))  # report file mistakes against the file
    for name, value in _from_env().items():
        _set(values, name, value)
    for name, value in (overrides or {}).items():
        if value is not None:
            _set(values, name, value)
    return _build(Config, values, "configuration")


def _from_env() -> dict[str, str]:
    """LEARNHUB_DB → db, LEARNHUB_SERVER_SOCKET → server.socket, for every declared key."""
    found = {}
    for dotted in _keys(Config):
        env = "LEARNHUB_" + dotted.replace(".", "_").upper()
        if env in os.environ:
            found[dotted] = os.environ[env]
    return found


def _keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        kind = get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(kind):
            keys += _keys(kind, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    for section in sections:
        values = values.setdefault(section, {})
    values[name] = value


def _build(cls: type, values: Any, where: str, prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: [{prefix.rstrip('.')}] must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name in values:
        if name not in known:
            raise ConfigError(
                f"{where}: unknown key {prefix + name!r}; known keys: "
                + ", ".join(prefix + k for k in sorted(known))
            )
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _typed(value, kind, f"{where}: {prefix + name!r}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _typed(value: Any, kind: Any, what: str) -> Any:
    origin = getattr(kind, "__origin__", None)
    if origin in (list, dict):  # checked by the section itself; from the environment: JSON
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                if origin is dict:
                    raise ConfigError(f"{what} must be a JSON object, got {value!r}") from None
                value = [value]  # one location
        return value
    wanted = [t for t in getattr(kind, "__args__", (kind,)) if t is not type(None)]
    if isinstance(value, tuple(wanted)) and not (isinstance(value, bool) and bool not in wanted):
        return value
    if float in wanted and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # from the environment or a flag: convert
        for t in wanted:
            try:
                if t is bool and value.lower() in ("1", "true", "yes", "0", "false", "no"):
                    return value.lower() in ("1", "true", "yes")
                if t in (int, float):
                    return t(value)
            except ValueError:
                continue
    names = " or ".join(t.__name__ for t in wanted)
    raise ConfigError(f"{what} must be a {names}, not {type(value).__name__} {value!r}")
