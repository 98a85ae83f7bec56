"""Modified Ashworth Scale grades from Observations: a code, text, string or number, per muscle or overall.

A recorded MAS text repeats across a chart, so its grade is worked out once per call (``MasMemo``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from plugin.domain.chart import Score
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import JSON, as_map, concept_display
from plugin.domain.loader.obs_values import fast_number

# A MAS text's outcome: (ordinal, display), None for "not assessed", or this marker for unreadable.
_UNREADABLE: tuple[float, str] = (float("nan"), "unreadable")
MasMemo = dict[str, tuple[float, str] | None]


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
        raw = fast_number(holder.get("valueInteger", holder.get("valueDecimal")))
        if raw is None and "valueQuantity" in holder:
            raw = fast_number(as_map(holder["valueQuantity"]).get("value"))
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


def mas_score(
    codes: CodeSets, observation: JSON, source: str, effective: datetime, memo: MasMemo
) -> Score | None:
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
