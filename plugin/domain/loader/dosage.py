"""Turn FHIR Dosage entries into one daily intrathecal dose in ug/d (CONTRACT §5 dose forms).

Accepted: ``doseAndRate.rateQuantity`` (ug/h, ug/d, mL/h with a concentration), ``rateRatio``,
``doseQuantity`` as a rate (ug/d) or as an amount with ``timing.repeat`` frequency/period, and several
Dosage entries with ``timing.repeat.timeOfDay`` (a flex schedule: each rate runs from its time of day
until the next step's, wrapping at midnight; daily dose = sum of rate x hours, plus timed boluses).
Everything else (ranges, text only, conflicting entries) is unconvertible, with a reason, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

from plugin.domain import units
from plugin.domain.chart import FlexStep
from plugin.domain.loader.fhir import JSON, as_list, as_map, number
from plugin.domain.units import UnitError


@dataclass(frozen=True, slots=True)
class DoseResult:
    """A dosage read as ug/d, or the reason it could not be."""

    daily_dose_ug: float | None
    reason: str | None = None
    rate_ug_per_h: float | None = None
    flex_steps: tuple[FlexStep, ...] = ()
    original_text: str | None = None


def _quantity(quantity: Any, what: str) -> tuple[float, str]:
    """Return a Quantity's value and unit, refusing bounds (``<``) and missing parts."""
    quantity = as_map(quantity)
    if quantity.get("comparator"):
        raise UnitError(f"the {what} is a bound ({quantity['comparator']}), not a value")
    value = number(quantity.get("value"))
    if value is None:
        raise UnitError(f"the {what} has no numeric value")
    unit = units.quantity_unit(quantity)
    if unit is None:
        raise UnitError(f"the {what} has no unit")
    return value, unit


def _rate_daily_ug(entry: JSON, concentration: float | None) -> float | None:
    """Return the ug/d of a doseAndRate entry's rate, or None when it has no rate."""
    if "rateQuantity" in entry:
        value, unit = _quantity(entry["rateQuantity"], "rate")
        return units.daily_dose_ug(value, unit, concentration_ug_per_ml=concentration)
    if "rateRatio" in entry:
        ratio = as_map(entry["rateRatio"])
        num_value, num_unit = _quantity(ratio.get("numerator"), "rate numerator")
        den_value, den_unit = _quantity(ratio.get("denominator"), "rate denominator")
        return units.ratio_daily_dose_ug(
            num_value, num_unit, den_value, den_unit, concentration_ug_per_ml=concentration
        )
    if "rateRange" in entry:
        raise UnitError("the rate is a range, not one dose")
    return None


def _amount_ug(quantity: Any, concentration: float | None) -> float:
    """Return a single dose amount (ug, mg or mL with a concentration) in ug."""
    value, unit = _quantity(quantity, "dose")
    try:
        return units.mass_ug(value, unit)
    except UnitError as mass_error:
        try:
            volume = units.volume_ml(value, unit)
        except UnitError:
            raise mass_error from None
    if concentration is None:
        raise UnitError(f"a dose in {unit} needs the concentration, which is not recorded")
    return volume * concentration


def _repeat(dosage: JSON) -> JSON:
    """Return ``timing.repeat`` of a Dosage (empty when absent)."""
    return as_map(as_map(dosage.get("timing")).get("repeat"))


def _scheduled_daily_ug(dosage: JSON, amount_ug: float) -> float:
    """Return amount x frequency per period as ug/d, from ``timing.repeat``."""
    repeat = _repeat(dosage)
    if not repeat:
        code = as_map(as_map(dosage.get("timing")).get("code")).get("text")
        detail = f" ('{code}')" if isinstance(code, str) else ""
        raise UnitError(f"a single dose with no frequency and period{detail} cannot be made daily")
    if "periodMax" in repeat or (
        "frequencyMax" in repeat and repeat.get("frequencyMax") != repeat.get("frequency")
    ):
        raise UnitError("the schedule is a range (frequencyMax/periodMax), not one dose")
    period, period_unit = number(repeat.get("period")), repeat.get("periodUnit")
    if period is None or not isinstance(period_unit, str):
        raise UnitError("the schedule has no period and period unit")
    # "every <period>" with no frequency reads as once per period (the FHIR examples write it so).
    frequency = number(repeat.get("frequency", 1))
    if frequency is None or frequency <= 0:
        raise UnitError("the schedule's frequency is not a positive number")
    return amount_ug * frequency * 24.0 / units.period_hours(period, period_unit)


def _entry_daily_ug(dosage: JSON, entry: JSON, concentration: float | None) -> float | None:
    """Return the ug/d of one doseAndRate entry of a continuous (not flex) Dosage, or None."""
    rate = _rate_daily_ug(entry, concentration)
    if rate is not None:
        return rate
    if "doseRange" in entry:
        raise UnitError("the dose is a range, not one dose")
    if "doseQuantity" not in entry:
        return None
    value, unit = _quantity(entry["doseQuantity"], "dose")
    if "/" in unit:  # a rate written as a dose, e.g. 400 ug/d
        return units.daily_dose_ug(value, unit, concentration_ug_per_ml=concentration)
    return _scheduled_daily_ug(dosage, _amount_ug(entry["doseQuantity"], concentration))


def _single_daily_ug(dosage: JSON, concentration: float | None) -> float | None:
    """Return one Dosage's ug/d (entries must agree), or None when it carries no dose."""
    values = {
        round(value, 6)
        for entry in as_list(dosage.get("doseAndRate"))
        if (value := _entry_daily_ug(dosage, as_map(entry), concentration)) is not None
    }
    if len(values) > 1:
        raise UnitError("the dosage gives several different doses")
    return values.pop() if values else None


def _flex(dosages: Sequence[JSON], concentration: float | None) -> DoseResult:
    """Sum a time-of-day schedule over 24 h (rates as steps, timed amounts as boluses)."""
    rates: dict[time, float] = {}
    bolus_ug = 0.0
    for dosage in dosages:
        times = [_parse_time(t) for t in as_list(_repeat(dosage).get("timeOfDay"))]
        for entry in map(as_map, as_list(dosage.get("doseAndRate"))):
            rate_daily = _rate_daily_ug(entry, concentration)
            if rate_daily is None and "doseQuantity" in entry and times:
                bolus_ug += _amount_ug(entry["doseQuantity"], concentration) * len(times)
                continue
            if rate_daily is None:
                continue
            if not times:
                raise UnitError("a continuous rate is mixed with a time-of-day (flex) schedule")
            for start in times:
                if start in rates and abs(rates[start] - rate_daily / 24.0) > 1e-9:
                    raise UnitError(f"the flex schedule gives two rates at {start.isoformat()}")
                rates[start] = rate_daily / 24.0
    steps = tuple(FlexStep(start, rate) for start, rate in sorted(rates.items()))
    daily = bolus_ug
    for position, step in enumerate(steps):
        next_start = steps[(position + 1) % len(steps)].start
        hours = _hours_between(step.start, next_start) if len(steps) > 1 else 24.0
        daily += step.rate_ug_per_h * hours
    if not steps and bolus_ug == 0.0:
        raise UnitError("the time-of-day schedule carries no dose")
    return DoseResult(daily, flex_steps=steps)


def _parse_time(value: Any) -> time:
    """Parse a FHIR time (``08:00:00``)."""
    if not isinstance(value, str):
        raise UnitError(f"time of day {value!r} is not a time")
    try:
        return time.fromisoformat(value)
    except ValueError as error:
        raise UnitError(f"time of day {value!r} is not a time") from error


def _hours_between(start: time, end: time) -> float:
    """Return the hours from ``start`` to the next ``end``, wrapping at midnight."""
    seconds = (end.hour * 3600 + end.minute * 60 + end.second) - (
        start.hour * 3600 + start.minute * 60 + start.second
    )
    return (seconds % 86400) / 3600.0


def daily_dose(dosages: Sequence[Mapping[str, Any]], concentration_ug_per_ml: float | None) -> DoseResult:
    """Return the daily dose in ug/d of a record's Dosage list, or the reason it cannot be read."""
    dosages = [as_map(d) for d in dosages]
    texts = [d["text"] for d in dosages if isinstance(d.get("text"), str)]
    original = "; ".join(texts) or None
    try:
        if not dosages:
            raise UnitError("the record has no dosage")
        if any(_repeat(d).get("timeOfDay") for d in dosages):
            result = _flex(dosages, concentration_ug_per_ml)
            return DoseResult(result.daily_dose_ug, flex_steps=result.flex_steps, original_text=original)
        values = {v for d in dosages if (v := _single_daily_ug(d, concentration_ug_per_ml)) is not None}
        if len(values) > 1:
            raise UnitError("several dosage lines without a time-of-day schedule give different doses")
        if not values:
            if original:
                raise UnitError(f"the dose is recorded only as text ('{original}')")
            raise UnitError("the record has no dose")
        daily = values.pop()
        continuous = all(
            "rateQuantity" in as_map(e) or "rateRatio" in as_map(e)
            for d in dosages
            for e in as_list(d.get("doseAndRate"))
        )
        return DoseResult(daily, rate_ug_per_h=daily / 24.0 if continuous else None, original_text=original)
    except UnitError as error:
        return DoseResult(None, reason=error.reason, original_text=original)
