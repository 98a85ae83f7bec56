"""The rule thresholds and severities, read and validated from ``config/rules.toml``.

Every threshold in the file carries its source and whether clinical.md verified it; ``Rules`` keeps the
values as plain typed fields for the engine and the provenance beside them for docs and the UI. A missing,
unknown or wrong-typed key is a startup error that names the key.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from plugin.domain.result import Severity

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "config" / "rules.toml"
RULES_PATH_ENV = "ITB_RULES_PATH"

FINDING_CODES: tuple[str, ...] = (
    "current-dose-unknown",
    "conflicting-current-doses",
    "unit-unconvertible",
    "unit-scale-suspect",
    "dose-above-maximum",
    "dose-above-typical",
    "increase-over-limit",
    "increase-too-soon",
    "decrease-large",
    "discontinuation",
    "origin-unknown",
    "cns-depressant",
    "oral-baclofen-active",
    "withdrawal-signs",
    "dose-creep",
    "assessment-stale",
    "score-conflict",
    "reservoir-before-refill",
    "refill-interval-long",
    "concentration-nonstandard",
    "age-below-label",
    "renal-impairment",
    "pregnancy",
)
CANNOT_CHECK_CODES = frozenset({"current-dose-unknown", "conflicting-current-doses"})

# Threshold key -> kind: "float" (int or float in TOML), "int", or "float_list".
THRESHOLD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "titration_increase_limit_spinal_pct": "float",
        "titration_increase_limit_cerebral_pct": "float",
        "titration_increase_limit_child_pct": "float",
        "maintenance_increase_limit_spinal_pct": "float",
        "maintenance_increase_limit_cerebral_pct": "float",
        "maintenance_increase_limit_child_pct": "float",
        "child_age_below_years": "int",
        "titration_window_days": "int",
        "max_daily_dose_spinal_ug": "float",
        "max_daily_dose_cerebral_ug": "float",
        "max_daily_dose_child_ug": "float",
        "typical_max_daily_dose_spinal_ug": "float",
        "typical_max_daily_dose_cerebral_ug": "float",
        "typical_max_daily_dose_child_ug": "float",
        "limited_experience_daily_dose_ug": "float",
        "decrease_warn_above_pct": "float",
        "min_hours_between_increases": "float",
        "unit_scale_ratio_high": "float",
        "unit_scale_ratio_low": "float",
        "per_hour_ratio_min": "float",
        "per_hour_ratio_max": "float",
        "oral_scale_daily_dose_ug": "float",
        "withdrawal_window_hours": "float",
        "fever_min_cel": "float",
        "hypotension_systolic_below_mmhg": "float",
        "dose_creep_increase_ug": "float",
        "dose_creep_window_days": "int",
        "dose_creep_increase_count": "int",
        "dose_creep_count_window_days": "int",
        "assessment_stale_days": "int",
        "refill_max_days": "int",
        "default_low_reservoir_alarm_ml": "float",
        "standard_concentrations_ug_per_ml": "float_list",
        "screening_concentration_ug_per_ml": "float",
        "age_below_label_years": "int",
        "egfr_below_ml_min_173m2": "float",
    }
)


class RulesConfigError(ValueError):
    """The rules file is missing, unreadable or has a missing, unknown or wrong-typed key."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one threshold comes from, and whether clinical.md verified it."""

    source: str
    verified: bool
    note: str | None = None


@dataclass(frozen=True)
class Rules:
    """Every threshold the engine uses (units in the names) and the severity of every finding code."""

    rules_version: str
    titration_increase_limit_spinal_pct: float
    titration_increase_limit_cerebral_pct: float
    titration_increase_limit_child_pct: float
    maintenance_increase_limit_spinal_pct: float
    maintenance_increase_limit_cerebral_pct: float
    maintenance_increase_limit_child_pct: float
    child_age_below_years: int
    titration_window_days: int
    max_daily_dose_spinal_ug: float
    max_daily_dose_cerebral_ug: float
    max_daily_dose_child_ug: float
    typical_max_daily_dose_spinal_ug: float
    typical_max_daily_dose_cerebral_ug: float
    typical_max_daily_dose_child_ug: float
    limited_experience_daily_dose_ug: float
    decrease_warn_above_pct: float
    min_hours_between_increases: float
    unit_scale_ratio_high: float
    unit_scale_ratio_low: float
    per_hour_ratio_min: float
    per_hour_ratio_max: float
    oral_scale_daily_dose_ug: float
    withdrawal_window_hours: float
    fever_min_cel: float
    hypotension_systolic_below_mmhg: float
    dose_creep_increase_ug: float
    dose_creep_window_days: int
    dose_creep_increase_count: int
    dose_creep_count_window_days: int
    assessment_stale_days: int
    refill_max_days: int
    default_low_reservoir_alarm_ml: float
    standard_concentrations_ug_per_ml: tuple[float, ...]
    screening_concentration_ug_per_ml: float
    age_below_label_years: int
    egfr_below_ml_min_173m2: float
    severities: Mapping[str, Severity] = field(compare=False, hash=False)
    provenance: Mapping[str, Provenance] = field(compare=False, hash=False)

    def severity(self, code: str) -> Severity:
        """Return the configured severity of a finding code."""
        return self.severities[code]


def load_rules(path: Path | None = None) -> Rules:
    """Read and validate the rules file (``path``, else ``$ITB_RULES_PATH``, else config/rules.toml)."""
    if path is None:
        env_path = os.environ.get(RULES_PATH_ENV)
        path = Path(env_path) if env_path else DEFAULT_RULES_PATH
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise RulesConfigError(f"cannot read rules file {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise RulesConfigError(f"rules file {path} is not valid TOML: {error}") from error
    return rules_from_mapping(document, origin=str(path))


def rules_from_mapping(document: Mapping[str, Any], *, origin: str = "rules") -> Rules:
    """Build ``Rules`` from a parsed TOML document, naming the first bad key in the error."""
    unknown_top = set(document) - {"rules_version", "thresholds", "severities"}
    if unknown_top:
        raise RulesConfigError(f"{origin}: unknown top-level key(s): {', '.join(sorted(unknown_top))}")
    version = document.get("rules_version")
    if not isinstance(version, str) or not version.strip():
        raise RulesConfigError(f"{origin}: 'rules_version' must be a non-empty string")
    thresholds = _table(document, "thresholds", origin)
    values: dict[str, Any] = {}
    provenance: dict[str, Provenance] = {}
    unknown = set(thresholds) - set(THRESHOLD_KINDS)
    if unknown:
        raise RulesConfigError(f"{origin}: unknown threshold(s): {', '.join(sorted(unknown))}")
    for key, kind in THRESHOLD_KINDS.items():
        values[key], provenance[key] = _threshold(thresholds, key, kind, origin)
    _check_consistency(values, origin)
    return Rules(
        rules_version=version.strip(),
        severities=MappingProxyType(_severities(_table(document, "severities", origin), origin)),
        provenance=MappingProxyType(provenance),
        **values,
    )


def _table(document: Mapping[str, Any], key: str, origin: str) -> Mapping[str, Any]:
    """Return a required sub-table or raise naming it."""
    table = document.get(key)
    if not isinstance(table, Mapping):
        raise RulesConfigError(f"{origin}: missing table [{key}]")
    return table


def _threshold(
    thresholds: Mapping[str, Any], key: str, kind: str, origin: str
) -> tuple[float | int | tuple[float, ...], Provenance]:
    """Validate one threshold table and return its value and provenance."""
    name = f"thresholds.{key}"
    entry = thresholds.get(key)
    if entry is None:
        raise RulesConfigError(f"{origin}: missing threshold '{name}'")
    if not isinstance(entry, Mapping):
        raise RulesConfigError(f"{origin}: '{name}' must be a table with value, source and verified")
    extra = set(entry) - {"value", "source", "verified", "note"}
    if extra:
        raise RulesConfigError(f"{origin}: '{name}' has unknown key(s): {', '.join(sorted(extra))}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise RulesConfigError(f"{origin}: '{name}.source' must be a non-empty string citing its source")
    verified = entry.get("verified")
    if not isinstance(verified, bool):
        raise RulesConfigError(f"{origin}: '{name}.verified' must be true or false")
    note = entry.get("note")
    if note is not None and not isinstance(note, str):
        raise RulesConfigError(f"{origin}: '{name}.note' must be a string")
    if "value" not in entry:
        raise RulesConfigError(f"{origin}: '{name}.value' is missing")
    value = _typed_value(entry["value"], kind, f"{name}.value", origin)
    return value, Provenance(source=source.strip(), verified=verified, note=note)


def _typed_value(raw: Any, kind: str, name: str, origin: str) -> float | int | tuple[float, ...]:
    """Check a threshold value's type and that it is finite and not negative."""
    if kind == "float_list":
        if not isinstance(raw, list) or not raw:
            raise RulesConfigError(f"{origin}: '{name}' must be a non-empty list of numbers")
        return tuple(float(_number(item, name, origin)) for item in raw)
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise RulesConfigError(f"{origin}: '{name}' must be an integer, got {type(raw).__name__}")
        if raw < 0:
            raise RulesConfigError(f"{origin}: '{name}' must not be negative")
        return raw
    return float(_number(raw, name, origin))


def _number(raw: Any, name: str, origin: str) -> float | int:
    """Return ``raw`` if it is a finite, non-negative number (not a bool)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise RulesConfigError(f"{origin}: '{name}' must be a number, got {type(raw).__name__}")
    if not math.isfinite(raw) or raw < 0:
        raise RulesConfigError(f"{origin}: '{name}' must be a finite number >= 0")
    return raw


def _check_consistency(values: Mapping[str, Any], origin: str) -> None:
    """Reject combinations that would make a rule meaningless."""
    if not values["unit_scale_ratio_low"] < 1 < values["unit_scale_ratio_high"]:
        raise RulesConfigError(f"{origin}: need unit_scale_ratio_low < 1 < unit_scale_ratio_high")
    if values["per_hour_ratio_min"] > values["per_hour_ratio_max"]:
        raise RulesConfigError(f"{origin}: per_hour_ratio_min must not exceed per_hour_ratio_max")
    if any(c <= 0 for c in values["standard_concentrations_ug_per_ml"]):
        raise RulesConfigError(f"{origin}: standard concentrations must be above 0")


def _severities(table: Mapping[str, Any], origin: str) -> dict[str, Severity]:
    """Validate the [severities] table: every CONTRACT §4 code, nothing else."""
    unknown = set(table) - set(FINDING_CODES)
    if unknown:
        raise RulesConfigError(
            f"{origin}: unknown finding code(s) in [severities]: {', '.join(sorted(unknown))}"
        )
    severities: dict[str, Severity] = {}
    for code in FINDING_CODES:
        raw = table.get(code)
        if raw is None:
            raise RulesConfigError(f"{origin}: missing severity 'severities.{code}'")
        allowed = ("cannot-check",) if code in CANNOT_CHECK_CODES else ("block", "warn", "info")
        if raw not in allowed:
            raise RulesConfigError(
                f"{origin}: 'severities.{code}' must be one of {', '.join(allowed)}, got {raw!r}"
            )
        severities[code] = Severity(raw)
    return severities
