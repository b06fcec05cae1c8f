"""A stop signal that lands while the worker loop holds the lock of its wake-up Event.

The handler runs on the main thread between two bytecodes, wherever the loop happens to be;
if it set that Event itself it would wait forever for a lock its own thread holds. The
moment is made certain here: the loop's Event holds its lock in ``clear()`` (waiting in
short slices, so the handler runs there) until the test has sent SIGTERM and seen the
worker asked to stop (CPython's Event keeps its lock in ``_cond``). It runs in a process of
its own, so a deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, signal, sys, threading
import learnhub
from learnhub.jobs.worker import run_worker

inside, gate = threading.Event(), threading.Event()

class HeldClear(threading.Event):
    def clear(self):
        with self._cond:
            if not gate.is_set():
                inside.set()
                # In slices, as the worker loop waits: the handler runs here, lock held.
                while not gate.wait(0.05):
                    pass
            self._flag = False

def deliver():
    inside.wait(60)
    os.kill(os.getpid(), signal.SIGTERM)
    worker._stopping.wait(60)
    gate.set()

with learnhub.open(sys.argv[1]) as hub:
    worker = hub.worker(concurrency=1)
    worker._wakeup = HeldClear()
    threading.Thread(target=deliver, daemon=True).start()
    run_worker(worker)
print("stopped", worker._stopping.is_set())
"""


def test_sigterm_while_the_loop_holds_its_wakeup_lock_stops_the_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"the worker did not stop within 60 s of SIGTERM:\n{out}") from None
    assert proc.returncode == 0, out
    assert out.strip().endswith("stopped True"), out
