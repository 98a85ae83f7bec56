"""Specification of origin, pregnancy, the pump, refills and the patient banner facts."""

from __future__ import annotations

import pytest
from loader_builders import (
    NOW,
    PUMP,
    SUBJECT,
    chart,
    condition,
    medication,
    observation,
    patient,
    quantity,
    rate,
    statement,
)

from plugin.domain.chart import Origin
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import chart_from_resources


@pytest.mark.parametrize(
    ("conditions", "origin"),
    [
        ([("90584004", "Spinal cord injury")], Origin.SPINAL),
        ([("24700007", "Multiple sclerosis")], Origin.SPINAL),
        ([("128188000", "Cerebral palsy")], Origin.CEREBRAL),
        ([("127295002", "Traumatic brain injury")], Origin.CEREBRAL),
        ([("230690007", "Stroke")], Origin.CEREBRAL),
        ([(None, "Spinal cord injury at T4")], Origin.SPINAL),
        ([(None, "Hypertension")], Origin.UNKNOWN),
        ([], Origin.UNKNOWN),
    ],
)
def test_origin_is_decided_from_active_conditions(conditions: list, origin: Origin) -> None:
    resources = [condition(f"c{i}", code, text) for i, (code, text) in enumerate(conditions)]
    assert chart(*resources).origin == origin


def test_spinal_and_cerebral_together_are_unknown_with_both_as_evidence() -> None:
    result = chart(condition("sci", "90584004", "SCI"), condition("tbi", "127295002", "TBI"))
    assert result.origin == Origin.UNKNOWN
    assert sorted(e.category for e in result.origin_evidence) == ["cerebral", "spinal"]


def test_resolved_or_refuted_conditions_do_not_decide_origin() -> None:
    refuted = condition("r", "90584004", "SCI", verificationStatus={"coding": [{"code": "refuted"}]})
    assert chart(condition("s", "90584004", "SCI", clinical="resolved"), refuted).origin == Origin.UNKNOWN


def test_active_pregnancy_is_recorded_but_not_a_negative_test() -> None:
    assert chart(condition("p", None, "Pregnancy, 17 weeks")).pregnancy is not None
    assert chart(condition("p", None, "Pregnancy test negative")).pregnancy is None
    assert chart(condition("p", None, "Pregnancy", clinical="resolved")).pregnancy is None


def pump_resources() -> list[dict]:
    """Return a pump Device, its DeviceUseStatement, pump Observations and refill Procedures."""
    device = {
        "resourceType": "Device",
        "id": "d1",
        "status": "active",
        "patient": SUBJECT,
        "modelNumber": "8637-20",
        "type": {"text": "Implantable intrathecal infusion pump"},
    }
    use = {
        "resourceType": "DeviceUseStatement",
        "id": "u1",
        "status": "active",
        "subject": SUBJECT,
        "device": {"reference": "Device/d1"},
        "timingPeriod": {"start": "2024-03-06T08:00:00Z"},
    }

    def value(code: str, amount: float, unit: str, when: str = "2026-11-01T10:00:00Z") -> dict:
        return observation(
            f"o-{code}-{when[:10]}", PUMP, code, effective=when, valueQuantity=quantity(amount, unit)
        )

    refill = {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "subject": SUBJECT,
        "code": {"text": "Intrathecal baclofen pump refill"},
        "performedDateTime": "2026-11-01T10:05:00Z",
    }
    hip = {
        **refill,
        "id": "hip",
        "code": {"text": "Hip implant"},
        "performedDateTime": "2026-01-01T10:00:00Z",
    }
    return [
        device,
        use,
        value("reservoir-capacity", 20, "mL"),
        value("fill-volume", 18, "mL", "2026-08-01T10:00:00Z"),
        value("fill-volume", 20, "mL"),
        value("low-reservoir-alarm-volume", 2, "mL"),
        value("concentration", 2, "mg/mL"),
        observation("o-next", PUMP, "next-refill-date", valueDateTime="2027-01-30T10:00:00Z"),
        refill,
        hip,
    ]


def test_pump_values_come_from_the_latest_pump_observations() -> None:
    result = chart(*pump_resources())
    pump = result.pump
    assert pump is not None
    assert (pump.source, pump.model) == ("Device/d1", "8637-20")
    assert (pump.reservoir_capacity_ml, pump.fill_volume_ml, pump.low_reservoir_alarm_volume_ml) == (
        20.0,
        20.0,
        2.0,
    )
    assert pump.concentration_ug_per_ml == 2000.0
    assert (
        pump.next_refill_date is not None and pump.next_refill_date.isoformat() == "2027-01-30T10:00:00+00:00"
    )
    assert pump.implant_date is not None and pump.implant_date.year == 2024
    assert pump.last_fill_date is not None and pump.last_fill_date.date().isoformat() == "2026-11-01"
    assert [(r.source, r.volume_ml) for r in result.refills] == [("Procedure/pr1", 20.0)]


def test_pump_concentration_falls_back_to_the_dose_records_medication() -> None:
    resources = [r for r in pump_resources() if "concentration" not in str(r.get("id"))]
    med = {"medicationReference": {"reference": "Medication/m1"}}
    resources += [medication("m1", 1.0), statement("s1", rate(400, "ug/d"), medication=med)]
    pump = chart(*resources).pump
    assert pump is not None and pump.concentration_ug_per_ml == 1000.0


def test_implant_date_comes_from_an_implant_procedure_without_device_use() -> None:
    implant = {
        "resourceType": "Procedure",
        "id": "imp",
        "status": "completed",
        "subject": SUBJECT,
        "code": {"text": "Implantation of intrathecal baclofen pump"},
        "performedDateTime": "2026-11-17T08:00:00Z",
    }
    pump = chart(implant).pump
    assert pump is not None and pump.implant_date is not None and pump.implant_date.day == 17


def test_no_pump_data_gives_no_pump() -> None:
    assert chart().pump is None


def test_patient_banner_facts() -> None:
    person = patient(
        name=[
            {"use": "nickname", "text": "Al"},
            {"use": "official", "given": ["Alex", "J"], "family": "Rivera"},
        ],
        identifier=[{"value": "X1"}, {"type": {"coding": [{"code": "MR"}]}, "value": "MRN-42"}],
    )
    result = chart_from_resources([person], codes=load_code_sets(), now=NOW)
    assert (result.patient.reference, result.patient.name, result.patient.mrn) == (
        "Patient/p1",
        "Alex J Rivera",
        "MRN-42",
    )
    assert result.patient.birth_date is not None and result.patient.sex == "female"
