"""What the benchmark scripts share."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import learnhub


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGINT (also when inherited as ignored), SIGTERM and SIGHUP become KeyboardInterrupt,
    so the benchmark's finally blocks stop its servers, drop its schemas, remove its temp dir."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def learnhub_commit() -> str | None:
    """The commit of the learnhub source measured, + "-dirty" if src/ has uncommitted changes."""
    root = Path(learnhub.__file__).resolve().parents[2]

    def git(*argv: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *argv], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=7", "HEAD")
    if not commit:
        return None
    return commit + ("-dirty" if git("status", "--porcelain", "--", "src") else "")


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
