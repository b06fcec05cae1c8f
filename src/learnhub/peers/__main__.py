"""Run a hub's peer service as a process of its own (tests, benchmarks, or before it is wired
into ``learnhub serve``)::

    python -m learnhub.peers --store sqlite:///hub.db --listen 127.0.0.1:7433 \\
        --peer 10.0.0.2:7433 --secret-file cluster.secret [--socket /tmp/hub.sock]

With ``--socket`` it also serves the hub's RESP door there (LOOKUP misses ask the peers).
It prints one line ``READY node=... ident=... port=... dht=...`` once it listens, and runs
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace

import learnhub
from learnhub.errors import LearnhubError
from learnhub.peers.config import parse_peers_config
from learnhub.peers.service import PeerService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learnhub.peers", description=__doc__)
    parser.add_argument("--store", required=True, help="store URL of the hub")
    parser.add_argument("--listen", default=None, help="HOST:PORT of the peer link")
    parser.add_argument("--peer", action="append", default=[], help="a static peer HOST:PORT")
    parser.add_argument("--secret-file", help="the shared cluster secret")
    parser.add_argument("--trust", action="append", default=[], help="NODE_ID:PUBLIC_KEY")
    parser.add_argument("--want", action="append", default=[], help="key pattern to follow")
    parser.add_argument("--dht", action="append", default=None, help="DHT bootstrap HOST:PORT")
    parser.add_argument("--dht-listen", default=None, help="HOST:PORT of the DHT (UDP)")
    parser.add_argument("--config-json", default=None, help="more [peers] settings, as JSON")
    parser.add_argument("--socket", default=None, help="also serve the hub's RESP door here")
    parser.add_argument("--lookup-timeout", default=None, help="learning.lookup_timeout")
    parser.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="PATTERN=MODULE:FUNCTION",
        help="an offline training function for keys matching PATTERN (with peers.idle_load)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s", stream=sys.stderr
    )
    logging.getLogger("learnhub").setLevel(os.environ.get("LEARNHUB_PEERS_LOG", "INFO"))
    try:
        values = json.loads(args.config_json) if args.config_json else {}
        if args.listen:
            values["listen"] = args.listen
        if args.peer:
            values["peers"] = args.peer
        if args.secret_file:
            values["secret_file"] = args.secret_file
        if args.trust:
            values["trust"] = args.trust
        if args.want:
            values["want"] = args.want
        if args.dht is not None:
            values["dht"] = [d for d in args.dht if d]
        if args.dht_listen:
            values["dht_listen"] = args.dht_listen
        config = parse_peers_config(values)
        hub = learnhub.open(args.store)
    except (LearnhubError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with hub:
        if args.lookup_timeout:  # on top of the configured [learning], not instead of it
            current = hub.learning.policies.config
            hub.learning.configure(replace(current, lookup_timeout=args.lookup_timeout))
        try:
            service = PeerService(hub, config, fault=os.environ.get("LEARNHUB_PEERS_FAULT"))
            service.start()
        except LearnhubError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        hub.learning.elsewhere.add(service.source)
        try:
            for spec in args.train:
                pattern, _, target = spec.partition("=")
                service.offline.register(pattern, _import(target))
        except (ImportError, AttributeError, LearnhubError) as exc:
            print(f"error: --train: {exc}", file=sys.stderr)
            service.stop()
            return 2
        dht_port = service.dht.port if service.dht else 0
        print(
            f"READY node={hub.node_id} ident={service.identity.ident} port={service.port} "
            f"dht={dht_port}",
            flush=True,
        )
        try:
            if args.socket:
                from pathlib import Path

                from learnhub.server.app import Server

                asyncio.run(Server(hub, Path(args.socket)).serve_forever())
            else:
                # A flag, not an Event: a handler that takes a lock can deadlock on it, and
                # a blocking wait can miss a signal that lands just before it.
                stop: list[int] = []
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda signum, _: stop.append(signum))
                while not stop:
                    time.sleep(0.1)
        finally:
            hub.learning.elsewhere.remove(service.source)
            service.stop()
    return 0


def _import(target: str):
    import importlib

    module, _, name = target.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")
    return getattr(importlib.import_module(module), name)


if __name__ == "__main__":
    sys.exit(main())
