"""The peer link wired into the Hub and its config: ``[peers]`` checked at load,
``hub.start_peers()``, a lookup miss on one hub found on another, and ``close()``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import learnhub
from learnhub.config import Config
from learnhub.errors import ConfigError

SECRET = "s" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_peers_table_fails_at_load() -> None:
    with pytest.raises(ConfigError, match="unknown key 'peers.nope'"):
        Config(peers={"nope": 1})


def test_two_hubs_find_each_others_learning(tmp_path: Path) -> None:
    a_port, b_port = free_port(), free_port()
    a_conf = Config(peers={"listen": f"127.0.0.1:{a_port}", "secret": SECRET})
    b_conf = Config(
        peers={"listen": f"127.0.0.1:{b_port}", "peers": [f"127.0.0.1:{a_port}"], "secret": SECRET}
    )
    with (
        learnhub.open(f"sqlite:///{tmp_path / 'a.db'}", config=a_conf) as a,
        learnhub.open(f"sqlite:///{tmp_path / 'b.db'}", config=b_conf) as b,
    ):
        a.start_peers()
        service = b.start_peers()
        assert b.start_peers() is service  # once per hub
        version = a.learning.store("asc/prog", {"prog.net": b"weights"}, 0.25)
        assert b.learning.lookup("asc/prog", local=True) is None
        found = b.learning.lookup("asc/prog")
        assert found is not None and found.version == version
        assert found.files == {"prog.net": b"weights"}
        assert b.learning.lookup("asc/prog", local=True) is not None  # stored on b
    assert a.peers is None and b.peers is None
