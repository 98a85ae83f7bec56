"""Build typed Charts in code for the engine tests: one quiet baseline and small helpers to change it.

The baseline is an adult with spinal-origin spasticity in maintenance, complete pump data, recent scores
and vitals, and an old dose history: proposing 440 ug/d (a 10 % increase on 400 ug/d) passes with no
findings at all, so every test changes exactly the fact it is about.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

from plugin.domain.chart import (
    Chart,
    ClinicalSign,
    CoMedication,
    ConditionEvidence,
    DoseChange,
    DoseRecord,
    LabValue,
    Origin,
    Patient,
    Phase,
    Pump,
    Score,
    VitalSign,
)
from plugin.domain.engine import check
from plugin.domain.result import CheckResult, Finding, Proposal
from plugin.domain.rules_config import Rules, load_rules

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
RULES = load_rules()
CURRENT_UG = 400.0


def ago(*, days: float = 0, hours: float = 0) -> datetime:
    """Return the moment ``days`` and ``hours`` before NOW."""
    return NOW - timedelta(days=days, hours=hours)


def born_years_ago(years: int, *, days_later: int = 0) -> date:
    """Return a birth date making the patient ``years`` old at NOW (``days_later`` shifts it later)."""
    return date(NOW.year - years, NOW.month, NOW.day) + timedelta(days=days_later)


def dose_record(
    daily_dose_ug: float | None = CURRENT_UG, source: str = "MedicationStatement/itb", **kw: Any
) -> DoseRecord:
    """Return an active intrathecal dose record."""
    return DoseRecord(source=source, status="active", daily_dose_ug=daily_dose_ug, **kw)


def increase(
    at: datetime, from_ug: float, to_ug: float, source: str = "MedicationStatement/old"
) -> DoseChange:
    """Return a recorded dose change."""
    return DoseChange(at=at, from_daily_dose_ug=from_ug, to_daily_dose_ug=to_ug, source=source)


def score(value: float, at: datetime, code: str = "mas", source: str = "Observation/mas-1") -> Score:
    """Return a spasticity score."""
    display = "1+" if value == 1.5 else f"{value:g}"
    return Score(code=code, value=value, display=display, effective=at, source=source)


def vital(kind: str, value: float, at: datetime, source: str | None = None) -> VitalSign:
    """Return a vital sign in canonical units."""
    unit = "Cel" if kind == "temperature" else "mm[Hg]"
    return VitalSign(kind=kind, value=value, unit=unit, effective=at, source=source or f"Observation/{kind}")


def sign(kind: str, at: datetime, display: str = "Pruritus") -> ClinicalSign:
    """Return a recorded withdrawal sign."""
    return ClinicalSign(kind=kind, effective=at, source=f"Condition/{kind}", display=display)


def co_med(display: str, *classes: str, source: str = "MedicationStatement/co") -> CoMedication:
    """Return another active medication with its classes."""
    return CoMedication(source=source, display=display, classes=frozenset(classes))


def egfr(value: float) -> LabValue:
    """Return an eGFR result."""
    return LabValue(
        code="33914-3", value=value, unit="mL/min/{1.73_m2}", effective=ago(days=5), source="Observation/egfr"
    )


def pump(**changes: Any) -> Pump:
    """Return a complete pump record (2000 ug/mL, 20 mL filled 10 days ago, refill in 60 days)."""
    base = Pump(
        source="Device/pump",
        model="SynchroMed II 8637-20",
        reservoir_capacity_ml=20.0,
        fill_volume_ml=20.0,
        last_fill_date=ago(days=10),
        low_reservoir_alarm_volume_ml=2.0,
        next_refill_date=NOW + timedelta(days=60),
        concentration_ug_per_ml=2000.0,
        implant_date=ago(days=800),
        evidence=("Device/pump",),
    )
    return dataclasses.replace(base, **changes)


def base_chart(**changes: Any) -> Chart:
    """Return the quiet baseline chart with ``changes`` applied."""
    base = Chart(
        patient=Patient(reference="Patient/p1", name="Test Patient", birth_date=born_years_ago(40)),
        dose_records=(dose_record(),),
        dose_history=(increase(ago(days=500), 350.0, 400.0),),
        scores=(score(2, ago(days=40), source="Observation/mas-0"), score(2, ago(days=10))),
        vitals=(vital("temperature", 36.8, ago(hours=5)), vital("systolic", 122, ago(hours=5))),
        egfr=egfr(90),
        origin=Origin.SPINAL,
        origin_evidence=(
            ConditionEvidence(source="Condition/sci", display="Spinal cord injury", category="spinal"),
        ),
        pump=pump(),
    )
    return dataclasses.replace(base, **changes)


def run(
    chart: Chart | None = None,
    proposed_ug: float = 440.0,
    *,
    phase: Phase | None = None,
    origin: Origin | None = None,
    now: datetime = NOW,
    rules: Rules = RULES,
) -> CheckResult:
    """Check ``proposed_ug`` on ``chart`` (default: the baseline)."""
    proposal = Proposal(daily_dose_ug=proposed_ug, phase=phase, origin=origin)
    return check(chart if chart is not None else base_chart(), proposal, rules, now)


def codes(result: CheckResult) -> set[str]:
    """Return the finding codes of a result."""
    return {f.code for f in result.findings}


def only(result: CheckResult, code: str) -> Finding:
    """Return the single finding with ``code``."""
    found = [f for f in result.findings if f.code == code]
    assert len(found) == 1, f"expected one {code}, got {[f.code for f in result.findings]}"
    return found[0]
