"""The ``[peers]`` section: where the peer link listens, whom it talks to, and what it lets in
and out.

```toml
[peers]
listen = "0.0.0.0:7433"             # the hub-to-hub link (RESP over TCP)
peers = ["10.0.0.2:7433"]           # static peers
secret_file = "/etc/learnhub/cluster.secret"   # a shared cluster secret (HMAC), or:
trust = ["3f9c...:9a1b..."]         # node ids with their public keys (`learnhub peers id`)
want = ["asc/*"]                    # keys this hub fetches improvements of from digests
margin = 0.0                        # a peer's version must beat ours by more than this
digest_interval = "30s"
dht = ["10.0.0.2:7434"]             # DHT bootstrap nodes (an empty list: this hub starts one)
dht_listen = "0.0.0.0:7434"

[peers.import]                      # what may be stored from peers
deny_nodes = ["0badc0ffee000000"]
allow_keys = ["asc/*"]

[peers.export]                      # what peers may fetch and are offered
deny_keys = ["private/*"]
```

Policies: a deny list always wins; a non-empty allow list lets only what it names through.
Nodes match by node id (globs allowed), addresses by ``host``, ``host:port`` glob or CIDR
(``10.0.0.0/8``), keys by Redis-style glob.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learnhub._glob import glob_match
from learnhub.errors import ConfigError

DEFAULT_PORT = 7433
DEFAULT_DHT_PORT = 7434
DEFAULT_CHUNK = 1024 * 1024
MIN_SECRET_BYTES = 16


def _host_port(value: Any, what: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) as a pair; port 0 lets the system choose."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}, got {value!r}")
    host, sep, port = value.strip().rpartition(":")
    if not sep and default_port is not None:
        host, port = value.strip(), str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}, got {value!r}")
    return host, int(port)


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f'{what} must be a list of strings: write ["{value}"]')
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{what} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Policy:
    """Allow / deny lists for one direction (import or export)."""

    allow_nodes: tuple[str, ...] = ()
    deny_nodes: tuple[str, ...] = ()
    allow_addresses: tuple[str, ...] = ()
    deny_addresses: tuple[str, ...] = ()
    allow_keys: tuple[str, ...] = ()
    deny_keys: tuple[str, ...] = ()

    def refuses(self, node: str | None, addr: str | None, key: str | None) -> str | None:
        """Why ``node`` at ``addr`` may not have ``key`` (None: it may). A None argument is
        not checked (e.g. a key-less HELLO)."""
        checks = (
            ("node", "nodes", node, self.allow_nodes, self.deny_nodes, glob_match),
            ("address", "addresses", addr, self.allow_addresses, self.deny_addresses,
             _address_match),
            ("key", "keys", key, self.allow_keys, self.deny_keys, glob_match),
        )  # fmt: skip
        for what, lists, value, allow, deny, match in checks:
            if value is None:
                continue
            shown = repr(value) if what == "key" else value
            for pattern in deny:
                if match(pattern, value):
                    return f"{what} {shown} matches deny_{lists} {pattern!r}"
            if allow and not any(match(p, value) for p in allow):
                return f"{what} {shown} is not in allow_{lists} {list(allow)!r}"
        return None


def _address_match(pattern: str, addr: str) -> bool:
    host, _, _port = addr.rpartition(":")
    host = host.strip("[]")
    if "/" in pattern:
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    return glob_match(pattern, addr) or glob_match(pattern, host)


def _policy(values: Any, what: str) -> Policy:
    if values is None:
        return Policy()
    if isinstance(values, Policy):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{what}] must be a table of allow_*/deny_* lists")
    known = [f.removeprefix("_") for f in Policy.__dataclass_fields__]
    lists = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"unknown key '{what}.{name}'; known keys: " + ", ".join(known))
        lists[name] = _strings(value, f"'{what}.{name}'")
    for pattern in lists.get("allow_addresses", ()) + lists.get("deny_addresses", ()):
        if "/" in pattern:
            try:
                ipaddress.ip_network(pattern, strict=False)
            except ValueError as exc:
                raise ConfigError(f"'{what}' address {pattern!r} is not a network: {exc}") from exc
    return Policy(**lists)


@dataclass(frozen=True)
class PeersConfig:
    """The validated ``[peers]`` section; see the module docstring."""

    enabled: bool = True
    listen: str = f"0.0.0.0:{DEFAULT_PORT}"
    advertise: str | None = None
    """The address peers reach this hub at (default: ``listen``, with the host a peer sees)."""
    peers: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)
    secret_file: str | None = None
    trust: tuple[str, ...] = ()
    want: tuple[str, ...] = ()
    margin: float = 0.0
    digest_interval: float | str = 30.0
    watch_interval: float | str = 0.05
    """How often the store is checked for new versions to offer (any process may write it)."""
    fetch_timeout: float | str = 60.0
    connect_timeout: float | str = 2.0
    chunk_size: int = DEFAULT_CHUNK
    max_announcements: int = 1000
    dht: tuple[str, ...] | None = None
    """DHT bootstrap nodes; None: no DHT; an empty list: start a DHT of one."""
    dht_listen: str = f"0.0.0.0:{DEFAULT_DHT_PORT}"
    republish_interval: float | str = 600.0
    idle_load: float | None = None
    """Offline training runs when the 1-minute load average is below this (None: never)."""
    idle_interval: float | str = 60.0
    idle_batch: int = 1
    import_: Policy = field(default_factory=Policy)
    export: Policy = field(default_factory=Policy)

    def __post_init__(self) -> None:
        from learnhub.config import duration

        set_ = object.__setattr__
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"'peers.enabled' must be true or false, got {self.enabled!r}")
        _host_port(self.listen, "'peers.listen'", DEFAULT_PORT)
        if self.advertise is not None:
            _host_port(self.advertise, "'peers.advertise'")
        set_(self, "peers", _strings(self.peers, "'peers.peers'"))
        for peer in self.peers:
            _host_port(peer, f"peer {peer!r} in 'peers.peers'", DEFAULT_PORT)
        set_(self, "trust", _strings(self.trust, "'peers.trust'"))
        for entry in self.trust:
            parse_trust(entry)
        set_(self, "want", _strings(self.want, "'peers.want'"))
        if self.secret is not None and self.secret_file is not None:
            raise ConfigError("give 'peers.secret' or 'peers.secret_file', not both")
        if self.secret is not None and (
            not isinstance(self.secret, str) or len(self.secret.encode()) < MIN_SECRET_BYTES
        ):
            raise ConfigError(
                f"'peers.secret' must be a string of at least {MIN_SECRET_BYTES} bytes; "
                "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        if self.secret_file is not None and not isinstance(self.secret_file, str):
            raise ConfigError(f"'peers.secret_file' must be a path, got {self.secret_file!r}")
        if (
            isinstance(self.margin, bool)
            or not isinstance(self.margin, int | float)
            or not math.isfinite(self.margin)
            or self.margin < 0
        ):
            raise ConfigError(f"'peers.margin' must be a number >= 0, got {self.margin!r}")
        for name in (
            "digest_interval",
            "watch_interval",
            "fetch_timeout",
            "connect_timeout",
            "republish_interval",
            "idle_interval",
        ):
            set_(self, name, duration(getattr(self, name), f"'peers.{name}'"))
        if self.idle_load is not None and (
            isinstance(self.idle_load, bool)
            or not isinstance(self.idle_load, int | float)
            or not self.idle_load > 0
        ):
            raise ConfigError(
                f"'peers.idle_load' must be a load average > 0 (e.g. 0.5), got {self.idle_load!r}"
            )
        for name, low in (("chunk_size", 4096), ("max_announcements", 1), ("idle_batch", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"'peers.{name}' must be an integer >= {low}, got {value!r}")
        if self.dht is not None:
            set_(self, "dht", _strings(self.dht, "'peers.dht'"))
            for node in self.dht:
                _host_port(node, f"DHT node {node!r} in 'peers.dht'", DEFAULT_DHT_PORT)
            _host_port(self.dht_listen, "'peers.dht_listen'", DEFAULT_DHT_PORT)
        set_(self, "import_", _policy(self.import_, "peers.import"))
        set_(self, "export", _policy(self.export, "peers.export"))

    @property
    def listen_address(self) -> tuple[str, int]:
        return _host_port(self.listen, "'peers.listen'", DEFAULT_PORT)

    @property
    def dht_address(self) -> tuple[str, int]:
        return _host_port(self.dht_listen, "'peers.dht_listen'", DEFAULT_DHT_PORT)

    def static_peers(self) -> list[str]:
        return [address(*_host_port(p, "peer", DEFAULT_PORT)) for p in self.peers]

    def dht_nodes(self) -> list[tuple[str, int]]:
        return [_host_port(n, "DHT node", DEFAULT_DHT_PORT) for n in self.dht or ()]

    def cluster_secret(self) -> bytes | None:
        """The shared secret, read from ``secret_file`` when given there."""
        if self.secret is not None:
            return self.secret.encode()
        if self.secret_file is None:
            return None
        path = Path(self.secret_file).expanduser()
        try:
            data = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read 'peers.secret_file' {path}: {exc.strerror}") from exc
        if len(data) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the secret in {path} is {len(data)} bytes; it must be at least "
                f"{MIN_SECRET_BYTES}: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return data


def parse_trust(entry: str) -> tuple[str, str]:
    """``NODE_ID:PUBLIC_KEY_HEX`` (what ``learnhub peers id`` prints) as a pair."""
    node, sep, key = entry.partition(":")
    ok = sep and node and len(key) == 64
    if ok:
        try:
            bytes.fromhex(key)
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(
            f"trusted peer {entry!r} must be NODE_ID:PUBLIC_KEY (64 hex digits), as "
            "`learnhub peers id` prints it on that hub"
        )
    return node, key.lower()


def parse_peers_config(values: Mapping[str, Any] | None) -> PeersConfig:
    """A ``PeersConfig`` from the ``[peers]`` table of a TOML file (a dict)."""
    if values is None:
        return PeersConfig()
    if not isinstance(values, Mapping):
        raise ConfigError("[peers] must be a table")
    fields = {f for f in PeersConfig.__dataclass_fields__ if f != "import_"} | {"import"}
    for name in values:
        if name not in fields:
            raise ConfigError(
                f"unknown key 'peers.{name}'; known keys: "
                + ", ".join(f"peers.{k}" for k in sorted(fields))
            )
    kwargs = dict(values)
    if "import" in kwargs:
        kwargs["import_"] = kwargs.pop("import")
    return PeersConfig(**kwargs)
