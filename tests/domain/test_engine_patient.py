"""Specification of the patient rules: origin, co-medication, withdrawal signs, age, eGFR, pregnancy."""

from __future__ import annotations

import pytest
from chart_builders import ago, base_chart, born_years_ago, co_med, codes, egfr, only, run, sign, vital

from plugin.domain.chart import ConditionEvidence, Origin, Patient
from plugin.domain.result import Severity, Verdict


def test_unknown_origin_warns_and_uses_cerebral_limits() -> None:
    result = run(base_chart(origin=Origin.UNKNOWN, origin_evidence=()), proposed_ug=481.0)
    assert result.origin is Origin.UNKNOWN
    assert only(result, "origin-unknown").severity is Severity.WARN
    assert "cerebral limits applied" in only(result, "increase-over-limit").message


def test_known_origin_does_not_warn() -> None:
    assert "origin-unknown" not in codes(run())


@pytest.mark.parametrize(
    ("classes", "proposed_ug", "fires"),
    [
        (("benzodiazepine",), 440.0, True),
        (("opioid",), 440.0, True),
        (("gabapentinoid",), 440.0, True),
        (("z-drug",), 440.0, True),
        (("barbiturate",), 440.0, True),
        (("muscle-relaxant",), 440.0, True),
        (("benzodiazepine",), 380.0, False),
        (("oral-baclofen",), 440.0, False),
        ((), 440.0, False),
    ],
)
def test_cns_depressant_warns_on_increase(classes: tuple[str, ...], proposed_ug: float, fires: bool) -> None:
    chart = base_chart(co_medications=(co_med("Drug X", *classes),))
    result = run(chart, proposed_ug=proposed_ug)
    assert ("cns-depressant" in codes(result)) is fires
    if fires:
        assert only(result, "cns-depressant").evidence == ("MedicationStatement/co",)


def test_oral_baclofen_active_is_info_for_any_change() -> None:
    chart = base_chart(co_medications=(co_med("Baclofen 10 mg tablet", "oral-baclofen"),))
    for proposed in (440.0, 380.0, 400.0):
        result = run(chart, proposed_ug=proposed)
        assert only(result, "oral-baclofen-active").severity is Severity.INFO
    assert run(chart).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("kind", "value", "fires"),
    [
        ("temperature", 38.0, True),
        ("temperature", 37.9, False),
        ("systolic", 89.9, True),
        ("systolic", 90.0, False),
    ],
)
def test_withdrawal_signs_from_vitals(kind: str, value: float, fires: bool) -> None:
    other = "systolic" if kind == "temperature" else "temperature"
    other_value = 120.0 if other == "systolic" else 36.8
    chart = base_chart(vitals=(vital(kind, value, ago(hours=10)), vital(other, other_value, ago(hours=10))))
    result = run(chart)
    assert ("withdrawal-signs" in codes(result)) is fires
    if fires:
        finding = only(result, "withdrawal-signs")
        assert finding.severity is Severity.WARN and finding.evidence == (f"Observation/{kind}",)


@pytest.mark.parametrize(("hours_ago", "fires"), [(72.0, True), (72.1, False)])
def test_withdrawal_window_is_72_hours(hours_ago: float, fires: bool) -> None:
    chart = base_chart(clinical_signs=(sign("pruritus", ago(hours=hours_ago)),))
    assert ("withdrawal-signs" in codes(run(chart))) is fires


def test_withdrawal_signs_fire_for_a_decrease_too() -> None:
    chart = base_chart(clinical_signs=(sign("altered-mental-status", ago(hours=3), "Confusion"),))
    assert "Confusion" in only(run(chart, proposed_ug=380.0), "withdrawal-signs").message


def test_missing_vitals_say_withdrawal_signs_could_not_be_evaluated() -> None:
    result = run(base_chart(vitals=(vital("temperature", 36.5, ago(hours=100)),)))
    finding = only(result, "withdrawal-signs")
    assert finding.severity is Severity.INFO
    assert "body temperature or blood pressure" in finding.message
    only_bp = run(base_chart(vitals=(vital("systolic", 120, ago(hours=1)),)))
    assert "no body temperature is recorded" in only(only_bp, "withdrawal-signs").message


@pytest.mark.parametrize(
    ("years", "days_later", "fires"),
    [(4, 0, False), (3, 0, True), (4, 1, True)],
    ids=["4th-birthday-today", "age-3", "4th-birthday-tomorrow"],
)
def test_age_below_label(years: int, days_later: int, fires: bool) -> None:
    chart = base_chart(
        patient=Patient(reference="Patient/p1", birth_date=born_years_ago(years, days_later=days_later))
    )
    result = run(chart)
    assert ("age-below-label" in codes(result)) is fires
    if fires:
        assert only(result, "age-below-label").severity is Severity.WARN


def test_unknown_age_is_reported_and_pediatric_limits_apply() -> None:
    result = run(base_chart(patient=Patient(reference="Patient/p1")), proposed_ug=481.0)
    finding = only(result, "age-below-label")
    assert finding.severity is Severity.INFO and "no birth date" in finding.message
    assert "children under 12" in only(result, "increase-over-limit").message


@pytest.mark.parametrize(("value", "fires"), [(30.0, False), (29.9, True)])
def test_renal_impairment_below_egfr_30(value: float, fires: bool) -> None:
    result = run(base_chart(egfr=egfr(value)))
    assert ("renal-impairment" in codes(result)) is fires
    if fires:
        assert only(result, "renal-impairment").evidence == ("Observation/egfr",)


def test_missing_egfr_says_renal_rule_could_not_be_evaluated() -> None:
    assert only(run(base_chart(egfr=None)), "renal-impairment").severity is Severity.INFO


def test_pregnancy_warns() -> None:
    pregnancy = ConditionEvidence(source="Condition/preg", display="Pregnancy", category="pregnancy")
    finding = only(run(base_chart(pregnancy=pregnancy)), "pregnancy")
    assert finding.severity is Severity.WARN and finding.evidence == ("Condition/preg",)
    assert "pregnancy" not in codes(run())
