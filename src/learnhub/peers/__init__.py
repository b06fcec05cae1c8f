"""Peers: the hub-to-hub link (RESP over TCP, authenticated), static and DHT discovery,
import/export policies. See ``service`` for how the parts fit, ``protocol`` for the commands."""

from learnhub.peers.config import PeersConfig, Policy, parse_peers_config
from learnhub.peers.identity import AuthError, Identity
from learnhub.peers.service import PeerService, PeerSource
from learnhub.peers.wire import PeerError

__all__ = [
    "AuthError",
    "Identity",
    "PeerError",
    "PeerService",
    "PeerSource",
    "PeersConfig",
    "Policy",
    "parse_peers_config",
]
