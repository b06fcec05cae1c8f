"""A hub's identity on the peer link, and the handshake that proves it.

Each hub has a node id (``hub.node_id``) and an Ed25519 key pair, made once and kept in the
store's ``meta`` table, so every process on one database is the same node. A peer is
accepted when it proves either

* that it knows the shared cluster secret (an HMAC of the handshake transcript), or
* that it holds the private key of a trusted ``NODE_ID:PUBLIC_KEY`` (a signature of it).

Both sides contribute a fresh random nonce to the transcript, so a recorded handshake
replayed on a new connection proves nothing, and the secret never crosses the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from learnhub.errors import LearnhubError, ServerError
from learnhub.store import Store

PROTOCOL = "learnhub-peer/1"
NONCE_BYTES = 32


class AuthError(LearnhubError):
    """A peer's handshake was refused (or refused ours)."""


class Identity:
    """This node: its id and key pair."""

    def __init__(self, node_id: str, private_key: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.node_id = node_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.public_key = _raw_public(self._key).hex()

    @property
    def ident(self) -> str:
        """``NODE_ID:PUBLIC_KEY``: what another hub puts in its ``peers.trust`` list."""
        return f"{self.node_id}:{self.public_key}"

    def sign(self, data: bytes) -> str:
        return self._key.sign(data).hex()

    @classmethod
    def of(cls, store: Store, node_id: str) -> Identity:
        """The store's identity; the key pair is made on first use (a race keeps one)."""
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import (
                Encoding,
                NoEncryption,
                PrivateFormat,
            )
        except ImportError as exc:
            raise ServerError(
                "the peer link needs the cryptography package: pip install 'learnhub[p2p]'"
            ) from exc

        fresh = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        with store.transaction() as tx:
            tx.execute("init_meta", name="peer_private_key", value=fresh.hex())
            row = tx.one("get_meta", name="peer_private_key")
        assert row is not None
        return cls(node_id, bytes.fromhex(row["value"]))


def _raw_public(key: object) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)  # type: ignore[attr-defined]


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def transcript(
    role: str,
    client: tuple[str, str, str],
    server: tuple[str, str, str],
) -> bytes:
    """What a side proves: its role, and both sides' (node id, public key, nonce)."""
    return "|".join((PROTOCOL, role, *client, *server)).encode()


def prove(identity: Identity, secret: bytes | None, data: bytes) -> tuple[str, str]:
    """(signature, mac) of ``data``; the mac is empty without a cluster secret."""
    mac = hmac.new(secret, data, hashlib.sha256).hexdigest() if secret else ""
    return identity.sign(data), mac


def verify(
    node_id: str,
    public_key: str,
    signature: str,
    mac: str,
    data: bytes,
    secret: bytes | None,
    trusted: dict[str, str],
) -> str:
    """How the peer proved itself ("secret" or "trusted key"); raises AuthError if it did not.

    The signature is always checked: it binds the node id a peer claims to a key it holds,
    so that node-id policies cannot be met by merely claiming an id.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), data
        )
    except (ValueError, InvalidSignature):
        raise AuthError(f"node {node_id}: its signature does not match its public key") from None
    if (
        secret
        and mac
        and hmac.compare_digest(hmac.new(secret, data, hashlib.sha256).hexdigest(), mac)
    ):
        return "secret"
    if trusted.get(node_id) == public_key.lower():
        return "trusted key"
    if not secret and not trusted:
        raise AuthError(
            "this hub trusts no peer yet: set peers.secret_file (a shared cluster secret) or "
            "add the peer's NODE_ID:PUBLIC_KEY with `learnhub peers trust`"
        )
    why = "a wrong cluster secret" if mac else "no cluster secret"
    raise AuthError(
        f"node {node_id} sent {why} and its key is not trusted here: give both hubs the same "
        "peers.secret_file, or trust it with `learnhub peers trust NODE_ID:PUBLIC_KEY`"
    )
