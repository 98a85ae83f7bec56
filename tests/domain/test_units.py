"""Specification of the explicit UCUM table: every accepted spelling converts, everything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.domain.units import (
    UnitError,
    concentration_ug_per_ml,
    daily_dose_ug,
    egfr_ml_min_173,
    mass_ug,
    parse_dose_text,
    period_hours,
    pressure_mmhg,
    quantity_unit,
    ratio_concentration_ug_per_ml,
    ratio_daily_dose_ug,
    temperature_cel,
)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (400, "ug/d", 400.0),
        (400, "ug/(24.h)", 400.0),
        (400, "ug/24.h", 400.0),
        (400, "mcg/day", 400.0),
        (400, "MCG/24HR", 400.0),
        (400, "microgram/day", 400.0),
        (400, "micrograms/day", 400.0),
        (400, "µg/d", 400.0),
        (20, "ug/h", 480.0),
        (20, "mcg/hr", 480.0),
        (20, "MCG/HR", 480.0),
        (20, "mcg/hour", 480.0),
        (0.5, "ug/min", 720.0),
        (0.48, "mg/d", 480.0),
        (0.02, "mg/h", 480.0),
        (0.0004, "g/d", 400.0),
        (2800, "ug/wk", 400.0),
        (0, "ug/d", 0.0),
    ],
)
def test_accepted_rate_units_convert_to_ug_per_day(value: float, unit: str, expected: float) -> None:
    assert daily_dose_ug(value, unit) == pytest.approx(expected)


def test_mg_per_day_and_ug_per_day_are_the_same_dose_a_thousandfold_apart() -> None:
    assert daily_dose_ug(0.4, "mg/d") == pytest.approx(daily_dose_ug(400, "ug/d"))


def test_ug_per_hour_is_24_times_ug_per_day() -> None:
    assert daily_dose_ug(20, "ug/h") == pytest.approx(24 * daily_dose_ug(20, "ug/d"))


@pytest.mark.parametrize(("value", "unit"), [(400, "mg/d"), (400, "ug/h")])
def test_unit_slips_still_convert_because_flagging_them_is_the_engines_job(value: float, unit: str) -> None:
    assert daily_dose_ug(value, unit) in (400_000.0, 9600.0)


def test_volume_rate_converts_with_a_concentration() -> None:
    assert daily_dose_ug(0.0125, "mL/h", concentration_ug_per_ml=2000) == pytest.approx(600.0)
    assert daily_dose_ug(0.2, "mL/d", concentration_ug_per_ml=2000) == pytest.approx(400.0)


def test_volume_rate_without_concentration_is_unconvertible() -> None:
    with pytest.raises(UnitError, match="concentration"):
        daily_dose_ug(0.0125, "mL/h")


@pytest.mark.parametrize(
    ("unit", "reason"),
    [
        ("{tbl}", "tablets"),
        ("tablet", "tablets"),
        ("mg/kg", "kilogram"),
        ("mg/kg/d", "kilogram"),
        ("ug/kg/h", "kilogram"),
        ("ug", "single amount"),
        ("mg", "single amount"),
        ("ug/mL", "not a rate"),
        ("ug/mo", "unknown time unit"),
        ("furlong/fortnight", "unknown"),
        ("", "no unit"),
        ("[iU]/d", "international units"),
    ],
)
def test_unconvertible_units_raise_with_a_reason(unit: str, reason: str) -> None:
    with pytest.raises(UnitError, match=reason) as raised:
        daily_dose_ug(1, unit)
    assert raised.value.reason


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_doses_are_refused(value: float) -> None:
    with pytest.raises(UnitError):
        daily_dose_ug(value, "ug/d")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("480 ug/d", 480.0),
        ("480 mcg/day", 480.0),
        ("480 ug/(24.h)", 480.0),
        ("20 ug/h", 480.0),
        ("0.48 mg/d", 480.0),
        ("  480ug/d ", 480.0),
        ("0 ug/d", 0.0),
        (".5 mg/d", 500.0),
    ],
)
def test_proposed_dose_text_parses(text: str, expected: float) -> None:
    assert parse_dose_text(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["480", "ug/d", "-480 ug/d", "480 tablets", "480 mL/h", "4,8 mg/d", "1e3 ug/d", "", "480 ug"]
)
def test_proposed_dose_text_without_number_or_valid_unit_is_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_dose_text(text)


def test_ratio_rates_convert() -> None:
    assert ratio_daily_dose_ug(100, "ug", 4, "h") == pytest.approx(600.0)
    assert ratio_daily_dose_ug(0.4, "mg", 1, "d") == pytest.approx(400.0)
    assert ratio_daily_dose_ug(0.05, "mL", 1, "h", concentration_ug_per_ml=500) == pytest.approx(600.0)
    with pytest.raises(UnitError):
        ratio_daily_dose_ug(0.05, "mL", 1, "h")
    with pytest.raises(UnitError):
        ratio_daily_dose_ug(100, "ug", 0, "h")


def test_concentrations_convert_to_ug_per_ml() -> None:
    assert concentration_ug_per_ml(2, "mg/mL") == 2000.0
    assert concentration_ug_per_ml(500, "ug/mL") == 500.0
    assert concentration_ug_per_ml(500, "mcg/ml") == 500.0
    assert ratio_concentration_ug_per_ml(10, "mg", 20, "mL") == 500.0
    with pytest.raises(UnitError):
        concentration_ug_per_ml(2, "mg")
    with pytest.raises(UnitError):
        ratio_concentration_ug_per_ml(10, "mg", 0, "mL")


def test_masses_and_periods() -> None:
    assert mass_ug(0.5, "mg") == 500.0
    assert period_hours(12, "h") == 12.0
    assert period_hours(1, "d") == 24.0
    with pytest.raises(UnitError):
        mass_ug(1, "mL")
    with pytest.raises(UnitError):
        period_hours(1, "mo")


def test_ucum_quantity_prefers_code_over_display_unit() -> None:
    assert (
        quantity_unit({"value": 1, "unit": "mcg/day", "system": "http://unitsofmeasure.org", "code": "ug/d"})
        == "ug/d"
    )
    assert quantity_unit({"value": 1, "unit": "mcg/day", "code": "MCGD"}) == "mcg/day"
    assert quantity_unit({"value": 1, "code": "ug/d"}) == "ug/d"
    assert quantity_unit({"value": 1}) is None


def test_vital_units() -> None:
    assert temperature_cel(38.4, "Cel") == 38.4
    assert temperature_cel(101.12, "[degF]") == pytest.approx(38.4)
    assert pressure_mmhg(85, "mm[Hg]") == 85.0
    assert egfr_ml_min_173(25, "mL/min/{1.73_m2}") == 25.0
    with pytest.raises(UnitError):
        temperature_cel(38, "K")
    with pytest.raises(UnitError):
        pressure_mmhg(85, "kPa")
    with pytest.raises(UnitError):
        egfr_ml_min_173(25, "mL/min")


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_hourly_and_daily_spellings_agree_for_any_value(value: float) -> None:
    assert daily_dose_ug(value, "ug/h") == pytest.approx(daily_dose_ug(value * 24, "ug/d"))
    assert daily_dose_ug(value, "mg/d") == pytest.approx(daily_dose_ug(value * 1000, "mcg/day"))


@given(st.text(max_size=20))
def test_parse_dose_text_either_converts_or_raises_unit_error(text: str) -> None:
    try:
        result = parse_dose_text(text)
    except UnitError:
        return
    assert result >= 0
