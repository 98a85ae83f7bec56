"""Every CONTRACT §4 finding code fires on its own scenario with its default severity, and not on the
quiet baseline; plus the verdict, the JSON shape and the largest safe dose."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from chart_builders import (
    NOW,
    RULES,
    ago,
    base_chart,
    born_years_ago,
    co_med,
    codes,
    dose_record,
    egfr,
    increase,
    pump,
    run,
    score,
    sign,
)

from plugin.domain.chart import ConditionEvidence, Origin, Patient, Phase
from plugin.domain.engine import largest_safe_dose_ug, verdict_for
from plugin.domain.result import CheckResult, Finding, Proposal, Severity, Verdict
from plugin.domain.rules_config import FINDING_CODES

DEFAULT_SEVERITY = {
    "current-dose-unknown": Severity.CANNOT_CHECK,
    "conflicting-current-doses": Severity.CANNOT_CHECK,
    "unit-unconvertible": Severity.BLOCK,
    "unit-scale-suspect": Severity.BLOCK,
    "dose-above-maximum": Severity.BLOCK,
    "dose-above-typical": Severity.WARN,
    "increase-over-limit": Severity.BLOCK,
    "increase-too-soon": Severity.BLOCK,
    "decrease-large": Severity.WARN,
    "discontinuation": Severity.BLOCK,
    "origin-unknown": Severity.WARN,
    "cns-depressant": Severity.WARN,
    "oral-baclofen-active": Severity.INFO,
    "withdrawal-signs": Severity.WARN,
    "dose-creep": Severity.WARN,
    "assessment-stale": Severity.WARN,
    "score-conflict": Severity.WARN,
    "reservoir-before-refill": Severity.WARN,
    "refill-interval-long": Severity.INFO,
    "concentration-nonstandard": Severity.WARN,
    "age-below-label": Severity.WARN,
    "renal-impairment": Severity.WARN,
    "pregnancy": Severity.WARN,
}

SCENARIOS: dict[str, Callable[[], CheckResult]] = {
    "current-dose-unknown": lambda: run(base_chart(dose_records=())),
    "conflicting-current-doses": lambda: run(
        base_chart(dose_records=(dose_record(400.0), dose_record(300.0, source="MedicationRequest/b")))
    ),
    "unit-unconvertible": lambda: run(
        base_chart(dose_records=(dose_record(), dose_record(None, source="MedicationRequest/tab")))
    ),
    "unit-scale-suspect": lambda: run(proposed_ug=9600.0),
    "dose-above-maximum": lambda: run(base_chart(dose_records=(dose_record(1900.0),)), 2100.0),
    "dose-above-typical": lambda: run(base_chart(dose_records=(dose_record(780.0),)), 820.0),
    "increase-over-limit": lambda: run(proposed_ug=600.0),
    "increase-too-soon": lambda: run(base_chart(dose_history=(increase(ago(hours=3), 380.0, 400.0),))),
    "decrease-large": lambda: run(proposed_ug=300.0),
    "discontinuation": lambda: run(proposed_ug=0.0),
    "origin-unknown": lambda: run(base_chart(origin=Origin.UNKNOWN, origin_evidence=())),
    "cns-depressant": lambda: run(base_chart(co_medications=(co_med("Diazepam", "benzodiazepine"),))),
    "oral-baclofen-active": lambda: run(
        base_chart(co_medications=(co_med("Baclofen tablet", "oral-baclofen"),))
    ),
    "withdrawal-signs": lambda: run(base_chart(clinical_signs=(sign("pruritus", ago(hours=5)),))),
    "dose-creep": lambda: run(base_chart(dose_history=(increase(ago(days=100), 250.0, 400.0),))),
    "assessment-stale": lambda: run(base_chart(scores=(score(2, ago(days=120)),))),
    "score-conflict": lambda: run(
        base_chart(scores=(score(3, ago(days=30), source="Observation/a"), score(1, ago(days=3))))
    ),
    "reservoir-before-refill": lambda: run(base_chart(pump=pump(next_refill_date=NOW + timedelta(days=100)))),
    "refill-interval-long": lambda: run(
        base_chart(pump=pump(fill_volume_ml=40.0, last_fill_date=NOW)), 400.0
    ),
    "concentration-nonstandard": lambda: run(base_chart(pump=pump(concentration_ug_per_ml=1200.0))),
    "age-below-label": lambda: run(
        base_chart(patient=Patient(reference="Patient/p1", birth_date=born_years_ago(3)))
    ),
    "renal-impairment": lambda: run(base_chart(egfr=egfr(20.0))),
    "pregnancy": lambda: run(
        base_chart(
            pregnancy=ConditionEvidence(source="Condition/preg", display="Pregnant", category="pregnancy")
        )
    ),
}


def test_every_contract_code_has_a_scenario_and_a_default_severity() -> None:
    assert set(SCENARIOS) == set(FINDING_CODES) == set(DEFAULT_SEVERITY)
    assert dict(RULES.severities) == DEFAULT_SEVERITY


@pytest.mark.parametrize("code", FINDING_CODES)
def test_code_fires_with_its_default_severity(code: str) -> None:
    result = SCENARIOS[code]()
    matching = [f for f in result.findings if f.code == code]
    assert matching, f"{code} did not fire: {codes(result)}"
    assert all(f.severity is DEFAULT_SEVERITY[code] for f in matching)
    assert all(f.message and f.message[0].isupper() for f in matching)


@pytest.mark.parametrize("code", FINDING_CODES)
def test_code_does_not_fire_on_the_quiet_baseline(code: str) -> None:
    assert code not in codes(run())


def test_quiet_baseline_passes_with_no_findings() -> None:
    result = run()
    assert result.verdict is Verdict.PASS and result.findings == ()


def test_findings_are_ordered_by_severity_and_evidence_is_fhir_references() -> None:
    result = run(base_chart(dose_records=()), 2500.0)
    order = [f.severity for f in result.findings]
    ranks = [[Severity.CANNOT_CHECK, Severity.BLOCK, Severity.WARN, Severity.INFO].index(s) for s in order]
    assert ranks == sorted(ranks)
    for finding in run(proposed_ug=600.0).findings:
        assert all("/" in ref for ref in finding.evidence)


@pytest.mark.parametrize(
    ("severities", "current", "verdict"),
    [
        ((), 400.0, Verdict.PASS),
        ((Severity.INFO,), 400.0, Verdict.PASS),
        ((Severity.WARN, Severity.INFO), 400.0, Verdict.WARN),
        ((Severity.BLOCK, Severity.WARN), 400.0, Verdict.BLOCK),
        ((Severity.CANNOT_CHECK, Severity.BLOCK), None, Verdict.CANNOT_CHECK),
        ((), None, Verdict.CANNOT_CHECK),
    ],
)
def test_verdict_folding(severities: tuple[Severity, ...], current: float | None, verdict: Verdict) -> None:
    findings = [Finding(code="x", severity=s, message="m") for s in severities]
    assert verdict_for(findings, current) is verdict


def test_result_json_has_the_contract_shape() -> None:
    data = run(proposed_ug=600.0).to_json()
    assert set(data) == {
        "verdict",
        "patient",
        "evaluated_at",
        "current_dose",
        "proposed_dose",
        "change_percent",
        "origin",
        "phase",
        "findings",
        "rules_version",
    }
    assert data["current_dose"] == {"value": 400.0, "unit": "ug/d", "source": "MedicationStatement/itb"}
    assert data["proposed_dose"] == {"value": 600.0, "unit": "ug/d"}
    assert data["change_percent"] == 50.0 and data["rules_version"] == "2026.12-1"
    assert data["evaluated_at"] == "2026-11-20T10:00:00+00:00"
    assert set(data["findings"][0]) == {"code", "severity", "message", "evidence"}


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run(now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_invalid_proposed_dose_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="proposed daily dose"):
        run(proposed_ug=bad)


@pytest.mark.parametrize(
    ("phase", "origin", "expected"),
    [
        (Phase.MAINTENANCE, None, 560.0),
        (Phase.TITRATION, None, 520.0),
        (Phase.TITRATION, Origin.CEREBRAL, 460.0),
        (Phase.MAINTENANCE, Origin.CEREBRAL, 480.0),
    ],
)
def test_largest_safe_dose_is_the_limit_and_passes(
    phase: Phase, origin: Origin | None, expected: float
) -> None:
    chart = base_chart()
    proposal = Proposal(daily_dose_ug=440.0, phase=phase, origin=origin)
    largest = largest_safe_dose_ug(chart, proposal, RULES, NOW)
    assert largest == pytest.approx(expected)
    assert largest is not None
    assert "increase-over-limit" not in codes(run(chart, largest, phase=phase, origin=origin))


def test_largest_safe_dose_is_capped_at_the_maximum_and_unknown_without_current_dose() -> None:
    chart = base_chart(dose_records=(dose_record(1900.0),))
    assert largest_safe_dose_ug(chart, Proposal(daily_dose_ug=1.0), RULES, NOW) == 2003.0
    assert largest_safe_dose_ug(base_chart(dose_records=()), Proposal(daily_dose_ug=1.0), RULES, NOW) is None


def test_largest_safe_dose_is_the_current_dose_right_after_an_increase() -> None:
    chart = base_chart(dose_history=(increase(ago(hours=2), 380.0, 400.0),))
    assert largest_safe_dose_ug(chart, Proposal(daily_dose_ug=1.0), RULES, NOW) == 400.0
