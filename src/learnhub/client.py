"""``learnhub.connect()``: talk to a running hub from any process, through redis-py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from learnhub import config as config_module
from learnhub.errors import InvalidInput, ServerError
from learnhub.learning.artifacts import Artifact, AttrValue, attr_text


class Client:
    """A connection to a hub. ``client.redis`` is the underlying redis-py client."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def ping(self) -> bool:
        return bool(self._call("PING"))

    def lookup(
        self, key: str, where: Mapping[str, AttrValue] | None = None, local: bool = False
    ) -> Artifact | None:
        """The best version of ``key`` matching ``where``; ``local`` never asks peers."""
        args: list[Any] = [key]
        if where:
            args.append("WHERE")
            for name, value in where.items():
                args += [name, attr_text(value)]
        reply = self._call("LOOKUP_LOCAL" if local else "LOOKUP", *args)
        return None if reply is None else _artifact(key, reply)

    def store(
        self,
        key: str,
        files: Mapping[str, bytes],
        metric: float,
        attrs: Mapping[str, AttrValue] | None = None,
        base: str | None = None,
    ) -> str:
        """Store a version; returns the key's best version afterwards."""
        args: list[Any] = [key, repr(float(metric))]
        if base:
            args += ["BASE", base]
        for name, value in (attrs or {}).items():
            args += ["ATTR", name, attr_text(value)]
        for name, data in files.items():
            args += ["FILE", name, data]
        return self._call("STORE", *args).decode()

    def _call(self, *args: Any) -> Any:
        try:
            return self.redis.execute_command(*args)
        except redis.ResponseError as exc:
            raise InvalidInput(str(exc).removeprefix("ERR ")) from None
        except redis.AuthenticationError as exc:  # redis-py files this under ConnectionError
            raise ServerError(f"the hub refused the token: {exc}") from exc
        except redis.ConnectionError as exc:
            raise ServerError(f"cannot reach the hub: {exc}") from exc

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(socket: str | Path | None = None, url: str | None = None) -> Client:
    """Connect to a hub: its UNIX ``socket`` (default: the configured one), or a ``url``
    such as ``redis://:TOKEN@host:7433``."""
    # One immediate retry replaces a connection the hub dropped (it restarted); redis-py's
    # default backs off for seconds when no hub is up, or when the token is wrong.
    retry = Retry(NoBackoff(), 1)
    if url:
        return Client(redis.Redis.from_url(url, retry=retry))
    path = socket or config_module.load().socket_path
    return Client(redis.Redis(unix_socket_path=str(path), retry=retry))


def _pairs(reply: list[Any] | dict[bytes, Any]) -> dict[str, Any]:
    """A map reply as a dict: RESP3 sends a map, RESP2 a flat key, value, ... array."""
    items = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
    return {k.decode(): v for k, v in items}


def _artifact(key: str, reply: list[Any] | dict[bytes, Any]) -> Artifact:
    fields = _pairs(reply)
    files = {name: bytes(data) for name, data in _pairs(fields["files"]).items()}
    base = fields.get("base")
    return Artifact(
        key=key,
        version=fields["version"].decode(),
        metric=float(fields["metric"]),
        attrs={k: v.decode() for k, v in _pairs(fields["attrs"]).items()},
        origin=fields["origin"].decode(),
        updated=datetime.fromisoformat(fields["updated"].decode()),
        base=base.decode() if base else None,
        sizes={name: len(data) for name, data in files.items()},
        files=files,
    )
