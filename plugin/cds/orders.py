"""The draft intrathecal baclofen order in ``context.draftOrders``: which one, its dose, a safer version.

Recognition and dose reading reuse the chart loader (``medications`` and ``dosage``), so a draft order is
read exactly as the same MedicationRequest would be read from the chart: one parser, one set of codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from plugin.domain.chart import Chart
from plugin.domain.codes import CodeSets
from plugin.domain.loader import medications
from plugin.domain.loader.dosage import DoseResult, daily_dose
from plugin.domain.loader.fhir import as_list, as_map, number
from plugin.domain.loader.index import ChartInputError, ResourceIndex

# Quantities inside a Dosage.doseAndRate entry that carry the dose (a Ratio's numerator does).
_DOSE_PATHS = (("rateQuantity",), ("doseQuantity",), ("rateRatio", "numerator"))


@dataclass(frozen=True, slots=True)
class DraftOrder:
    """An intrathecal baclofen MedicationRequest from draftOrders, with its medication's concentration."""

    reference: str  # "MedicationRequest/abc" (or the fullUrl when it has no id)
    resource: Mapping[str, Any]
    concentration_ug_per_ml: float | None


def find_orders(
    draft_orders: Mapping[str, Any], selections: Sequence[str], codes: CodeSets
) -> list[DraftOrder]:
    """Return the intrathecal baclofen MedicationRequests of a draftOrders Bundle (selected ones first)."""
    pairs = []
    for entry in as_list(draft_orders.get("entry")):
        resource = as_map(entry).get("resource")
        if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
            full_url = as_map(entry).get("fullUrl")
            pairs.append((full_url if isinstance(full_url, str) else None, resource))
    try:
        index = ResourceIndex(pairs)
    except ChartInputError:
        return []
    found: list[DraftOrder] = []
    for source, resource in index.of_type("MedicationRequest"):
        # The loader's own classifier: the same codes and names decide as for chart records.
        record = medications.classify_med_record(index, codes, source, resource, "MedicationRequest")
        if record.is_intrathecal:
            concentration = medications.baclofen_concentration_ug_per_ml(codes, record.medication)
            found.append(DraftOrder(source, resource, concentration))
    if selections:
        chosen = set(selections)
        found.sort(key=lambda order: order.reference not in chosen)
    return found


def chart_concentration(chart: Chart) -> float | None:
    """Return the pump concentration the chart records (pump first, else the current dose record's)."""
    if chart.pump is not None and chart.pump.concentration_ug_per_ml:
        return chart.pump.concentration_ug_per_ml
    for record in chart.dose_records:
        if record.concentration_ug_per_ml:
            return record.concentration_ug_per_ml
    return None


def order_dose(order: DraftOrder, chart: Chart) -> DoseResult:
    """Return the order's daily dose in ug/d (a volume rate falls back to the chart's concentration)."""
    concentration = order.concentration_ug_per_ml or chart_concentration(chart)
    return daily_dose(as_list(order.resource.get("dosageInstruction")), concentration)


def _decimals(ug_per_day_per_unit: float) -> int:
    """Return how many decimals keep a rounding step at or below 0.1 ug/d in this unit."""
    if ug_per_day_per_unit <= 0 or not math.isfinite(ug_per_day_per_unit):
        return 1
    return max(0, min(6, math.ceil(math.log10(ug_per_day_per_unit / 0.1) - 1e-9)))


def scaled_order(
    order: DraftOrder, chart: Chart, target_ug_per_day: float
) -> tuple[dict[str, Any], float] | None:
    """Return a copy of the order at ``target_ug_per_day`` in the order's own unit form, and its dose.

    Every dose quantity is scaled by the same factor (so ug/h stays ug/h and a flex schedule keeps its
    shape), then rounded down to a step of at most 0.1 ug/d so the new dose never exceeds the target.
    None when the order's dose cannot be read or the rounded dose does not fit.
    """
    current = order_dose(order, chart).daily_dose_ug
    if current is None or current <= 0 or target_ug_per_day <= 0:
        return None
    factor = target_ug_per_day / current
    # A JSON round trip is the deep copy: the resource came from JSON, and orjson is ~10x copy.deepcopy.
    resource = orjson.loads(orjson.dumps(dict(order.resource)))
    for dosage in as_list(resource.get("dosageInstruction")):
        for entry in as_list(as_map(dosage).get("doseAndRate")):
            for path in _DOSE_PATHS:
                quantity: Any = entry
                for step in path:
                    quantity = as_map(quantity).get(step)
                value = number(as_map(quantity).get("value"))
                if value is None or value == 0 or not isinstance(quantity, dict):
                    continue
                places = _decimals(current / value)
                scaled = math.floor(value * factor * 10**places + 1e-9) / 10**places
                quantity["value"] = int(scaled) if places == 0 else scaled
        if isinstance(dosage, dict):
            dosage.pop("text", None)  # the old free text would contradict the new numbers
    new_order = DraftOrder(order.reference, resource, order.concentration_ug_per_ml)
    new_dose = order_dose(new_order, chart).daily_dose_ug
    if new_dose is None or new_dose > target_ug_per_day + 1e-6 or new_dose <= 0:
        return None
    return resource, new_dose


def unit_form(order: DraftOrder) -> str | None:
    """Return the unit the order writes its dose in (e.g. ``ug/h``), for display."""
    for dosage in as_list(order.resource.get("dosageInstruction")):
        for entry in as_list(as_map(dosage).get("doseAndRate")):
            for path in _DOSE_PATHS:
                quantity: Any = entry
                for step in path:
                    quantity = as_map(quantity).get(step)
                quantity = as_map(quantity)
                unit = quantity.get("unit") or quantity.get("code")
                if isinstance(unit, str):
                    return unit
    return None
