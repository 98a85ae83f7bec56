"""Spasticity scores, vital signs, eGFR, withdrawal signs and pump values from Observations.

This is the bulk of a chart (thousands of Observations), so it runs on plain dicts with one dict lookup
per coding (``CodeSets.observation_kinds``); dates are parsed only for Observations that matched.
Scores, vitals, eGFR and pump values count only when ``final``, ``amended`` or ``corrected``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plugin.domain import units
from plugin.domain.chart import ClinicalSign, LabValue, Score, VitalSign
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import (
    JSON,
    as_list,
    as_map,
    concept_display,
    concept_texts,
    iter_codings,
    number,
    parse_datetime,
)
from plugin.domain.units import UnitError

FINAL = frozenset({"final", "amended", "corrected"})
SIGN_STATUSES = FINAL | {"preliminary"}
_NEGATIVE_VALUES = frozenset({"absent", "no", "none", "negative", "not present", "denies", "false"})
EGFR_UNIT = "mL/min/{1.73_m2}"


@dataclass
class ObservationFindings:
    """What the loader read from Observations, plus counts of what it had to skip."""

    scores: list[Score] = field(default_factory=list)
    vitals: list[VitalSign] = field(default_factory=list)
    signs: list[ClinicalSign] = field(default_factory=list)
    egfr: LabValue | None = None
    egfr_gap: str | None = None
    # field name -> [(effective, value, source)]; values are float (mL, ug/mL) or datetime (dates)
    pump: dict[str, list[tuple[datetime, float | datetime, str]]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)

    def gaps(self) -> list[str]:
        """Return the skipped counts in plain words."""
        gaps = [
            f"{count} {what} could not be read and were ignored"
            for what, count in sorted(self.skipped.items())
        ]
        if self.egfr_gap:
            gaps.append(self.egfr_gap)
        return gaps


def _effective(observation: JSON) -> datetime | None:
    """Return when an Observation was made (effective[x]), or None."""
    moment = parse_datetime(observation.get("effectiveDateTime"))
    if moment is not None:
        return moment
    period = observation.get("effectivePeriod")
    if isinstance(period, Mapping):
        return parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
    return parse_datetime(observation.get("effectiveInstant"))


def _quantity(holder: JSON) -> tuple[float, str] | None:
    """Return ``valueQuantity`` as (value, unit) when it has both and no comparator."""
    quantity = as_map(holder.get("valueQuantity"))
    value, unit = number(quantity.get("value")), units.quantity_unit(quantity)
    if value is None or unit is None or quantity.get("comparator"):
        return None
    return value, unit


def _mas_grade(codes: CodeSets, holder: JSON) -> tuple[float, str] | None:
    """Return a MAS grade as (ordinal, display); raise ValueError when unreadable, None if not assessed."""
    raw: Any = holder.get("valueString")
    if raw is None and "valueCodeableConcept" in holder:
        concept = as_map(holder["valueCodeableConcept"])
        candidates = [
            code
            for coding in as_list(concept.get("coding"))
            if isinstance(code := as_map(coding).get("code"), str)
        ]
        candidates += concept_texts(concept)
        raw = next((c for c in candidates if c.replace(" ", "").lower() in codes.mas_grades), None)
        raw = raw if raw is not None else (candidates[0] if candidates else None)
    if raw is None:
        raw = number(holder.get("valueInteger", holder.get("valueDecimal")))
        if raw is None and "valueQuantity" in holder:
            raw = number(as_map(holder["valueQuantity"]).get("value"))
    if isinstance(raw, str):
        key = raw.replace(" ", "").lower()
        if key in codes.mas_not_assessed:
            return None
        if key in codes.mas_grades:
            grade = codes.mas_grades[key]
            return grade, "1+" if grade == 1.5 else key
    if isinstance(raw, float):
        if str(raw) in codes.mas_not_assessed:
            return None
        if raw in codes.mas_numeric:
            return raw, "1+" if raw == 1.5 else f"{raw:g}"
    raise ValueError("unreadable MAS grade")


def _score(codes: CodeSets, code: str, observation: JSON, source: str, effective: datetime) -> Score | None:
    """Return a Score, None when not assessed; raise ValueError when unreadable."""
    if code == "mas":
        components: list[tuple[str, float, str]] = []
        for component in map(as_map, as_list(observation.get("component"))):
            grade = _mas_grade(codes, component)
            if grade is not None:
                muscle = concept_display(component.get("code")) or "component"
                components.append((muscle, grade[0], grade[1]))
        has_value = any(key.startswith("value") for key in observation)
        summary = _mas_grade(codes, observation) if has_value or not components else None
        if summary is None and components:
            top = max(components, key=lambda item: item[1])
            summary = (top[1], top[2])
        if summary is None:
            return None
        return Score(
            "mas", summary[0], summary[1], effective, source, tuple((m, v) for m, v, _ in components)
        )
    value = number(observation.get("valueInteger", observation.get("valueDecimal")))
    if value is None:
        quantity = as_map(observation.get("valueQuantity"))
        value = None if quantity.get("comparator") else number(quantity.get("value"))
    low, high = codes.score_ranges.get(code, (float("-inf"), float("inf")))
    if value is None or not low <= value <= high:
        raise ValueError("score out of range")
    return Score(code, value, f"{value:g}", effective, source)


def _sign_present(observation: JSON) -> bool:
    """Return False when an Observation records a sign as absent (valueBoolean false, 'absent')."""
    if observation.get("valueBoolean") is False:
        return False
    texts = concept_texts(observation.get("valueCodeableConcept"))
    value_string = observation.get("valueString")
    if isinstance(value_string, str):
        texts.append(value_string)
    return not any(text.strip().lower() in _NEGATIVE_VALUES for text in texts)


def _pump_value(field_name: str, observation: JSON) -> float | datetime:
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
    quantity = _quantity(observation)
    if quantity is None:
        raise UnitError("no quantity")
    if field_name == "concentration_ug_per_ml":
        return units.concentration_ug_per_ml(*quantity)
    return units.volume_ml(*quantity)


def _vitals(
    kind: str, observation: JSON, source: str, effective: datetime, codes: CodeSets
) -> list[VitalSign]:
    """Return the VitalSigns of a temperature, blood pressure panel or standalone pressure."""
    if kind == "temperature":
        value, unit = _quantity(observation) or (None, "")
        if value is None:
            raise UnitError("no temperature")
        return [VitalSign("temperature", units.temperature_cel(value, unit), "Cel", effective, source)]
    parts = [(kind, observation)] if kind != "bp-panel" else []
    for component in map(as_map, as_list(observation.get("component"))):
        pairs = set(iter_codings(component.get("code")))
        if not codes.systolic.isdisjoint(pairs):
            parts.append(("systolic", component))
        elif not codes.diastolic.isdisjoint(pairs):
            parts.append(("diastolic", component))
    vitals = []
    for name, holder in parts:
        value, unit = _quantity(holder) or (None, "")
        if value is None:
            raise UnitError("no pressure")
        vitals.append(VitalSign(name, units.pressure_mmhg(value, unit), "mm[Hg]", effective, source))
    return vitals


def _sign_kind(codes: CodeSets, texts: tuple[str, ...]) -> tuple[str, str] | None:
    """Return ("sign", name) when a code text names a withdrawal sign, else None."""
    for name, concept in codes.signs.items():
        if any(concept.text.matches(text) for text in texts):
            return "sign", name
    return None


def read_observations(
    observations: list[tuple[str, JSON]], codes: CodeSets, now: datetime
) -> ObservationFindings:
    """Read the Observations the check acts on, up to ``now``; count matched ones that were unreadable."""
    found = ObservationFindings()
    kinds: Mapping[Any, tuple[str, str]] = codes.observation_kinds  # looked up with raw JSON values
    newest_egfr: tuple[datetime, str, JSON] | None = None
    sign_memo: dict[tuple[str, ...], tuple[str, str] | None] = {}
    for source, observation in observations:
        code = observation.get("code")
        code = code if type(code) is dict else as_map(code)
        codings = code.get("coding")
        kind = None
        if type(codings) is list:
            for coding in codings:
                if type(coding) is dict:
                    kind = kinds.get((coding.get("system"), coding.get("code")))
                    if kind is not None:
                        break
        if kind is None:
            # Text-only match for withdrawal signs; the same code text repeats thousands of times in a
            # large record, so each distinct text is matched once.
            texts = tuple(concept_texts(code))
            if texts not in sign_memo:
                sign_memo[texts] = _sign_kind(codes, texts)
            kind = sign_memo[texts]
            if kind is None:
                continue
        status = observation.get("status")
        if status not in (SIGN_STATUSES if kind[0] == "sign" else FINAL):
            continue
        effective = _effective(observation)
        label = {"score": "spasticity scores", "sign": "withdrawal signs", "pump": "pump values"}.get(
            kind[0], "vital signs"
        )
        label = "eGFR results" if kind[0] == "egfr" else label
        if effective is None:
            found.skipped[f"{label} (no time)"] += 1
            continue
        if effective > now:  # recorded after the moment of the check: not known then
            continue
        try:
            if kind[0] == "score":
                score = _score(codes, kind[1], observation, source, effective)
                if score is not None:
                    found.scores.append(score)
            elif kind[0] == "sign":
                if _sign_present(observation):
                    found.signs.append(
                        ClinicalSign(kind[1], effective, source, concept_display(code) or kind[1])
                    )
            elif kind[0] == "pump":
                value = _pump_value(kind[1], observation)
                found.pump.setdefault(kind[1], []).append((effective, value, source))
            elif kind[0] == "egfr":
                if newest_egfr is None or effective > newest_egfr[0]:
                    newest_egfr = (effective, source, observation)
            else:
                found.vitals.extend(_vitals(kind[0], observation, source, effective, codes))
        except (ValueError, UnitError):
            found.skipped[label] += 1
    if newest_egfr is not None:
        effective, source, observation = newest_egfr
        quantity = _quantity(observation)
        try:
            if quantity is None:
                raise UnitError("no value")
            value = units.egfr_ml_min_173(*quantity)
            found.egfr = LabValue("egfr", value, EGFR_UNIT, effective, source)
        except UnitError:
            found.egfr_gap = f"the latest eGFR ({source}) has no readable value in mL/min/1.73m2"
    found.scores.sort(key=lambda s: (s.effective, s.source))
    found.vitals.sort(key=lambda v: (v.effective, v.source, v.kind))
    return found
