"""Specification of how intrathecal baclofen records become dose records and a dose history."""

from __future__ import annotations

from datetime import time

import pytest
from loader_builders import (
    IT_ROUTE,
    RXNORM,
    SUBJECT,
    chart,
    medication,
    quantity,
    rate,
    request,
    statement,
)

from plugin.domain.chart import FlexStep


def only_dose(*resources: dict) -> float | None:
    """Return the single dose record's daily dose."""
    records = chart(*resources).dose_records
    assert len(records) == 1
    return records[0].daily_dose_ug


def test_rate_in_ug_per_day_is_read_as_is() -> None:
    assert only_dose(statement("a", rate(400, "ug/d"))) == 400.0


def test_rate_in_ug_per_hour_is_multiplied_by_24() -> None:
    record = chart(statement("a", rate(6.25, "ug/h"))).dose_records[0]
    assert record.daily_dose_ug == 150.0
    assert record.rate_ug_per_h == 6.25


def test_volume_rate_uses_the_medication_strength() -> None:
    med = {"medicationReference": {"reference": "Medication/m1"}}
    record = chart(medication("m1", 2.0), statement("a", rate(0.0125, "mL/h"), medication=med)).dose_records[
        0
    ]
    assert record.daily_dose_ug == pytest.approx(600.0)
    assert record.concentration_ug_per_ml == 2000.0


def test_volume_rate_without_strength_is_unconvertible_with_a_reason() -> None:
    med = {"medicationReference": {"reference": "Medication/m1"}}
    record = chart(medication("m1", None), statement("a", rate(0.0125, "mL/h"), medication=med)).dose_records[
        0
    ]
    assert record.daily_dose_ug is None
    assert "concentration" in (record.unconvertible_reason or "")


def test_contained_medication_is_resolved() -> None:
    contained = medication("med1", 0.5)
    med = {"medicationReference": {"reference": "#med1"}, "contained": [contained]}
    record = chart(statement("a", rate(0.01, "mL/h"), medication=med)).dose_records[0]
    assert record.daily_dose_ug == pytest.approx(120.0)
    assert record.medication_display == "baclofen 2 MG/ML Injection"


def test_rate_ratio_is_converted() -> None:
    dosage = {
        "route": IT_ROUTE,
        "doseAndRate": [{"rateRatio": {"numerator": quantity(250, "ug"), "denominator": quantity(1, "d")}}],
    }
    assert only_dose(statement("a", dosage)) == 250.0


def test_dose_quantity_in_ug_per_day_is_a_daily_dose() -> None:
    dosage = {"route": IT_ROUTE, "doseAndRate": [{"doseQuantity": quantity(300, "ug/d")}]}
    assert only_dose(statement("a", dosage)) == 300.0


def test_dose_quantity_with_frequency_and_period_is_scaled_to_a_day() -> None:
    dosage = {
        "route": IT_ROUTE,
        "timing": {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": quantity(125, "ug")}],
    }
    assert only_dose(statement("a", dosage)) == 250.0


def test_dose_quantity_without_schedule_is_unconvertible() -> None:
    dosage = {"route": IT_ROUTE, "doseAndRate": [{"doseQuantity": quantity(125, "ug")}]}
    record = chart(statement("a", dosage)).dose_records[0]
    assert record.daily_dose_ug is None
    assert "frequency" in (record.unconvertible_reason or "")


def test_flex_schedule_is_summed_over_24_hours_with_wrap_at_midnight() -> None:
    dosages = [
        rate(15, "ug/h", timeOfDay=["00:00:00"]),
        rate(25, "ug/h", timeOfDay=["06:00:00"]),
        rate(15, "ug/h", timeOfDay=["12:00:00"]),
        rate(20, "ug/h", timeOfDay=["18:00:00"]),
    ]
    record = chart(statement("a", *dosages)).dose_records[0]
    assert record.daily_dose_ug == pytest.approx(6 * (15 + 25 + 15 + 20))
    assert record.flex_steps == (
        FlexStep(time(0), 15.0),
        FlexStep(time(6), 25.0),
        FlexStep(time(12), 15.0),
        FlexStep(time(18), 20.0),
    )


def test_flex_schedule_starting_after_midnight_wraps() -> None:
    dosages = [rate(10, "ug/h", timeOfDay=["22:00:00"]), rate(20, "ug/h", timeOfDay=["08:00:00"])]
    # 08:00-22:00 at 20 ug/h (14 h) + 22:00-08:00 at 10 ug/h (10 h)
    assert only_dose(statement("a", *dosages)) == pytest.approx(14 * 20 + 10 * 10)


def test_flex_schedule_mixed_with_a_continuous_rate_is_unconvertible() -> None:
    dosages = [rate(10, "ug/h", timeOfDay=["22:00:00"]), rate(20, "ug/h")]
    assert only_dose(statement("a", *dosages)) is None


@pytest.mark.parametrize(
    "dosage",
    [
        {"route": IT_ROUTE, "text": "per pump programming"},
        {"route": IT_ROUTE, "doseAndRate": [{"doseQuantity": quantity(2, "{tbl}")}]},
        {
            "route": IT_ROUTE,
            "doseAndRate": [{"rateRange": {"low": quantity(1, "ug/h"), "high": quantity(2, "ug/h")}}],
        },
        {
            "route": IT_ROUTE,
            "doseAndRate": [{"rateQuantity": {"value": 400, "unit": "ug/d", "comparator": "<"}}],
        },
        {"route": IT_ROUTE, "doseAndRate": [{"rateQuantity": {"value": 400}}]},
    ],
)
def test_doses_that_cannot_be_read_are_unconvertible_not_guessed(dosage: dict) -> None:
    record = chart(statement("a", dosage)).dose_records[0]
    assert record.daily_dose_ug is None
    assert record.unconvertible_reason


def test_text_only_dose_keeps_the_original_text() -> None:
    record = chart(statement("a", {"route": IT_ROUTE, "text": "400 mcg/day"})).dose_records[0]
    assert record.original_text == "400 mcg/day"
    assert "only as text" in (record.unconvertible_reason or "")


def test_invalid_fhir_record_is_unconvertible_after_r4b_validation() -> None:
    bad = statement("a", rate(400, "ug/d"))
    bad["dosage"][0]["doseAndRate"][0]["rateQuantity"]["system"] = "not a uri with spaces"
    bad["dateAsserted"] = "yesterday"
    record = chart(bad).dose_records[0]
    assert record.daily_dose_ug is None
    assert "not valid FHIR" in (record.unconvertible_reason or "")


def test_r4b_validation_is_cached_by_content_and_a_changed_record_is_validated_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugin.domain.loader import medications

    medications.VALIDATION_CACHE.clear()
    calls: list[str] = []
    validate = medications._validate_r4b
    monkeypatch.setattr(
        medications, "_validate_r4b", lambda record: calls.append(record.source) or validate(record)
    )
    good = statement("a", rate(400, "ug/d"))
    assert chart(good).dose_records[0].daily_dose_ug == 400.0
    assert chart(dict(reversed(list(good.items())))).dose_records[0].daily_dose_ug == 400.0  # same content
    assert len(calls) == 1
    bad = statement("a", rate(400, "ug/d"))
    bad["dateAsserted"] = "yesterday"
    for _ in range(2):
        record = chart(bad).dose_records[0]
        assert record.daily_dose_ug is None and "not valid FHIR" in (record.unconvertible_reason or "")
    assert len(calls) == 2  # the changed record once, then from the cache
    medications.VALIDATION_CACHE.clear()


def test_medication_request_alone_gives_the_dose_as_on_epic() -> None:
    assert only_dose(request("r1", rate(350, "ug/d"))) == 350.0


def test_statement_and_request_for_the_same_regimen_are_one_dose() -> None:
    records = chart(statement("s1", rate(400, "ug/d")), request("r1", rate(400, "ug/d"))).dose_records
    assert [r.source for r in records] == ["MedicationStatement/s1"]


def test_request_at_another_dose_than_the_statement_is_kept_as_a_conflict() -> None:
    records = chart(statement("s1", rate(330, "ug/d")), request("r1", rate(300, "ug/d"))).dose_records
    assert sorted(r.daily_dose_ug for r in records) == [300.0, 330.0]


def test_two_active_statements_are_both_dose_records() -> None:
    records = chart(statement("s1", rate(330, "ug/d")), statement("s2", rate(300, "ug/d"))).dose_records
    assert len(records) == 2


@pytest.mark.parametrize("status", ["completed", "stopped", "entered-in-error", "on-hold", "unknown"])
def test_only_active_and_intended_statements_are_current(status: str) -> None:
    assert chart(statement("s1", status=status)).dose_records == ()
    assert len(chart(statement("s1", status="intended")).dose_records) == 1


def test_on_hold_record_is_a_data_gap() -> None:
    assert any("on-hold" in gap for gap in chart(statement("s1", status="on-hold")).data_gaps)


def test_record_starting_after_now_or_ended_before_is_not_current() -> None:
    assert chart(statement("s1", start="2027-01-01T00:00:00Z")).dose_records == ()
    ended = statement("s1")
    ended["effectivePeriod"]["end"] = "2026-11-01T00:00:00Z"
    assert chart(ended).dose_records == ()


def test_proposal_requests_are_not_current() -> None:
    assert chart(request("r1", intent="proposal")).dose_records == ()


def test_oral_baclofen_is_a_co_medication_not_a_dose() -> None:
    oral = {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"text": "baclofen 10 mg oral tablet"},
        "dosageInstruction": [
            {"route": {"text": "oral"}, "doseAndRate": [{"doseQuantity": quantity(10, "mg")}]}
        ],
    }
    result = chart(oral, statement("s1"))
    assert [r.source for r in result.dose_records] == ["MedicationStatement/s1"]
    assert result.co_medications[0].classes == frozenset({"oral-baclofen"})


def test_known_intrathecal_product_counts_without_a_route() -> None:
    product = {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1666613"}]}}
    dosage = {"doseAndRate": [{"rateQuantity": quantity(400, "ug/d")}]}
    assert only_dose(statement("s1", dosage, medication=product)) == 400.0


def test_cns_depressants_are_classified_by_name() -> None:
    drugs = [
        ("diazepam 5 mg tablet", "benzodiazepine"),
        ("Oxycodone HCl", "opioid"),
        ("gabapentin", "gabapentinoid"),
        ("zolpidem", "z-drug"),
        ("tizanidine", "muscle-relaxant"),
        ("phenobarbital", "barbiturate"),
    ]
    resources = [
        {
            "resourceType": "MedicationStatement",
            "id": f"c{i}",
            "status": "active",
            "subject": SUBJECT,
            "medicationCodeableConcept": {"text": name},
        }
        for i, (name, _cls) in enumerate(drugs)
    ]
    resources.append({**resources[0], "id": "x", "medicationCodeableConcept": {"text": "paracetamol"}})
    result = chart(*resources)
    assert sorted(next(iter(m.classes)) for m in result.co_medications) == sorted(c for _n, c in drugs)
    assert all(m.is_cns_depressant for m in result.co_medications)


def test_history_lists_changes_oldest_first_and_skips_entered_in_error() -> None:
    resources = [
        statement("h1", rate(260, "ug/d"), status="completed", start="2025-12-01T10:00:00Z"),
        statement("h2", rate(300, "ug/d"), status="completed", start="2026-03-01T10:00:00Z"),
        statement("h3", rate(300, "ug/d"), status="completed", start="2026-05-01T10:00:00Z"),
        statement("bad", rate(900, "ug/d"), status="entered-in-error", start="2026-06-01T10:00:00Z"),
        statement("h4", rate(12.5, "ug/h"), status="stopped", start="2026-08-01T10:00:00Z"),
        statement("now", rate(440, "ug/d"), start="2026-11-20T10:00:00Z"),
    ]
    history = chart(*resources).dose_history
    assert [(c.from_daily_dose_ug, c.to_daily_dose_ug, c.source) for c in history] == [
        (None, 260.0, "MedicationStatement/h1"),
        (260.0, 300.0, "MedicationStatement/h2"),
        (300.0, 440.0, "MedicationStatement/now"),
    ]
    assert [c.is_increase for c in history] == [False, True, True]


def test_history_comes_from_requests_when_there_are_no_current_statements() -> None:
    resources = [
        request("r1", rate(100, "ug/d"), status="completed", start="2026-11-17T08:00:00Z"),
        request("r2", rate(120, "ug/d"), start="2026-12-01T00:00:00Z"),
        statement("s-old", rate(999, "ug/d"), status="completed", start="2026-01-01T00:00:00Z"),
    ]
    history = chart(*resources).dose_history
    assert [(c.from_daily_dose_ug, c.to_daily_dose_ug) for c in history] == [(None, 100.0), (100.0, 120.0)]


def test_baclofen_named_intrathecal_counts_without_a_route() -> None:
    named = {"medicationCodeableConcept": {"text": "Baclofen 2 MG/ML Intrathecal Solution"}}
    dosage = {"doseAndRate": [{"rateQuantity": quantity(400, "ug/d")}]}
    assert only_dose(statement("s1", dosage, medication=named)) == 400.0
