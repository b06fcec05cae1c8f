"""The README's commands are the ones CI runs and the ones that exist."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci_lines if line.startswith("python3 -m venv"))
    assert command in (ROOT / "README.md").read_text()


def test_readme_demo_command_uses_the_demo():
    readme = (ROOT / "README.md").read_text()
    assert "learnhub demo" in readme
