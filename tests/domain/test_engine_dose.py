"""Specification of the dose rules: current dose, unit slips, ranges, step size limits, stopping."""

from __future__ import annotations

import pytest
from chart_builders import NOW, ago, base_chart, born_years_ago, codes, dose_record, only, pump, run

from plugin.domain.chart import Origin, Patient, Phase
from plugin.domain.result import Severity, Verdict

# --- current dose ---------------------------------------------------------------------------------


def test_no_dose_record_is_cannot_check_with_null_current_dose() -> None:
    result = run(base_chart(dose_records=()))
    assert result.verdict is Verdict.CANNOT_CHECK
    assert only(result, "current-dose-unknown").severity is Severity.CANNOT_CHECK
    assert result.current_daily_dose_ug is None
    assert result.change_percent is None
    assert result.to_json()["current_dose"] is None


def test_only_unconvertible_records_give_unknown_current_dose_and_unit_unconvertible_block() -> None:
    record = dose_record(
        None, unconvertible_reason="tablets cannot be converted to ug/d", original_text="1 tab"
    )
    result = run(base_chart(dose_records=(record,)))
    assert result.verdict is Verdict.CANNOT_CHECK
    assert {"current-dose-unknown", "unit-unconvertible"} <= codes(result)
    unconvertible = only(result, "unit-unconvertible")
    assert unconvertible.severity is Severity.BLOCK
    assert "tablets" in unconvertible.message and unconvertible.evidence == ("MedicationStatement/itb",)


def test_unconvertible_record_beside_a_good_one_blocks_but_current_dose_is_known() -> None:
    bad = dose_record(
        None, source="MedicationRequest/mlh", unconvertible_reason="mL/h with no known concentration"
    )
    result = run(base_chart(dose_records=(dose_record(), bad)))
    assert result.verdict is Verdict.BLOCK
    assert result.current_daily_dose_ug == 400.0
    assert only(result, "unit-unconvertible").evidence == ("MedicationRequest/mlh",)


def test_two_records_that_disagree_are_conflicting_and_cannot_check() -> None:
    records = (dose_record(400.0), dose_record(480.0, source="MedicationRequest/new"))
    result = run(base_chart(dose_records=records))
    assert result.verdict is Verdict.CANNOT_CHECK
    finding = only(result, "conflicting-current-doses")
    assert finding.severity is Severity.CANNOT_CHECK
    assert set(finding.evidence) == {"MedicationStatement/itb", "MedicationRequest/new"}
    assert result.current_daily_dose_ug is None and result.change_percent is None


def test_two_records_that_agree_give_one_current_dose() -> None:
    records = (dose_record(400.0), dose_record(16.666666666666668 * 24, source="MedicationRequest/same"))
    result = run(base_chart(dose_records=records))
    assert result.verdict is Verdict.PASS
    assert result.current_dose_source == "MedicationStatement/itb"


def test_cannot_check_keeps_other_evaluable_findings() -> None:
    result = run(base_chart(dose_records=()), proposed_ug=2500.0)
    assert result.verdict is Verdict.CANNOT_CHECK
    assert "dose-above-maximum" in codes(result)


# --- discontinuation and decreases ----------------------------------------------------------------


def test_proposed_zero_is_discontinuation_block_without_decrease_large() -> None:
    result = run(proposed_ug=0.0)
    assert result.verdict is Verdict.BLOCK
    assert only(result, "discontinuation").severity is Severity.BLOCK
    assert "decrease-large" not in codes(result)


@pytest.mark.parametrize(
    ("proposed_ug", "fires"),
    [(320.0, False), (319.6, True), (350.0, False), (200.0, True)],
    ids=["exactly-20-pct", "20.1-pct", "12.5-pct", "50-pct"],
)
def test_decrease_of_more_than_20_percent_warns(proposed_ug: float, fires: bool) -> None:
    result = run(proposed_ug=proposed_ug)
    assert ("decrease-large" in codes(result)) is fires
    if fires:
        assert only(result, "decrease-large").severity is Severity.WARN


# --- unit slips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proposed_ug", "fires", "words"),
    [
        (4000.0, True, "10 times"),
        (3960.0, False, ""),
        (40.0, True, "1/10"),
        (40.4, False, ""),
        (9600.0, True, "per-hour"),
        (16.0, True, "per-day dose may have been entered as per-hour"),
        (8000.0, True, "20 times"),
    ],
    ids=["10x", "9.9x", "0.1x", "0.101x", "24x", "1/25x", "20x"],
)
def test_unit_scale_suspect_by_ratio(proposed_ug: float, fires: bool, words: str) -> None:
    result = run(proposed_ug=proposed_ug)
    assert ("unit-scale-suspect" in codes(result)) is fires
    if fires:
        finding = only(result, "unit-scale-suspect")
        assert finding.severity is Severity.BLOCK and words in finding.message


def test_oral_scale_dose_is_unit_scale_suspect_even_without_current_dose() -> None:
    result = run(base_chart(dose_records=()), proposed_ug=5000.0)
    assert "oral-baclofen scale" in only(result, "unit-scale-suspect").message
    below = run(base_chart(dose_records=()), proposed_ug=4999.0)
    assert "unit-scale-suspect" not in codes(below)


# --- absolute range -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "age", "maximum", "typical"),
    [
        (Origin.SPINAL, 40, 2003.0, 800.0),
        (Origin.CEREBRAL, 40, 1400.0, 703.0),
        (Origin.UNKNOWN, 40, 1400.0, 703.0),
        (Origin.SPINAL, 11, 1199.0, 300.0),
        (Origin.SPINAL, 12, 2003.0, 800.0),
        (Origin.SPINAL, None, 1199.0, 300.0),
    ],
    ids=["spinal", "cerebral", "unknown-origin", "child-11", "age-12-adult", "unknown-age"],
)
def test_maximum_and_typical_by_origin_and_age(
    origin: Origin, age: int | None, maximum: float, typical: float
) -> None:
    birth = born_years_ago(age) if age is not None else None
    chart = base_chart(
        dose_records=(dose_record(maximum * 0.9),),
        origin=origin,
        patient=Patient(reference="Patient/p1", birth_date=birth),
    )
    assert "dose-above-maximum" not in codes(run(chart, maximum, phase=Phase.MAINTENANCE))
    above = run(chart, maximum + 0.1, phase=Phase.MAINTENANCE)
    assert only(above, "dose-above-maximum").severity is Severity.BLOCK
    assert "dose-above-typical" not in codes(above)
    low_chart = base_chart(dose_records=(dose_record(typical * 0.9),), origin=origin, patient=chart.patient)
    assert "dose-above-typical" not in codes(run(low_chart, typical, phase=Phase.MAINTENANCE))
    assert (
        only(run(low_chart, typical + 0.1, phase=Phase.MAINTENANCE), "dose-above-typical").severity
        is Severity.WARN
    )


def test_above_1000_mentions_limited_experience() -> None:
    chart = base_chart(dose_records=(dose_record(950.0),))
    assert "limited" in only(run(chart, 1050.0), "dose-above-typical").message


# --- increase limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "phase", "age", "limit_pct"),
    [
        (Origin.SPINAL, Phase.TITRATION, 40, 30.0),
        (Origin.CEREBRAL, Phase.TITRATION, 40, 15.0),
        (Origin.UNKNOWN, Phase.TITRATION, 40, 15.0),
        (Origin.SPINAL, Phase.TITRATION, 8, 15.0),
        (Origin.SPINAL, Phase.MAINTENANCE, 40, 40.0),
        (Origin.CEREBRAL, Phase.MAINTENANCE, 40, 20.0),
        (Origin.UNKNOWN, Phase.MAINTENANCE, 40, 20.0),
        (Origin.SPINAL, Phase.MAINTENANCE, 8, 20.0),
        (Origin.SPINAL, Phase.TITRATION, None, 15.0),
    ],
)
def test_increase_limit_boundary_exact_passes_and_above_blocks(
    origin: Origin, phase: Phase, age: int | None, limit_pct: float
) -> None:
    birth = born_years_ago(age) if age is not None else None
    chart = base_chart(origin=origin, patient=Patient(reference="Patient/p1", birth_date=birth))
    exact = run(chart, 400.0 * (1 + limit_pct / 100), phase=phase)
    assert "increase-over-limit" not in codes(exact)
    assert exact.change_percent == limit_pct
    over = run(chart, 400.0 * (1 + (limit_pct + 0.1) / 100), phase=phase)
    finding = only(over, "increase-over-limit")
    assert finding.severity is Severity.BLOCK
    assert f"{limit_pct + 0.1:.1f} % increase" in finding.message
    assert f"{limit_pct:g} % per 24 h" in finding.message


def test_spinal_titration_30_percent_passes_and_30_1_blocks() -> None:
    assert run(proposed_ug=520.0, phase=Phase.TITRATION).verdict is Verdict.PASS
    blocked = run(proposed_ug=520.4, phase=Phase.TITRATION)
    assert blocked.verdict is Verdict.BLOCK
    message = only(blocked, "increase-over-limit").message
    assert message.startswith("Proposed 520.4 ug/d is a 30.1 % increase")
    assert "titration limit for spinal origin is 30 % per 24 h" in message


@pytest.mark.parametrize(("implant_days_ago", "phase"), [(59, Phase.TITRATION), (60, Phase.MAINTENANCE)])
def test_phase_follows_days_since_implant(implant_days_ago: int, phase: Phase) -> None:
    chart = base_chart(pump=pump(implant_date=ago(days=implant_days_ago)))
    assert run(chart).phase is phase


def test_unknown_implant_date_applies_titration_limits_and_says_so() -> None:
    chart = base_chart(pump=pump(implant_date=None))
    result = run(chart, proposed_ug=540.0)
    assert result.phase is Phase.TITRATION
    assert "no implant date" in only(result, "increase-over-limit").message
    assert "increase-over-limit" not in codes(run(chart, 540.0, phase=Phase.MAINTENANCE))


def test_origin_override_replaces_chart_origin() -> None:
    result = run(base_chart(origin=Origin.UNKNOWN, origin_evidence=()), 540.0, origin=Origin.SPINAL)
    assert result.origin is Origin.SPINAL
    assert "origin-unknown" not in codes(result)
    assert "increase-over-limit" not in codes(result)


def test_restart_from_zero_blocks_as_unmeasurable_increase() -> None:
    result = run(base_chart(dose_records=(dose_record(0.0),)), proposed_ug=100.0)
    assert result.change_percent is None
    assert "restart" in only(result, "increase-over-limit").message
    assert result.verdict is Verdict.BLOCK


def test_change_percent_is_rounded_in_json_only() -> None:
    result = run(proposed_ug=433.33)
    assert result.change_percent == 8.3
    assert result.to_json()["change_percent"] == 8.3
    assert result.evaluated_at == NOW


def test_float_noise_from_unit_conversion_is_no_change() -> None:
    result = run(base_chart(dose_records=(dose_record((400.0 / 24) * 24 + 1e-10),)), proposed_ug=400.0)
    assert result.change_percent == 0.0
    assert result.verdict is Verdict.PASS
