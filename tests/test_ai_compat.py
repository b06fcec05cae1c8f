"""RedisAI users' own client against a hub: the `redisai` package (redisai-py 1.3.0, made for
RedisAI 1.2.7) runs tests/redisai_client_script.py on the hub's socket.

redisai 1.3.0 pins redis<5 (and its tests pytest<8), so it cannot share our virtualenv: a
session fixture makes /work/main/.venv-redisai (ignored by git) once, with pip from PyPI, and
reuses it while it works.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ai_fixtures
from ai_fixtures import AIServer
from ai_models import TORCH_SCRIPT, onnx_add_model, torch_model_bytes

# A hub served in-process on each store backend (see ai_fixtures.py).
ai_server = ai_fixtures.ai_server

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-redisai"
SCRIPT = Path(__file__).resolve().parent / "redisai_client_script.py"
# setuptools: redisai 1.3.0 imports pkg_resources, which Python 3.12+ venvs no longer carry.
REQUIREMENTS = ["redisai==1.3.0", "setuptools<81"]
PIP_TIMEOUT = 900  # seconds
RUN_TIMEOUT = 300  # seconds for the whole client script

# Every check of the script, in the order it runs them (it prints "ok <name>" for each).
CHECKS = [
    "tensorset_tensorget_numpy",
    "tensorget_values_and_meta_only",
    "tensorset_from_lists",
    "string_tensors",
    "dtypes_redisai_lacks_are_refused",
    "pipeline_without_transaction",
    "modelstore_in_chunks_and_modelget",
    "modelexecute_and_modelrun",
    "modelscan_and_modeldel",
    "infoget_and_inforeset",
    "scriptstore_and_scriptexecute",
    "dag_with_load_and_persist",
    "dag_readonly",
    "dag_error_then_na",
    "dag_deprecated_dagrun",
]


def _usable(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, redisai, numpy;"
            "assert m.version('redisai') == '1.3.0', m.version('redisai')",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def redisai_python() -> Iterator[Path]:
    """The python of a virtualenv with redisai 1.3.0: made once, reused while it works."""
    python = VENV / "bin" / "python"
    # One maker at a time (parallel sessions, CI jobs sharing a checkout).
    lock_path = Path(tempfile.gettempdir()) / f"learnhub-venv-redisai-{os.getuid()}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(python):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
                + REQUIREMENTS,
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT,
                check=False,
            )
            if pip.returncode != 0:
                pytest.fail(
                    f"could not install {' '.join(REQUIREMENTS)} into {VENV}: pip needs PyPI "
                    f"(or a configured index). pip said:\n{pip.stdout}\n{pip.stderr}"
                )
            if not _usable(python):
                pytest.fail(f"{VENV} was made but cannot import redisai 1.3.0")
    yield python


@pytest.fixture
def model_files(tmp_path: Path) -> Path:
    """The models and script the client script stores, built here with onnx and torch."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "add.onnx").write_bytes(onnx_add_model())
    (folder / "add.pt").write_bytes(torch_model_bytes())
    (folder / "script.py").write_text(TORCH_SCRIPT)
    return folder


def test_redisai_client(ai_server: AIServer, redisai_python: Path, model_files: Path) -> None:
    run = subprocess.run(
        [
            str(redisai_python),
            str(SCRIPT),
            "--socket",
            str(ai_server.socket_path),
            "--models",
            str(model_files),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    report = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, report
    assert run.stdout.splitlines() == [f"ok {name}" for name in CHECKS], report
