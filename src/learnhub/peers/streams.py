"""Serving a file in chunks: read from the store in order, a few chunks ahead of the link.

A fetch asks for a file's chunks in order (pipelined). Each served file gets a *stream*: a
thread that takes parts from ``hub.learning.iter_file`` (one read transaction, one blob
handle) while the loop sends earlier ones, so reading the store overlaps sending and each
byte is read once; nothing loads the whole artifact. A stream left untaken gives its thread
back after ``IDLE_S``; a request it cannot answer (another file, offset or size) starts a
new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Parts read ahead of the link. Few: reading a part (0.1-0.3 ms a MiB from SQLite) is no
# slower than sending it, and every part in flight is a fresh 1 MiB allocation that glibc
# trims from the thread's arena and faults back in: with 8 ahead, 4,500 page faults per
# 50 MB served (7 ms of the reading thread's 15); with 3, about 2,000.
AHEAD = 3
IDLE_S = 10.0
_END = object()
_GAVE_UP = object()


class FileStream:
    def __init__(
        self, pool: ThreadPoolExecutor, learning: Any, ident: tuple[str, str, str], offset: int,
        part: int,
    ) -> None:  # fmt: skip
        self.ident = ident
        self.part = part
        self.offset = offset  # of the next part to hand out
        self._loop = asyncio.get_running_loop()
        self._parts: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(AHEAD)
        self._stop = threading.Event()
        self.ended = False
        pool.submit(self._run, learning)

    def _run(self, learning: Any) -> None:
        key, version, name = self.ident
        parts = learning.iter_file(key, version, name, self.part, self.offset)
        try:
            for data in parts:
                # No one took a part for a while, or the stream was closed: give the thread back.
                if not self._room.acquire(timeout=IDLE_S) or self._stop.is_set():
                    self._put(_GAVE_UP)
                    return
                self._put(data)
            self._put(_END)
        except BaseException as exc:
            self._put(exc)
        finally:
            parts.close()  # ends the read transaction on this thread

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._parts.put_nowait, item)

    def serves(self, ident: tuple[str, str, str], offset: int, count: int) -> bool:
        return (
            not self.ended
            and ident == self.ident
            and offset == self.offset
            and (count == self.part)
        )

    async def take(self) -> bytes | None:
        """The next part (b"" past the end); None if the stream gave up (start another)."""
        item = await self._parts.get()
        self._room.release()
        if isinstance(item, BaseException):
            self.ended = True
            raise item
        if item is _END or item is _GAVE_UP:
            self.ended = True
            return b"" if item is _END else None
        self.offset += len(item)
        return item

    def close(self) -> None:
        self.ended = True
        self._stop.set()
        self._room.release()  # wake the thread if it waits for room
