"""Explicit UCUM unit conversion for intrathecal baclofen doses, concentrations and vital signs.

Why a small explicit table and not a UCUM library: a previous attempt measured ``ucumvert`` at 1.2 s to
import and 5.9 ms per conversion, and it would still accept units that make no sense for a pump dose.
This module knows exactly the units a baclofen dose is written in (clinical.md §5; UCUM ``ug/d``,
``ug/(24.h)``, ``ug/h``, ``ug/mL`` [S75, S76]) plus the human spellings EHRs print (``mcg/day``,
``MCG/HR``). Anything else raises ``UnitError``: a unit is converted explicitly or not at all.

Unit strings are matched case-insensitively (UCUM's own case-insensitive form writes ``MG``, ``UG``),
after removing spaces. The 1000x (mg vs mcg) and 24x (per hour vs per day) slips still convert here:
telling a slip from a real dose is the rules engine's job (``unit-scale-suspect``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

UCUM_SYSTEM = "http://unitsofmeasure.org"

# Mass units -> micrograms. "mcg" and the spelled-out forms are not UCUM but unambiguous.
_MASS_UG: dict[str, float] = {
    "ug": 1.0,
    "mcg": 1.0,
    "µg": 1.0,
    "μg": 1.0,
    "microgram": 1.0,
    "micrograms": 1.0,
    "mg": 1000.0,
    "milligram": 1000.0,
    "milligrams": 1000.0,
    "g": 1_000_000.0,
    "gram": 1_000_000.0,
    "grams": 1_000_000.0,
}

# Volume units -> millilitres.
_VOLUME_ML: dict[str, float] = {"ml": 1.0, "milliliter": 1.0, "millilitre": 1.0, "l": 1000.0}

# Time units -> hours. UCUM "mo" and "a" exist but a per-month pump dose is never meant; rejected.
_TIME_H: dict[str, float] = {
    "s": 1 / 3600,
    "sec": 1 / 3600,
    "min": 1 / 60,
    "minute": 1 / 60,
    "h": 1.0,
    "hr": 1.0,
    "hour": 1.0,
    "d": 24.0,
    "day": 24.0,
    "wk": 168.0,
    "week": 168.0,
}

# Units that are recognisably not convertible to a mass, with the reason in plain words.
_REFUSED: dict[str, str] = {
    "{tbl}": "tablets cannot be converted to micrograms",
    "{tablet}": "tablets cannot be converted to micrograms",
    "tablet": "tablets cannot be converted to micrograms",
    "tab": "tablets cannot be converted to micrograms",
    "{capsule}": "capsules cannot be converted to micrograms",
    "{puff}": "puffs cannot be converted to micrograms",
    "[iu]": "international units cannot be converted to micrograms",
    "kg": "a per-kilogram dose needs the body weight, which the check does not use",
}

_TEMPERATURE = {"cel": "C", "°c": "C", "degc": "C", "c": "C", "[degf]": "F", "°f": "F", "degf": "F", "f": "F"}
_PRESSURE = {"mm[hg]", "mmhg"}
_EGFR = {"ml/min/{1.73_m2}", "ml/min/1.73m2", "ml/min/1.73_m2", "ml/min/{1.73m2}", "ml/min/1.73.m2"}

_MULTIPLIER = re.compile(r"^(\d+(?:\.\d+)?)\.?([a-zµμ]+)$")
_DOSE_TEXT = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?|\.\d+)\s*(\S.*?)\s*$")


class UnitError(ValueError):
    """A value cannot be converted; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Unit strings as written -> normalised. A chart repeats a handful of units thousands of times; the
# cache is bounded so that odd input cannot grow it without limit.
_NORMALISED: dict[str, str] = {}
_NORMALISED_MAX = 512


def _normalise(unit: str) -> str:
    """Return the unit lower-cased and without spaces."""
    if type(unit) is str:
        key = _NORMALISED.get(unit)
        if key is not None:
            return key
        key = unit.strip().lower().replace(" ", "")
        if len(_NORMALISED) < _NORMALISED_MAX:
            _NORMALISED[unit] = key
        return key
    return unit.strip().lower().replace(" ", "")


def _check_value(value: float) -> float:
    """Return ``value`` as a float, refusing NaN, infinity and negatives."""
    kind = type(value)
    if kind is float:
        if 0.0 <= value < math.inf:  # the common case (NaN fails both comparisons)
            return value
    elif kind is int and value >= 0:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitError(f"{value!r} is not a number")
    if not math.isfinite(value):
        raise UnitError("the value is not a finite number")
    if value < 0:
        raise UnitError("a dose cannot be negative")
    return float(value)


def _single_time_hours(word: str) -> float | None:
    """Return the hours in one time unit word (``h``, ``day``, ``hours``), or None."""
    if word in _TIME_H:
        return _TIME_H[word]
    if len(word) > 3 and word.endswith("s") and word[:-1] in _TIME_H:
        return _TIME_H[word[:-1]]
    return None


def _time_hours(text: str) -> float:
    """Return the length of one time unit such as ``d``, ``(24.h)``, ``24hr`` or ``day`` in hours."""
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    single = _single_time_hours(text)
    if single is not None:
        return single
    match = _MULTIPLIER.match(text)
    if match:
        single = _single_time_hours(match.group(2))
        factor = float(match.group(1))
        if single is not None and factor > 0:
            return factor * single
    if text in _MASS_UG or text in _VOLUME_ML or text in _REFUSED:
        raise UnitError(f"'{text}' in the denominator is not a time: this is not a rate")
    raise UnitError(f"unknown time unit '{text}'")


def mass_ug(value: float, unit: str) -> float:
    """Convert a mass such as ``0.5 mg`` to micrograms."""
    value = _check_value(value)
    key = _normalise(unit)
    if key in _MASS_UG:
        return value * _MASS_UG[key]
    if key in _REFUSED:
        raise UnitError(_REFUSED[key])
    raise UnitError(f"unit '{unit}' is not a mass")


def volume_ml(value: float, unit: str) -> float:
    """Convert a volume such as ``20 mL`` to millilitres."""
    value = _check_value(value)
    key = _normalise(unit)
    if key in _VOLUME_ML:
        return value * _VOLUME_ML[key]
    raise UnitError(f"unit '{unit}' is not a volume")


def period_hours(value: float, unit: str) -> float:
    """Convert a duration such as ``1 d`` (FHIR ``Timing.repeat`` period) to hours."""
    value = _check_value(value)
    hours = value * _time_hours(_normalise(unit))
    if hours <= 0:
        raise UnitError("a period must be longer than zero")
    return hours


def _split_rate(unit: str) -> tuple[str, str]:
    """Split ``ug/(24.h)`` into numerator and denominator, refusing compound units like mg/kg/d."""
    key = _normalise(unit)
    if not key:
        raise UnitError("the dose has no unit")
    if key in _REFUSED:
        raise UnitError(_REFUSED[key])
    numerator, slash, denominator = key.partition("/")
    if not slash:
        if numerator in _MASS_UG:
            raise UnitError(f"'{unit}' is a single amount, not a rate per day or hour")
        raise UnitError(f"unknown dose unit '{unit}'")
    if "/" in denominator:
        if "kg" in denominator.split("/"):
            raise UnitError(_REFUSED["kg"])
        raise UnitError(f"unit '{unit}' has more than one denominator")
    if denominator in ("kg", "kg.d", "(kg.d)", "kg.h", "(kg.h)"):
        raise UnitError(_REFUSED["kg"])
    return numerator, denominator


def daily_dose_ug(value: float, unit: str, *, concentration_ug_per_ml: float | None = None) -> float:
    """Convert a dose rate such as ``20 ug/h`` or ``0.5 mL/d`` (with a concentration) to ug/d."""
    value = _check_value(value)
    numerator, denominator = _split_rate(unit)
    if numerator in _REFUSED:
        raise UnitError(_REFUSED[numerator])
    per_day = 24.0 / _time_hours(denominator)
    if numerator in _MASS_UG:
        return value * _MASS_UG[numerator] * per_day
    if numerator in _VOLUME_ML:
        if concentration_ug_per_ml is None:
            raise UnitError(f"a volume rate ({unit}) needs the concentration, which is not recorded")
        concentration = _check_value(concentration_ug_per_ml)
        if concentration == 0:
            raise UnitError("the recorded concentration is zero")
        return value * _VOLUME_ML[numerator] * per_day * concentration
    raise UnitError(f"unknown dose unit '{unit}'")


def ratio_daily_dose_ug(
    numerator_value: float,
    numerator_unit: str,
    denominator_value: float,
    denominator_unit: str,
    *,
    concentration_ug_per_ml: float | None = None,
) -> float:
    """Convert a FHIR Ratio rate such as ``100 ug / 4 h`` to ug/d."""
    hours = period_hours(denominator_value, denominator_unit)
    numerator_key = _normalise(numerator_unit)
    if numerator_key in _VOLUME_ML:
        if concentration_ug_per_ml is None:
            raise UnitError(f"a volume rate ({numerator_unit} per time) needs the concentration")
        amount_ug = volume_ml(numerator_value, numerator_unit) * _check_value(concentration_ug_per_ml)
    else:
        amount_ug = mass_ug(numerator_value, numerator_unit)
    return amount_ug * 24.0 / hours


def concentration_ug_per_ml(value: float, unit: str) -> float:
    """Convert a concentration such as ``2 mg/mL`` to ug/mL."""
    value = _check_value(value)
    numerator, slash, denominator = _normalise(unit).partition("/")
    if not slash or numerator not in _MASS_UG or denominator not in _VOLUME_ML:
        raise UnitError(f"unit '{unit}' is not a concentration (mass per volume)")
    return value * _MASS_UG[numerator] / _VOLUME_ML[denominator]


def ratio_concentration_ug_per_ml(
    numerator_value: float, numerator_unit: str, denominator_value: float, denominator_unit: str
) -> float:
    """Convert a FHIR Ratio strength such as ``10 mg / 20 mL`` to ug/mL."""
    volume = volume_ml(denominator_value, denominator_unit)
    if volume == 0:
        raise UnitError("the strength's volume is zero")
    return mass_ug(numerator_value, numerator_unit) / volume


def parse_dose_text(text: str) -> float:
    """Parse a proposed dose such as ``480 ug/d`` or ``20 ug/h`` to ug/d."""
    match = _DOSE_TEXT.match(text)
    if match is None:
        raise UnitError(f"'{text}' is not a number followed by a unit, e.g. '480 ug/d'")
    sign, number, unit = match.groups()
    if sign == "-":
        raise UnitError("a dose cannot be negative")
    return daily_dose_ug(float(number), unit)


def quantity_unit(quantity: Mapping[str, Any]) -> str | None:
    """Return a Quantity's unit: its UCUM ``code`` when the system is UCUM, else ``unit`` then ``code``."""
    code = quantity.get("code")
    unit = quantity.get("unit")
    if quantity.get("system") == UCUM_SYSTEM and isinstance(code, str) and code:
        return code
    if isinstance(unit, str) and unit:
        return unit
    if isinstance(code, str) and code:
        return code
    return None


def temperature_cel(value: float, unit: str) -> float:
    """Convert a body temperature in ``Cel`` or ``[degF]`` to degrees Celsius."""
    if not (type(value) is float and -math.inf < value < math.inf) and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise UnitError("the temperature is not a finite number")
    scale = _TEMPERATURE.get(_normalise(unit))
    if scale == "C":
        return float(value)
    if scale == "F":
        return (float(value) - 32.0) * 5.0 / 9.0
    raise UnitError(f"unit '{unit}' is not a temperature unit")


def pressure_mmhg(value: float, unit: str) -> float:
    """Return a blood pressure in mm[Hg], refusing any other unit."""
    value = _check_value(value)
    if _normalise(unit) in _PRESSURE:
        return value
    raise UnitError(f"unit '{unit}' is not mm[Hg]")


def egfr_ml_min_173(value: float, unit: str) -> float:
    """Return an eGFR in mL/min/{1.73_m2}, refusing any other unit."""
    value = _check_value(value)
    if _normalise(unit) in _EGFR:
        return value
    raise UnitError(f"unit '{unit}' is not mL/min/1.73m2")
