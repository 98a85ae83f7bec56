"""Run the load test with two clinicians so the script cannot rot (PostgreSQL when configured, else SQLite).

The clinicians run one after the other and the workers run no outbox thread, so the only outbox sender is
each submission's own first attempt: the run is deterministic. The full run is
``tests/load/loadtest.py`` (50 clinicians, 10 at a time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("loadtest.py")


def test_the_load_test_runs_two_clinicians_without_errors_duplicates_or_leftovers() -> None:
    completed = subprocess.run(  # noqa: S603 - our own script
        [
            sys.executable,
            str(SCRIPT),
            "--clinicians",
            "2",
            "--concurrency",
            "1",
            "--outbox-runner",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    start = completed.stdout.find("{\n")
    assert start >= 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    report = json.loads(completed.stdout[start:])
    assert report["problems"] == [], report
    assert completed.returncode == 0
    assert {step: row["count"] for step, row in report["steps"].items()} == {
        "launch": 2,
        "check": 6,
        "preview": 2,
        "submit": 2,
    }
    assert report["notes_in_ehr"] == report["unique_note_ids"] == 2
    assert report["audit_intact"] and report["outbox_outstanding"] == 0
    assert report["requests_per_second"] > 0
