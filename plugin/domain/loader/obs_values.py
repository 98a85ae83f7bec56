"""Observation value readers shared by the loader's Observation modules, on the per-Observation path.

Exact ``type(x)`` tests come before the general helpers of ``loader.fhir``; pump values are converted to
canonical units (mL, ug/mL) or read as dates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.domain import units
from plugin.domain.loader.fhir import JSON, as_map, number, parse_datetime
from plugin.domain.units import UnitError


def fast_number(value: Any) -> float | None:
    """``number`` with the JSON int and float cases first."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    return number(value)


def value_quantity(holder: JSON) -> tuple[float, str] | None:
    """Return ``valueQuantity`` as (value, unit) when it has both and no comparator."""
    quantity = holder.get("valueQuantity")
    if type(quantity) is not dict:
        quantity = as_map(quantity)
    value, unit = fast_number(quantity.get("value")), units.quantity_unit(quantity)
    if value is None or unit is None or quantity.get("comparator"):
        return None
    return value, unit


def pump_value(field_name: str, observation: JSON) -> float | datetime:
    """Return a pump Observation's value in canonical units; raise UnitError when unreadable."""
    if field_name == "next_refill_date":
        moment = parse_datetime(observation.get("valueDateTime")) or parse_datetime(
            as_map(observation.get("valuePeriod")).get("start")
        )
        if moment is None:
            moment = parse_datetime(observation.get("valueString"))
        if moment is None:
            raise UnitError("no date")
        return moment
    quantity = value_quantity(observation)
    if quantity is None:
        raise UnitError("no quantity")
    if field_name == "concentration_ug_per_ml":
        return units.concentration_ug_per_ml(*quantity)
    return units.volume_ml(*quantity)
