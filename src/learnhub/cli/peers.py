"""Peer commands: ``learnhub peers ls|add|rm|trust|status|id``."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

import learnhub
from learnhub.cli.base import cli, common_options, open_hub, out
from learnhub.errors import ConfigError, InvalidInput
from learnhub.peers.config import PeersConfig, address, parse_trust
from learnhub.peers.config import _host_port as host_port
from learnhub.peers.identity import Identity
from learnhub.peers.service import peer_status
from learnhub.peers.table import PeerTable


def _config(hub: learnhub.Hub) -> PeersConfig:
    """The hub's ``[peers]`` section, once the config carries one; else the defaults."""
    config = getattr(hub.config, "peers", None)
    return config if isinstance(config, PeersConfig) else PeersConfig()


def _address(value: str) -> str:
    try:
        return address(*host_port(value, "a peer address", 7433))
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.group()
def peers() -> None:
    """Hubs this one exchanges learning data with."""


@peers.command(name="id")
@common_options
def id_(db: str | None) -> None:
    """Print NODE_ID:PUBLIC_KEY: what other hubs give `learnhub peers trust` to trust this one."""
    with open_hub(db) as hub:
        click.echo(Identity.of(hub.store, hub.node_id).ident)


@peers.command(name="ls")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(db: str | None, as_json: bool) -> None:
    """List known peers (static, added, learned) and trusted node keys."""
    with open_hub(db) as hub:
        table = PeerTable(hub.store)
        static = _config(hub).static_peers()
        rows = [{"address": a, "source": "static", "node_id": None} for a in static]
        rows += [
            {"address": r["address"], "source": r["source"], "node_id": r["node_id"]}
            for r in table.peers()
            if r["address"] not in static
        ]
        trusted = table.trusted()
    if as_json:
        click.echo(json.dumps({"peers": rows, "trusted": trusted}))
        return
    view = Table("address", "source", "node id", title="peers")
    for r in rows:
        view.add_row(r["address"], r["source"], r["node_id"] or "")
    out.print(view)
    if trusted:
        keys = Table("node id", "public key", title="trusted keys")
        for node_id, key in trusted.items():
            keys.add_row(node_id, key)
        out.print(keys)


@peers.command()
@common_options
@click.argument("peer")
def add(db: str | None, peer: str) -> None:
    """Add PEER (HOST:PORT of its peer link) to the peers this hub talks to."""
    addr = _address(peer)
    with open_hub(db) as hub:
        PeerTable(hub.store).add(addr)
    out.print(f"added peer {addr}")


@peers.command()
@common_options
@click.argument("peer")
def rm(db: str | None, peer: str) -> None:
    """Forget PEER (HOST:PORT); a static peer from the config stays until removed there."""
    addr = _address(peer)
    with open_hub(db) as hub:
        if addr in _config(hub).static_peers():
            raise InvalidInput(f"{addr} is a static peer: remove it from peers.peers in the config")
        if not PeerTable(hub.store).remove(addr):
            raise InvalidInput(f"no peer {addr}; `learnhub peers ls` lists them")
    out.print(f"removed peer {addr}")


@peers.command()
@common_options
@click.argument("ident")
@click.option("--remove", is_flag=True, help="Stop trusting this node id.")
def trust(db: str | None, ident: str, remove: bool) -> None:
    """Trust the node IDENT = NODE_ID:PUBLIC_KEY (as `learnhub peers id` prints it there):
    it may connect without the cluster secret. With --remove, IDENT may be just NODE_ID."""
    with open_hub(db) as hub:
        table = PeerTable(hub.store)
        if remove:
            node_id = ident.partition(":")[0]
            if not table.untrust(node_id):
                raise InvalidInput(f"node {node_id} is not trusted here")
            out.print(f"no longer trusting node {node_id}")
            return
        try:
            node_id, key = parse_trust(ident)
        except ConfigError as exc:
            raise InvalidInput(str(exc)) from None
        table.trust(node_id, key)
    out.print(f"trusting node {node_id}")


@peers.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: str | None, as_json: bool) -> None:
    """Per peer: reachable, last seen, last digest exchange, keys it announced, wants."""
    with open_hub(db) as hub:
        rows: list[dict[str, Any]] = peer_status(PeerTable(hub.store), _config(hub).static_peers())
    if as_json:
        click.echo(json.dumps(rows))
        return
    view = Table("address", "node id", "source", "reachable", "last exchange", "keys", "wants",
                 "last error", title="peers")  # fmt: skip
    for r in rows:
        view.add_row(
            r["address"], r["node_id"] or "", r["source"] or "", "yes" if r["reachable"] else "no",
            r["last_exchange"] or "never", str(r["keys"]), str(r["wants"]), r["last_error"] or "",
        )  # fmt: skip
    out.print(view)
