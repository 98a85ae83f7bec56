"""Vital signs from Observations: body temperature, and blood pressure as a panel or standalone values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from plugin.domain import units
from plugin.domain.chart import VitalSign
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import JSON, as_map
from plugin.domain.loader.obs_values import value_quantity
from plugin.domain.units import UnitError


def pressure_kind(codes: CodeSets, concept: Any) -> str | None:
    """Return ``systolic`` when any coding is systolic, else ``diastolic`` when any is, else None."""
    codings = as_map(concept).get("coding")
    if not isinstance(codings, list):
        return None
    diastolic = False
    for coding in codings:
        if type(coding) is dict or isinstance(coding, Mapping):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                pair = (system, code)
                if pair in codes.systolic:
                    return "systolic"
                if pair in codes.diastolic:
                    diastolic = True
    return "diastolic" if diastolic else None


def read_vitals(
    kind: str, observation: JSON, source: str, effective: datetime, codes: CodeSets
) -> list[VitalSign]:
    """Return the VitalSigns of a temperature, blood pressure panel or standalone pressure."""
    if kind == "temperature":
        quantity = value_quantity(observation)
        if quantity is None:
            raise UnitError("no temperature")
        return [VitalSign("temperature", units.temperature_cel(*quantity), "Cel", effective, source)]
    parts: list[tuple[str, JSON]] = [(kind, observation)] if kind != "bp-panel" else []
    components = observation.get("component")
    if isinstance(components, list):
        for component in components:
            if type(component) is not dict:
                component = as_map(component)
            name = pressure_kind(codes, component.get("code"))
            if name is not None:
                parts.append((name, component))
    vitals = []
    for name, holder in parts:
        quantity = value_quantity(holder)
        if quantity is None:
            raise UnitError("no pressure")
        vitals.append(VitalSign(name, units.pressure_mmhg(*quantity), "mm[Hg]", effective, source))
    return vitals
