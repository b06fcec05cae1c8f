"""Configuration: defaults < config file < LEARNHUB_* environment < CLI flags.

The file is ``./learnhub.toml`` if present, else ``~/.config/learnhub/config.toml``
(``LEARNHUB_CONFIG`` names another). Every key is declared in the dataclasses below; an
unknown key or a value of the wrong type is an error that names it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

from learnhub.errors import ConfigError

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
class Config:
    db: str | None = None
    """Store URL: sqlite:///PATH or postgresql://...; default: hub.db in the user data dir."""
    server: ServerConfig = field(default_factory=ServerConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)

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
    return cls(**kwargs)


def _typed(value: Any, kind: Any, what: str) -> Any:
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
