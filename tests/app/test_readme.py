"""The README's examples run as written (a newcomer copies them first)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _itb_check_examples() -> list[list[str]]:
    """Return the argument lists of every ``itb check`` command in the README's ```sh blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [block.replace("\\\n", " ") for block in re.findall(r"```sh\n(.*?)```", text, re.S)]
    return [shlex.split(m) for block in blocks for m in re.findall(r"itb check ([^\n]+)", block)]


def test_the_readme_check_example_runs_and_passes() -> None:
    examples = _itb_check_examples()
    assert examples, "the README shows how to run a check"
    for arguments in examples:
        result = subprocess.run(  # noqa: S603 - our own CLI with the README's arguments
            [sys.executable, "-m", "plugin.check_cli", *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Verdict: PASS" in result.stdout
