"""The worker threads that run blocking commands, the most recently idle one first.

ThreadPoolExecutor's idle threads take turns: after a burst of concurrent clients has
started many of them, even a lone client's commands land on a different thread each time.
Each thread has its own SQLite connection, and a connection's page cache is reset whenever
another connection has committed since its last use, so every command then re-reads its
pages (and starts on a thread whose CPU caches are cold). Handing work to the thread that
finished last keeps a steady client on one thread and one warm connection.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Slot:
    """One worker thread's mailbox: the item it is given, and the event that wakes it."""

    def __init__(self) -> None:
        self.item: _Item | None = None
        self.wake = threading.Event()


class WarmPool(Executor):
    """An executor of up to ``max_workers`` threads, started as needed, never more than the
    work in flight needs; idle threads are reused last-in, first-out."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "pool") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._idle: list[_Slot] = []  # a stack: the most recently idle on top
        self._backlog: deque[_Item] = deque()  # work waiting for a thread (all busy)
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        item: _Item = (future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._idle:
                slot = self._idle.pop()
                slot.item = item
                slot.wake.set()
            elif len(self._threads) < self._max:
                slot = _Slot()
                slot.item = item
                thread = threading.Thread(
                    target=self._work,
                    args=(slot,),
                    name=f"{self._prefix}_{len(self._threads)}",
                    daemon=True,  # shutdown() joins them; a forgotten pool never blocks exit
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._backlog.append(item)
        return future

    def _work(self, slot: _Slot) -> None:
        item = slot.item
        while item is not None:
            future, fn, args, kwargs = item
            result: Any = None
            error: BaseException | None = None
            run = future.set_running_or_notify_cancel()
            if run:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # as ThreadPoolExecutor: the future carries it
                    error = exc
            # Back on the idle stack before the caller hears of the result: its next command,
            # sent as soon as it does, then finds this thread on top, not another one.
            idle = False
            with self._lock:
                if self._backlog:
                    item = self._backlog.popleft()
                elif self._shutdown:
                    item = None
                else:
                    item = slot.item = None
                    slot.wake.clear()
                    self._idle.append(slot)
                    idle = True
            if run:
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            del future, fn, args, kwargs, result, error  # no references kept while idle
            if idle:
                slot.wake.wait()
                item = slot.item

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; threads finish what they run and what is queued (unless
        ``cancel_futures``), then exit; with ``wait``, return once they have."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._backlog:
                    self._backlog.popleft()[0].cancel()
            for slot in self._idle:
                slot.item = None
                slot.wake.set()
            self._idle.clear()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
