"""Loading config/rules.toml: the shipped file is valid and cites its sources; bad files name the bad key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from plugin.domain.result import Severity
from plugin.domain.rules_config import (
    DEFAULT_RULES_PATH,
    THRESHOLD_KINDS,
    Rules,
    RulesConfigError,
    load_rules,
    rules_from_mapping,
)


def shipped() -> dict[str, Any]:
    """Return the shipped rules file, parsed."""
    return tomllib.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def test_shipped_rules_load_with_the_contract_defaults() -> None:
    rules = load_rules(DEFAULT_RULES_PATH)
    assert rules.rules_version == "2026.12-1"
    assert rules.titration_increase_limit_spinal_pct == 30.0
    assert rules.maintenance_increase_limit_cerebral_pct == 20.0
    assert rules.standard_concentrations_ug_per_ml == (500.0, 1000.0, 2000.0)
    assert rules.severity("current-dose-unknown") is Severity.CANNOT_CHECK


def test_every_threshold_cites_clinical_md_or_the_contract() -> None:
    rules = load_rules()
    assert set(rules.provenance) == set(THRESHOLD_KINDS)
    for key, provenance in rules.provenance.items():
        assert (
            "clinical.md" in provenance.source
            or "CONTRACT" in provenance.source
            or "site decision" in provenance.source
        ), key


@pytest.mark.parametrize(
    "key",
    [
        "max_daily_dose_spinal_ug",
        "titration_window_days",
        "hypotension_systolic_below_mmhg",
        "egfr_below_ml_min_173m2",
    ],
)
def test_recalled_or_local_numbers_are_marked_unverified(key: str) -> None:
    assert load_rules().provenance[key].verified is False


def test_rules_fields_match_the_threshold_table() -> None:
    fields = set(Rules.__dataclass_fields__) - {"rules_version", "severities", "provenance"}
    assert fields == set(THRESHOLD_KINDS)


def test_env_variable_overrides_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8").replace('"2026.12-1"', '"site-7"')
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ITB_RULES_PATH", str(path))
    assert load_rules().rules_version == "site-7"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesConfigError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.toml")


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("rules_version = ", encoding="utf-8")
    with pytest.raises(RulesConfigError, match="not valid TOML"):
        load_rules(path)


def _mutate(path: list[str], value: Any) -> dict[str, Any]:
    document = shipped()
    target = document
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["thresholds", "titration_increase_limit_spinal_pct"],
            KeyError,
            "missing threshold 'thresholds.titration_increase_limit_spinal_pct'",
        ),
        (["thresholds", "fever_min_cel", "value"], "38", "'thresholds.fever_min_cel.value' must be a number"),
        (["thresholds", "fever_min_cel", "value"], True, "'thresholds.fever_min_cel.value' must be a number"),
        (
            ["thresholds", "refill_max_days", "value"],
            180.5,
            "'thresholds.refill_max_days.value' must be an integer",
        ),
        (["thresholds", "decrease_warn_above_pct", "value"], -1, "must be a finite number >= 0"),
        (["thresholds", "fever_min_cel", "value"], KeyError, "'thresholds.fever_min_cel.value' is missing"),
        (["thresholds", "fever_min_cel", "source"], KeyError, "'thresholds.fever_min_cel.source'"),
        (
            ["thresholds", "fever_min_cel", "verified"],
            "yes",
            "'thresholds.fever_min_cel.verified' must be true or false",
        ),
        (["thresholds", "fever_min_cel", "units"], "C", "unknown key(s): units"),
        (
            ["thresholds", "fever_max"],
            {"value": 1, "source": "x", "verified": True},
            "unknown threshold(s): fever_max",
        ),
        (["thresholds", "standard_concentrations_ug_per_ml", "value"], [], "non-empty list"),
        (["thresholds", "unit_scale_ratio_low", "value"], 2.0, "unit_scale_ratio_low < 1"),
        (["rules_version"], KeyError, "'rules_version' must be a non-empty string"),
        (["severities", "pregnancy"], KeyError, "missing severity 'severities.pregnancy'"),
        (["severities", "pregnancy"], "fatal", "'severities.pregnancy' must be one of block, warn, info"),
        (["severities", "current-dose-unknown"], "warn", "must be one of cannot-check"),
        (["severities", "dose-too-high"], "block", "unknown finding code(s) in [severities]: dose-too-high"),
        (["thresholds"], KeyError, "missing table [thresholds]"),
        (["extra"], 1, "unknown top-level key(s): extra"),
    ],
)
def test_bad_rules_name_the_key(path: list[str], value: Any, message: str) -> None:
    with pytest.raises(RulesConfigError) as caught:
        rules_from_mapping(_mutate(path, value), origin="rules.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("rules.toml: ")


def test_integer_is_accepted_for_a_float_threshold() -> None:
    rules = rules_from_mapping(_mutate(["thresholds", "fever_min_cel", "value"], 38))
    assert rules.fever_min_cel == 38.0 and isinstance(rules.fever_min_cel, float)
