"""The peers configuration, policies, handshake proofs and the reply parser, in process."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnhub.errors import ConfigError
from learnhub.peers.config import PeersConfig, Policy, parse_peers_config
from learnhub.peers.identity import AuthError, Identity, new_nonce, prove, transcript, verify
from learnhub.peers.wire import _INCOMPLETE, ReplyParser
from learnhub.server.resp import ErrorReply, encode_reply

SECRET = b"0123456789abcdef0123456789abcdef"


def test_defaults_and_a_full_section(tmp_path) -> None:
    config = parse_peers_config(None)
    assert config.listen_address == ("0.0.0.0", 7433) and config.dht is None
    secret = tmp_path / "s"
    secret.write_bytes(SECRET + b"\n")
    config = parse_peers_config(
        {
            "listen": "127.0.0.1:9000",
            "peers": ["10.0.0.2", "10.0.0.3:7500", "[::1]:7433"],
            "secret_file": str(secret),
            "want": ["asc/*"],
            "margin": 0.01,
            "digest_interval": "500ms",
            "dht": ["10.0.0.2:7434"],
            "import": {"deny_nodes": ["bad*"], "allow_addresses": ["10.0.0.0/8"]},
            "export": {"deny_keys": ["private/*"]},
        }
    )
    assert config.static_peers() == ["10.0.0.2:7433", "10.0.0.3:7500", "[::1]:7433"]
    assert config.cluster_secret() == SECRET
    assert config.digest_interval == 0.5
    assert config.dht_nodes() == [("10.0.0.2", 7434)]
    assert config.import_.deny_nodes == ("bad*",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"listne": "x"}, "unknown key 'peers.listne'"),
        ({"listen": "nowhere:port"}, "HOST:PORT"),
        ({"peers": "10.0.0.2:7433"}, 'write ["10.0.0.2:7433"]'),
        ({"peers": ["10.0.0.2:99999"]}, "HOST:PORT"),
        ({"secret": "short"}, "at least 16 bytes"),
        ({"secret": "x" * 20, "secret_file": "/f"}, "not both"),
        ({"trust": ["abc"]}, "NODE_ID:PUBLIC_KEY"),
        ({"trust": ["abc:" + "zz" * 32]}, "NODE_ID:PUBLIC_KEY"),
        ({"margin": -1}, "'peers.margin' must be a number >= 0"),
        ({"margin": True}, "'peers.margin'"),
        ({"digest_interval": "soon"}, "'peers.digest_interval' must be a positive duration"),
        ({"chunk_size": 10}, "'peers.chunk_size' must be an integer >= 4096"),
        (
            {
                "import": {"deny_node": ["x"]},
            },
            "unknown key 'peers.import.deny_node'",
        ),
        ({"export": {"allow_keys": "a/*"}}, 'write ["a/*"]'),
        ({"import": {"allow_addresses": ["10.0.0.0/33"]}}, "is not a network"),
        ({"dht": ["host:notaport"]}, "DHT node"),
    ],
)
def test_bad_config_is_a_clear_error(values, message) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_peers_config(values)
    assert message in str(info.value)


def test_a_secret_file_that_is_missing_or_short(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read 'peers.secret_file'"):
        PeersConfig(secret_file=str(tmp_path / "none")).cluster_secret()
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ConfigError, match="at least 16"):
        PeersConfig(secret_file=str(tmp_path / "short")).cluster_secret()


def test_policies_deny_wins_and_allow_lists_restrict() -> None:
    policy = Policy(
        allow_nodes=("good*",),
        deny_nodes=("goodbutbanned",),
        allow_addresses=("10.0.0.0/8", "127.0.0.1"),
        deny_addresses=("10.9.*",),
        allow_keys=("asc/*",),
        deny_keys=("asc/private/*",),
    )
    assert policy.refuses("good1", "10.0.0.2:7433", "asc/ls") is None
    assert "deny_nodes 'goodbutbanned'" in policy.refuses("goodbutbanned", None, None)
    assert "not in allow_nodes" in policy.refuses("other", None, None)
    assert "deny_addresses" in policy.refuses("good1", "10.9.0.1:7433", None)
    assert "not in allow_addresses" in policy.refuses("good1", "192.168.1.1:7433", None)
    assert policy.refuses("good1", "127.0.0.1:7433", None) is None
    assert "deny_keys 'asc/private/*'" in policy.refuses(None, None, "asc/private/x")
    assert "not in allow_keys" in policy.refuses(None, None, "model/x")
    assert Policy().refuses("anyone", "1.2.3.4:5", "any/key") is None


def _handshake(client: Identity, server: Identity, secret: bytes | None):
    mine = (client.node_id, client.public_key, new_nonce())
    theirs = (server.node_id, server.public_key, new_nonce())
    data = transcript("client", mine, theirs)
    return data, prove(client, secret, data)


def _identity(node: str) -> Identity:
    return Identity(node, secrets.token_bytes(32))


def test_handshake_proofs() -> None:
    a, b = _identity("nodea"), _identity("nodeb")
    data, (sig, mac) = _handshake(a, b, SECRET)
    assert verify("nodea", a.public_key, sig, mac, data, SECRET, {}) == "secret"
    with pytest.raises(AuthError, match="wrong cluster secret"):
        verify("nodea", a.public_key, sig, mac, data, b"another secret of enough bytes", {})
    # A replay: the same proof against a transcript with fresh nonces.
    fresh, _ = _handshake(a, b, SECRET)
    with pytest.raises(AuthError, match="signature does not match"):
        verify("nodea", a.public_key, sig, mac, fresh, SECRET, {})
    # Claiming another node's key without holding it.
    with pytest.raises(AuthError, match="signature does not match"):
        verify("nodea", b.public_key, sig, mac, data, SECRET, {})
    # Trust by key, no secret.
    data, (sig, mac) = _handshake(a, b, None)
    assert mac == ""
    assert verify("nodea", a.public_key, sig, mac, data, None, {"nodea": a.public_key}) == (
        "trusted key"
    )
    with pytest.raises(AuthError, match="not trusted"):
        verify("nodea", a.public_key, sig, mac, data, None, {"other": b.public_key})
    with pytest.raises(AuthError, match="trusts no peer yet"):
        verify("nodea", a.public_key, sig, mac, data, None, {})
    assert a.ident == f"nodea:{a.public_key}" and len(a.public_key) == 64


REPLIES = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=300),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@given(st.lists(REPLIES, min_size=1, max_size=5), st.integers(1, 50))
def test_reply_parser_reads_what_the_server_encodes(values, step) -> None:
    data = b"".join(encode_reply(v) for v in values) + encode_reply(ErrorReply("DENIED no"))
    parser = ReplyParser()
    got = []
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        while (reply := parser.next_reply()) is not _INCOMPLETE:
            got.append(reply)
    assert got[:-1] == values
    assert isinstance(got[-1], ErrorReply) and got[-1] == "DENIED no"


def test_idle_settings() -> None:
    config = parse_peers_config({"idle_load": 0.5, "idle_interval": "5m", "idle_batch": 3})
    assert (config.idle_load, config.idle_interval, config.idle_batch) == (0.5, 300.0, 3)
    with pytest.raises(ConfigError, match="'peers.idle_load' must be a load average > 0"):
        parse_peers_config({"idle_load": 0})
    with pytest.raises(ConfigError, match="'peers.idle_batch'"):
        parse_peers_config({"idle_batch": 0})
