"""Who listens to which channel, and delivery of messages to them from any thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from learnhub._glob import glob_match
from learnhub.server.resp import Push, encode_reply

if TYPE_CHECKING:
    from learnhub.server.commands import Session


class PubSub:
    def __init__(self) -> None:
        self._sessions: dict[int, Session] = {}
        self._lock = threading.Lock()  # publishers run on command and worker threads

    def update(self, session: Session) -> None:
        """Track ``session`` while it listens to anything, forget it when it stops."""
        with self._lock:
            if session.channels or session.patterns:
                self._sessions[session.id] = session
            else:
                self._sessions.pop(session.id, None)

    def publish(self, channel: str, message: bytes | str) -> int:
        """Send ``message`` to every listener of ``channel``; how many received it."""
        with self._lock:
            sessions = list(self._sessions.values())
        count = 0
        for s in sessions:
            if s.send is None:
                continue
            if channel in s.channels:
                s.send(encode_reply(Push(["message", channel, message]), s.resp3))
                count += 1
            for pattern in s.patterns:
                if glob_match(pattern, channel):
                    s.send(encode_reply(Push(["pmessage", pattern, channel, message]), s.resp3))
                    count += 1
        return count

    def key_event(self, key: str, event: str) -> None:
        """A keyspace notification, as Redis sends them for a write to ``key``."""
        if self._sessions:
            self.publish(f"__keyspace@0__:{key}", event)
            self.publish(f"__keyevent@0__:{event}", key)
