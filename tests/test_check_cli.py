"""``itb check`` end to end: scenario Bundles in tests/scenarios, exit codes and JSON (CONTRACT §2, §3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from plugin.check_cli import check

SCENARIOS = Path(__file__).parent / "scenarios"
AT = "2026-11-20T10:00:00Z"


def invoke(*args: str) -> Result:
    """Run ``itb check`` in-process with ``args``."""
    return CliRunner().invoke(check, list(args), prog_name="itb check")


def check_scenario(name: str, proposed: str = "440 ug/d", *extra: str) -> tuple[int, dict[str, Any]]:
    """Run a scenario and return the exit code and the parsed JSON."""
    result = invoke("--bundle", str(SCENARIOS / f"{name}.json"), "--proposed", proposed, "--at", AT, *extra)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def codes(data: dict[str, Any]) -> set[str]:
    """Return the finding codes of a JSON result."""
    return {f["code"] for f in data["findings"]}


@pytest.mark.parametrize(
    ("scenario", "current_ug", "source"),
    [
        ("dose-ug-per-day", 400.0, "MedicationStatement/itb-dose"),
        ("dose-ug-per-hour", 480.0, "MedicationStatement/itb-dose"),
        ("dose-ml-per-hour", 480.0, "MedicationStatement/itb-dose"),
        ("dose-flex-schedule", 450.0, "MedicationStatement/itb-dose"),
        ("dose-request-only", 400.0, "MedicationRequest/itb-order"),
    ],
)
def test_each_dose_form_gives_the_current_daily_dose_and_passes(
    scenario: str, current_ug: float, source: str
) -> None:
    exit_code, data = check_scenario(scenario, f"{current_ug * 0.9:g} ug/d")
    assert data["current_dose"]["value"] == pytest.approx(current_ug)
    assert data["current_dose"] == {"value": data["current_dose"]["value"], "unit": "ug/d", "source": source}
    assert data["change_percent"] == -10.0
    assert (exit_code, data["verdict"], data["findings"]) == (0, "pass", [])
    assert data["patient"] == "Patient/p1" and data["evaluated_at"] == "2026-11-20T10:00:00+00:00"
    assert (
        data["origin"] == "spinal" and data["phase"] == "maintenance" and data["rules_version"] == "2026.12-1"
    )


@pytest.mark.parametrize("proposed", ["480 ug/d", "480 mcg/day", "480 ug/(24.h)", "20 ug/h", "0.48 mg/d"])
def test_every_contract_dose_spelling_means_480_ug_per_day(proposed: str) -> None:
    exit_code, data = check_scenario("dose-ug-per-day", proposed)
    assert data["proposed_dose"] == {"value": pytest.approx(480.0), "unit": "ug/d"}
    assert data["change_percent"] == 20.0 and exit_code == 0


def test_increase_over_the_limit_blocks_with_exit_2() -> None:
    exit_code, data = check_scenario("dose-ug-per-day", "600 ug/d")
    assert exit_code == 2 and data["verdict"] == "block"
    assert "increase-over-limit" in codes(data)


def test_phase_and_origin_options_override_the_chart() -> None:
    exit_code, data = check_scenario(
        "dose-ug-per-day", "500 ug/d", "--phase", "titration", "--origin", "cerebral"
    )
    assert (data["phase"], data["origin"]) == ("titration", "cerebral")
    assert exit_code == 2 and "15 % per 24 h" in " ".join(f["message"] for f in data["findings"])


def test_withdrawal_signs_warn_with_exit_1() -> None:
    exit_code, data = check_scenario("withdrawal-fever")
    assert exit_code == 1 and data["verdict"] == "warn"
    finding = next(f for f in data["findings"] if f["code"] == "withdrawal-signs")
    assert set(finding["evidence"]) == {"Observation/temp", "Observation/bp"}
    assert "38.4 Cel" in finding["message"] and "86 mm[Hg]" in finding["message"]


@pytest.mark.parametrize(
    ("scenario", "expected_codes"),
    [
        ("conflicting-doses", {"conflicting-current-doses"}),
        ("unreadable-dose", {"current-dose-unknown", "unit-unconvertible"}),
        ("no-itb-record", {"current-dose-unknown"}),
    ],
)
def test_no_established_current_dose_is_cannot_check_exit_3(scenario: str, expected_codes: set[str]) -> None:
    exit_code, data = check_scenario(scenario)
    assert exit_code == 3 and data["verdict"] == "cannot-check"
    assert data["current_dose"] is None and data["change_percent"] is None
    assert expected_codes <= codes(data)


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("no-patient", "no Patient"),
        ("two-patients", "more than one Patient"),
        ("not-a-bundle", "not a FHIR Bundle"),
        ("not-json", "is not JSON"),
        ("missing-file", "not found"),
    ],
)
def test_invalid_input_exits_65_with_one_line_on_stderr(scenario: str, reason: str) -> None:
    result = invoke("--bundle", str(SCENARIOS / f"{scenario}.json"), "--proposed", "440 ug/d", "--at", AT)
    assert result.exit_code == 65
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and reason in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--proposed", "440 ug/d"],  # no --bundle
        ["--bundle", "x.json"],  # no --proposed
        ["--bundle", "x.json", "--proposed", "440"],
        ["--bundle", "x.json", "--proposed", "2 tablets"],
        ["--bundle", "x.json", "--proposed", "-10 ug/d"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--at", "yesterday"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--at", "2026-11-20T10:00:00"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--phase", "induction"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--origin", "unknown"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--format", "xml"],
        ["--bundle", "x.json", "--proposed", "440 ug/d", "--bogus"],
    ],
)
def test_usage_errors_exit_64(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 64, result.output
    assert "Error" in result.stderr


def test_help_exits_0() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "--proposed" in result.stdout


def test_usage_errors_exit_64_inside_a_parent_group() -> None:
    @click.group()
    def itb() -> None:
        """Stand-in for the itb group."""

    itb.add_command(check)
    runner = CliRunner()
    assert runner.invoke(itb, ["check", "--proposed", "x"]).exit_code == 64
    assert runner.invoke(itb, ["check", "--help"]).exit_code == 0


def test_at_with_an_offset_is_converted_to_utc() -> None:
    path = str(SCENARIOS / "dose-ug-per-day.json")
    result = invoke("--bundle", path, "--proposed", "440 ug/d", "--at", "2026-11-20T11:00:00+01:00")
    assert json.loads(result.stdout)["evaluated_at"] == "2026-11-20T10:00:00+00:00"


def test_text_format_puts_the_verdict_first_then_findings_then_numbers() -> None:
    path = str(SCENARIOS / "dose-ug-per-day.json")
    result = invoke("--bundle", path, "--proposed", "600 ug/d", "--at", AT, "--format", "text")
    lines = result.stdout.splitlines()
    assert result.exit_code == 2
    assert lines[0] == "Verdict: BLOCK"
    assert lines[2].startswith("BLOCK (") and "[increase-over-limit]" in result.stdout
    for label in (
        "Current dose:  400 ug/d",
        "Proposed dose: 600 ug/d",
        "Change:        +50.0 %",
        "Origin:",
        "Phase:",
    ):
        assert label in result.stdout
    assert "low-reservoir alarm in" in result.stdout


def test_internal_error_exits_70_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("plugin.check_cli.run_check", explode)
    result = invoke("--bundle", str(SCENARIOS / "dose-ug-per-day.json"), "--proposed", "440 ug/d", "--at", AT)
    assert result.exit_code == 70
    assert result.stderr.strip() == "itb check: internal error: RuntimeError: boom second line"


def test_broken_rules_file_exits_70(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('rules_version = "x"\n', encoding="utf-8")
    monkeypatch.setenv("ITB_RULES_PATH", str(bad))
    result = invoke("--bundle", str(SCENARIOS / "dose-ug-per-day.json"), "--proposed", "440 ug/d", "--at", AT)
    assert result.exit_code == 70 and "configuration error" in result.stderr


def test_real_subprocess_run() -> None:
    completed = subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "plugin.check_cli",
            "--bundle",
            str(SCENARIOS / "dose-ug-per-day.json"),
            "--proposed",
            "600 ug/d",
            "--at",
            AT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert json.loads(completed.stdout)["verdict"] == "block"
    bad = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "plugin.check_cli", "--bundle", "x.json", "--proposed", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 64
