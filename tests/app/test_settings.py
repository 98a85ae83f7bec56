"""App settings as a deployment gives them: environment variables, relative paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_relative_instance_path_is_taken_from_the_working_directory(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-c", "from plugin.app import create_app; print(create_app().instance_path)"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ITB_INSTANCE_PATH": "instance"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "instance")
    assert (tmp_path / "instance" / "itb.sqlite").exists()
