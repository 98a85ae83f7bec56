"""Spasticity scores, vital signs, eGFR, withdrawal signs and pump values from Observations.

This is the bulk of a chart (thousands of Observations), so it runs on plain dicts with one dict lookup
per coding (``CodeSets.observation_kinds``); dates are parsed only for Observations that matched.
Scores, vitals, eGFR and pump values count only when ``final``, ``amended`` or ``corrected``.

The per-Observation path is kept flat on purpose: exact ``type(x) is dict`` tests before the slower
``Mapping`` check, no intermediate lists or generators, no exceptions on the common path, and the MAS
grade of each distinct recorded text worked out once per call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from plugin.domain import units
from plugin.domain.chart import ClinicalSign, LabValue, Score, VitalSign
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import (
    JSON,
    as_map,
    concept_display,
    concept_texts,
    number,
    parse_datetime,
)
from plugin.domain.units import UnitError

FINAL = frozenset({"final", "amended", "corrected"})
SIGN_STATUSES = FINAL | {"preliminary"}
_NEGATIVE_VALUES = frozenset({"absent", "no", "none", "negative", "not present", "denies", "false"})
EGFR_UNIT = "mL/min/{1.73_m2}"

# What a skipped Observation is counted as, by kind (anything else is a vital sign).
_LABELS = {
    "score": "spasticity scores",
    "sign": "withdrawal signs",
    "pump": "pump values",
    "egfr": "eGFR results",
}
_VITALS_LABEL = "vital signs"
_NO_TIME = {kind: f"{label} (no time)" for kind, label in _LABELS.items()}
_VITALS_NO_TIME = f"{_VITALS_LABEL} (no time)"
_ANY_VALUE = (float("-inf"), float("inf"))
_SCORE_ORDER = attrgetter("effective", "source")
_VITAL_ORDER = attrgetter("effective", "source", "kind")
# A MAS text's outcome: (ordinal, display), None for "not assessed", or this marker for unreadable.
_UNREADABLE: tuple[float, str] = (float("nan"), "unreadable")
MasMemo = dict[str, tuple[float, str] | None]
_NOT_SEEN: tuple[str, str] = ("", "")  # a marker: this code text was not matched yet


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


def _number(value: Any) -> float | None:
    """``number`` with the JSON int and float cases first."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    return number(value)


def _effective(observation: JSON) -> datetime | None:
    """Return when an Observation was made (effective[x]), or None."""
    moment = parse_datetime(observation.get("effectiveDateTime"))
    if moment is not None:
        return moment
    period = observation.get("effectivePeriod")
    if type(period) is dict or isinstance(period, Mapping):
        return parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
    return parse_datetime(observation.get("effectiveInstant"))


def _quantity(holder: JSON) -> tuple[float, str] | None:
    """Return ``valueQuantity`` as (value, unit) when it has both and no comparator."""
    quantity = holder.get("valueQuantity")
    if type(quantity) is not dict:
        quantity = as_map(quantity)
    value, unit = _number(quantity.get("value")), units.quantity_unit(quantity)
    if value is None or unit is None or quantity.get("comparator"):
        return None
    return value, unit


def _label(concept: Any) -> str | None:
    """``concept_display`` with the common case (a CodeableConcept with a text) first."""
    if type(concept) is dict:
        text = concept.get("text")
        if type(text) is str:
            return text
    return concept_display(concept)


def _concept_grade(grades: Mapping[str, float], concept: Any) -> str | None:
    """Return the MAS candidate of a CodeableConcept: the first code, text or display that is a grade,
    else the first of them, else None (codes first, then the text, then the codings' displays)."""
    if type(concept) is not dict:
        concept = as_map(concept)
    first: str | None = None
    codings = concept.get("coding")
    if isinstance(codings, list):
        for coding in codings:
            code = (coding if type(coding) is dict else as_map(coding)).get("code")
            if isinstance(code, str):
                if code.replace(" ", "").lower() in grades:
                    return code
                if first is None:
                    first = code
    text = concept.get("text")
    if type(text) is str:
        if text.replace(" ", "").lower() in grades:
            return text
        if first is None:
            first = text
    if type(codings) is list:
        for coding in codings:
            display = (coding if type(coding) is dict else as_map(coding)).get("display")
            if type(display) is str:
                if display.replace(" ", "").lower() in grades:
                    return display
                if first is None:
                    first = display
    return first


def _text_grade(codes: CodeSets, raw: str) -> tuple[float, str] | None:
    """Return a recorded MAS text's (ordinal, display), None when not assessed, else ``_UNREADABLE``."""
    key = raw.replace(" ", "").lower()
    if key in codes.mas_not_assessed:
        return None
    grade = codes.mas_grades.get(key)
    if grade is not None:
        return grade, "1+" if grade == 1.5 else key
    return _UNREADABLE


def _mas_grade(codes: CodeSets, holder: JSON, memo: MasMemo) -> tuple[float, str] | None:
    """Return a MAS grade as (ordinal, display); raise ValueError when unreadable, None if not assessed."""
    raw: Any = holder.get("valueString")
    if raw is None and "valueCodeableConcept" in holder:
        raw = _concept_grade(codes.mas_grades, holder["valueCodeableConcept"])
    if raw is None:
        raw = _number(holder.get("valueInteger", holder.get("valueDecimal")))
        if raw is None and "valueQuantity" in holder:
            raw = _number(as_map(holder["valueQuantity"]).get("value"))
    if isinstance(raw, str):
        if raw in memo:
            result = memo[raw]
        else:
            result = memo[raw] = _text_grade(codes, raw)
        if result is _UNREADABLE:
            raise ValueError("unreadable MAS grade")
        return result
    if isinstance(raw, float):
        if str(raw) in codes.mas_not_assessed:
            return None
        if raw in codes.mas_numeric:
            return raw, "1+" if raw == 1.5 else f"{raw:g}"
    raise ValueError("unreadable MAS grade")


def _mas(codes: CodeSets, observation: JSON, source: str, effective: datetime, memo: MasMemo) -> Score | None:
    """Return a MAS Score (the highest component grade unless the Observation has its own value), None
    when not assessed; raise ValueError when unreadable."""
    muscles: list[tuple[str, float]] = []
    top: tuple[float, str] | None = None  # the first highest component grade
    components = observation.get("component")
    if isinstance(components, list):
        for component in components:
            if type(component) is not dict:
                component = as_map(component)
            grade = _mas_grade(codes, component, memo)
            if grade is not None:
                muscles.append((_label(component.get("code")) or "component", grade[0]))
                if top is None or grade[0] > top[0]:
                    top = grade
    if muscles:
        summary = None
        for key in observation:
            if key.startswith("value"):
                summary = _mas_grade(codes, observation, memo)
                break
        if summary is None:
            summary = top
    else:
        summary = _mas_grade(codes, observation, memo)
    if summary is None:
        return None
    return Score("mas", summary[0], summary[1], effective, source, tuple(muscles))


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


def _pressure_kind(codes: CodeSets, concept: Any) -> str | None:
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


def _vitals(
    kind: str, observation: JSON, source: str, effective: datetime, codes: CodeSets
) -> list[VitalSign]:
    """Return the VitalSigns of a temperature, blood pressure panel or standalone pressure."""
    if kind == "temperature":
        quantity = _quantity(observation)
        if quantity is None:
            raise UnitError("no temperature")
        return [VitalSign("temperature", units.temperature_cel(*quantity), "Cel", effective, source)]
    parts: list[tuple[str, JSON]] = [(kind, observation)] if kind != "bp-panel" else []
    components = observation.get("component")
    if isinstance(components, list):
        for component in components:
            if type(component) is not dict:
                component = as_map(component)
            name = _pressure_kind(codes, component.get("code"))
            if name is not None:
                parts.append((name, component))
    vitals = []
    for name, holder in parts:
        quantity = _quantity(holder)
        if quantity is None:
            raise UnitError("no pressure")
        vitals.append(VitalSign(name, units.pressure_mmhg(*quantity), "mm[Hg]", effective, source))
    return vitals


def _code_texts(code: JSON) -> tuple[str, ...]:
    """``tuple(concept_texts(code))`` for a code already known to be a mapping."""
    text = code.get("text")
    texts = [text] if type(text) is str else []
    codings = code.get("coding")
    if type(codings) is list:
        for coding in codings:
            display = (coding if type(coding) is dict else as_map(coding)).get("display")
            if type(display) is str:
                texts.append(display)
    return tuple(texts)


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
    kind_of = kinds.get
    newest_egfr: tuple[datetime, str, JSON] | None = None
    sign_memo: dict[tuple[str, ...], tuple[str, str] | None] = {}
    mas_memo: MasMemo = {}
    displays: dict[float, str] = {}
    scores, vitals, skipped = found.scores, found.vitals, found.skipped
    score_ranges = codes.score_ranges
    for source, observation in observations:
        code = observation.get("code")
        if type(code) is not dict:
            code = as_map(code)
        codings = code.get("coding")
        kind = None
        if type(codings) is list:
            for coding in codings:
                if type(coding) is dict:
                    kind = kind_of((coding.get("system"), coding.get("code")))
                    if kind is not None:
                        break
        if kind is None:
            # Text-only match for withdrawal signs; the same code text repeats thousands of times in a
            # large record, so each distinct text is matched once.
            texts = _code_texts(code)
            kind = sign_memo.get(texts, _NOT_SEEN)
            if kind is _NOT_SEEN:
                kind = sign_memo[texts] = _sign_kind(codes, texts)
            if kind is None:
                continue
        group, detail = kind
        if observation.get("status") not in (SIGN_STATUSES if group == "sign" else FINAL):
            continue
        effective = _effective(observation)
        if effective is None:
            skipped[_NO_TIME.get(group, _VITALS_NO_TIME)] += 1
            continue
        if effective > now:  # recorded after the moment of the check: not known then
            continue
        if group == "score" and detail != "mas":  # PSFS and NRS: one number in a range
            value = _number(observation.get("valueInteger", observation.get("valueDecimal")))
            if value is None:
                quantity = observation.get("valueQuantity")
                if type(quantity) is not dict:
                    quantity = as_map(quantity)
                value = None if quantity.get("comparator") else _number(quantity.get("value"))
            low, high = score_ranges.get(detail, _ANY_VALUE)
            if value is None or not low <= value <= high:
                skipped["spasticity scores"] += 1
            else:
                display = displays.get(value)
                if display is None:
                    display = f"{value:g}"
                    if value:  # 0.0 and -0.0 are one key but print differently
                        displays[value] = display
                scores.append(Score(detail, value, display, effective, source))
            continue
        try:
            if group == "score":
                score = _mas(codes, observation, source, effective, mas_memo)
                if score is not None:
                    scores.append(score)
            elif group == "sign":
                if _sign_present(observation):
                    found.signs.append(
                        ClinicalSign(detail, effective, source, concept_display(code) or detail)
                    )
            elif group == "pump":
                reading = _pump_value(detail, observation)
                found.pump.setdefault(detail, []).append((effective, reading, source))
            elif group == "egfr":
                if newest_egfr is None or effective > newest_egfr[0]:
                    newest_egfr = (effective, source, observation)
            else:
                vitals.extend(_vitals(group, observation, source, effective, codes))
        except (ValueError, UnitError):
            skipped[_LABELS.get(group, _VITALS_LABEL)] += 1
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
    scores.sort(key=_SCORE_ORDER)
    vitals.sort(key=_VITAL_ORDER)
    return found
