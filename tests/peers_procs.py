"""Hubs as separate processes for the peer tests: ``python -m learnhub.peers`` on 127.0.0.1,
each on a port the system picks (read back from its READY line)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import learnhub

SECRET = "0123456789abcdef0123456789abcdef"


class HubProc:
    """One hub process: its store, peer port, node id and (optionally) RESP socket."""

    def __init__(
        self,
        store: str,
        *,
        peers: list[str] = (),
        secret_file: Path | None = None,
        socket: Path | None = None,
        config: dict[str, Any] | None = None,
        fault: str | None = None,
        lookup_timeout: str | None = None,
        listen: str = "127.0.0.1:0",
        extra: list[str] = (),
        prefix: list[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.socket = socket
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "learnhub.peers",
            "--store",
            store,
            "--listen",
            listen,
        ]
        for p in peers:
            cmd += ["--peer", p]
        if secret_file:
            cmd += ["--secret-file", str(secret_file)]
        if socket:
            cmd += ["--socket", str(socket)]
        if config:
            cmd += ["--config-json", json.dumps(config)]
        if lookup_timeout:
            cmd += ["--lookup-timeout", lookup_timeout]
        cmd += list(extra)
        env = {**os.environ, **(env or {})}
        if fault:
            env["LEARNHUB_PEERS_FAULT"] = fault
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.node_id = self.ident = ""
        self.port = self.dht_port = 0

    def _pump_out(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def wait_ready(self, timeout: float = 60.0) -> HubProc:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"hub not ready in {timeout}s: {''.join(self.log)}") from None
            if line is None:
                self.proc.wait()
                raise AssertionError(f"hub exited {self.proc.returncode}: {''.join(self.log)}")
            if line.startswith("READY "):
                fields = dict(f.split("=", 1) for f in line.split()[1:])
                self.node_id, self.ident = fields["node"], fields["ident"]
                self.port, self.dht_port = int(fields["port"]), int(fields["dht"])
                if self.socket:
                    from conftest import can_connect, wait_for

                    wait_for(lambda: can_connect(self.socket), what="hub socket")
                return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"<HubProc {self.node_id} :{self.port}>"

    def client(self) -> learnhub.Client:
        assert self.socket is not None
        return learnhub.connect(socket=self.socket)

    def logs(self) -> str:
        return "".join(self.log)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def open_store(url: str) -> learnhub.Hub:
    """The hub's store opened in the test process (SQLite and PostgreSQL allow a second
    process), to check what landed."""
    return learnhub.open(url)


class RawPeer:
    """A hand-driven peer-link client (a fresh identity) for bad-input and handshake tests."""

    def __init__(self, address: str, node_id: str = "rawtestnode00001") -> None:
        import secrets
        import socket

        from learnhub.peers.identity import Identity
        from learnhub.peers.wire import ReplyParser

        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.parser = ReplyParser()
        self.identity = Identity(node_id, secrets.token_bytes(32))
        self.sent: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args: Any) -> Any:
        from learnhub.peers.wire import encode_command

        data = encode_command(*args)
        self.sent.append(data)
        self.sock.sendall(data)
        return self.read()

    def read(self) -> Any:
        from learnhub.peers.wire import _INCOMPLETE

        while True:
            reply = self.parser.next_reply()
            if reply is not _INCOMPLETE:
                return reply
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed by the hub")
            self.parser.feed(data)

    def hello(self, secret: bytes | None) -> Any:
        """The client half of the handshake; returns the hub's answer to the proof."""
        from learnhub.peers.identity import PROTOCOL, new_nonce, prove, transcript

        me = self.identity
        nonce = new_nonce()
        reply = self.call("PEER.HELLO", PROTOCOL, me.node_id, me.public_key, nonce, ":0")
        node, pub, nonce_s = (x.decode() for x in reply[:3])
        data = transcript("client", (me.node_id, me.public_key, nonce), (node, pub, nonce_s))
        signature, mac = prove(me, secret, data)
        return self.call("PEER.HELLO", "PROOF", signature, mac)

    def close(self) -> None:
        self.sock.close()
