"""The implanted pump and its refills, from Device, DeviceUseStatement, Procedure and pump Observations.

Values come from the latest pump Observation of each code (``config/codes.toml`` [pump]), else from
Device.property with the same codes. The concentration falls back to the strength of the current dose
records' Medication when every one of them agrees. The implant date comes from the active
DeviceUseStatement (timing, else recordedOn), else the latest implant Procedure. A Procedure counts as
an implant or refill only when its text also names the pump context (pump, intrathecal, baclofen).
The last fill is the latest refill Procedure or fill-volume Observation; its volume is that event's own
(never a volume from an older fill).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from plugin.domain import units
from plugin.domain.chart import DoseRecord, Pump, Refill
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import (
    JSON,
    as_list,
    as_map,
    concept_texts,
    iter_codings,
    number,
    parse_datetime,
    period_start,
)
from plugin.domain.loader.index import ResourceIndex
from plugin.domain.units import UnitError

PumpValues = Mapping[str, list[tuple[datetime, float | datetime, str]]]
_GONE = frozenset({"entered-in-error", "inactive"})


def _device_texts(device: JSON) -> list[str]:
    """Return every name a Device carries (type, deviceName, model)."""
    texts = concept_texts(device.get("type"))
    texts.extend(n for d in as_list(device.get("deviceName")) if isinstance(n := as_map(d).get("name"), str))
    for key in ("modelNumber", "manufacturer"):
        if isinstance(device.get(key), str):
            texts.append(device[key])
    return texts


def _procedure_kind(codes: CodeSets, procedure: JSON) -> str | None:
    """Return ``implant`` or ``refill`` for a pump Procedure, else None."""
    texts = concept_texts(procedure.get("code"))
    if not any(codes.procedure_context.matches(t) for t in texts):
        return None
    if any(codes.refill_procedure.matches(t) for t in texts):
        return "refill"
    if any(codes.implant_procedure.matches(t) for t in texts):
        return "implant"
    return None


def _device_properties(codes: CodeSets, device: JSON) -> dict[str, float]:
    """Return pump values recorded as Device.property (volumes in mL, concentration in ug/mL)."""
    values: dict[str, float] = {}
    for prop in map(as_map, as_list(device.get("property"))):
        field = next(
            (
                codes.pump_observations[c]
                for c in iter_codings(prop.get("type"))
                if c in codes.pump_observations
            ),
            None,
        )
        quantities = as_list(prop.get("valueQuantity"))
        if field is None or field == "next_refill_date" or not quantities:
            continue
        quantity = as_map(quantities[0])
        value, unit = number(quantity.get("value")), units.quantity_unit(quantity)
        try:
            if value is None or unit is None:
                raise UnitError("no quantity")
            if field == "concentration_ug_per_ml":
                values[field] = units.concentration_ug_per_ml(value, unit)
            else:
                values[field] = units.volume_ml(value, unit)
        except UnitError:
            continue
    return values


def _latest(values: PumpValues, field: str, now: datetime) -> tuple[datetime, Any, str] | None:
    """Return the latest (effective, value, source) of a pump field at or before ``now``."""
    candidates = [v for v in values.get(field, []) if v[0] <= now]
    return max(candidates, key=lambda v: (v[0], v[2])) if candidates else None


def _refills(
    index: ResourceIndex, codes: CodeSets, values: PumpValues, now: datetime
) -> tuple[list[Refill], list[datetime]]:
    """Return refills (with same-day fill volumes) and implant dates from completed pump Procedures."""
    refills: list[Refill] = []
    implants: list[datetime] = []
    fills = values.get("fill_volume_ml", [])
    for source, procedure in index.of_type("Procedure"):
        if procedure.get("status") != "completed":
            continue
        kind = _procedure_kind(codes, procedure)
        at = period_start(procedure, "performed")
        if kind is None or at is None or at > now:
            continue
        if kind == "implant":
            implants.append(at)
            continue
        same_day = [f for f in fills if f[0].date() == at.date() and isinstance(f[1], float)]
        closest = min(same_day, key=lambda f: abs((f[0] - at).total_seconds()), default=None)
        refills.append(Refill(at, source, closest[1] if closest is not None else None))  # type: ignore[arg-type]
    refills.sort(key=lambda r: (r.at, r.source))
    return refills, implants


def read_pump(
    index: ResourceIndex,
    codes: CodeSets,
    values: PumpValues,
    dose_records: tuple[DoseRecord, ...],
    now: datetime,
) -> tuple[Pump | None, tuple[Refill, ...]]:
    """Return the pump (None when nothing about a pump is recorded) and its refills."""
    evidence: list[str] = []
    devices = {
        source: device
        for source, device in index.of_type("Device")
        if device.get("status") not in _GONE
        and any(codes.pump_device_text.matches(t) for t in _device_texts(device))
    }
    device_source: str | None = None
    implant_date: datetime | None = None
    for source, statement in index.of_type("DeviceUseStatement"):
        device = index.resolve(statement.get("device"))
        matched = next((s for s, d in devices.items() if d is device), None)
        if statement.get("status") != "active" or matched is None:
            continue
        device_source = matched
        implant_date = period_start(statement, "timing") or parse_datetime(statement.get("recordedOn"))
        evidence.append(source)
        break
    if device_source is None and devices:
        device_source = next(iter(devices))
    properties = _device_properties(codes, devices[device_source]) if device_source else {}
    if device_source:
        evidence.insert(0, device_source)
    refills, implants = _refills(index, codes, values, now)
    if implant_date is None and implants:
        implant_date = max(implants)
    observed: dict[str, Any] = {}
    for field in codes.pump_observations.values():
        latest = _latest(values, field, now)
        if latest is not None:
            observed[field] = latest[1]
            evidence.append(latest[2])
        elif field in properties:
            observed[field] = properties[field]
    last_fill = _latest(values, "fill_volume_ml", now)
    last_fill_date, fill_volume = (last_fill[0], last_fill[1]) if last_fill else (None, None)
    if refills and (last_fill_date is None or refills[-1].at.date() > last_fill_date.date()):
        last_fill_date, fill_volume = refills[-1].at, refills[-1].volume_ml
    if fill_volume is None and last_fill_date is None:
        fill_volume = properties.get("fill_volume_ml")
    concentration = observed.get("concentration_ug_per_ml")
    if concentration is None:
        strengths = {r.concentration_ug_per_ml for r in dose_records}
        if len(strengths) == 1 and None not in strengths:
            concentration = strengths.pop()
    if not (device_source or evidence or implants or refills):
        return None, ()
    pump = Pump(
        source=device_source,
        model=_model(devices[device_source]) if device_source else None,
        reservoir_capacity_ml=observed.get("reservoir_capacity_ml"),
        fill_volume_ml=fill_volume,
        last_fill_date=last_fill_date,
        low_reservoir_alarm_volume_ml=observed.get("low_reservoir_alarm_volume_ml"),
        next_refill_date=observed.get("next_refill_date"),
        concentration_ug_per_ml=concentration,
        implant_date=implant_date,
        evidence=tuple(dict.fromkeys(evidence)),
    )
    return pump, tuple(refills)


def _model(device: JSON) -> str | None:
    """Return a Device's model (modelNumber, else its first name)."""
    if isinstance(device.get("modelNumber"), str):
        return str(device["modelNumber"])
    texts = _device_texts(device)
    return texts[0] if texts else None
