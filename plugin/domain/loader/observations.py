"""Spasticity scores, vital signs, eGFR, withdrawal signs and pump values from Observations.

This is the bulk of a chart (thousands of Observations), so it runs on plain dicts with one dict lookup
per coding (``CodeSets.observation_kinds``); dates are parsed only for Observations that matched.
Scores, vitals, eGFR and pump values count only when ``final``, ``amended`` or ``corrected``.

The per-Observation path is kept flat on purpose: exact ``type(x) is dict`` tests before the slower
``Mapping`` check, no intermediate lists or generators, no exceptions on the common path, and the MAS
grade of each distinct recorded text worked out once per call.

This module routes each Observation and reads the simple kinds (PSFS/NRS scores, withdrawal signs, eGFR);
``mas`` reads MAS grades, ``vitals`` temperatures and blood pressures, ``obs_values`` numbers, Quantities
and pump values. Those helpers are imported by name, so calling them costs what a local function does.
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
    parse_datetime,
)
from plugin.domain.loader.mas import MasMemo, mas_score
from plugin.domain.loader.obs_values import fast_number, pump_value, value_quantity
from plugin.domain.loader.vitals import read_vitals
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


def _effective(observation: JSON) -> datetime | None:
    """Return when an Observation was made (effective[x]), or None."""
    moment = parse_datetime(observation.get("effectiveDateTime"))
    if moment is not None:
        return moment
    period = observation.get("effectivePeriod")
    if type(period) is dict or isinstance(period, Mapping):
        return parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
    return parse_datetime(observation.get("effectiveInstant"))


def _sign_present(observation: JSON) -> bool:
    """Return False when an Observation records a sign as absent (valueBoolean false, 'absent')."""
    if observation.get("valueBoolean") is False:
        return False
    texts = concept_texts(observation.get("valueCodeableConcept"))
    value_string = observation.get("valueString")
    if isinstance(value_string, str):
        texts.append(value_string)
    return not any(text.strip().lower() in _NEGATIVE_VALUES for text in texts)


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
            value = fast_number(observation.get("valueInteger", observation.get("valueDecimal")))
            if value is None:
                quantity = observation.get("valueQuantity")
                if type(quantity) is not dict:
                    quantity = as_map(quantity)
                value = None if quantity.get("comparator") else fast_number(quantity.get("value"))
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
                score = mas_score(codes, observation, source, effective, mas_memo)
                if score is not None:
                    scores.append(score)
            elif group == "sign":
                if _sign_present(observation):
                    found.signs.append(
                        ClinicalSign(detail, effective, source, concept_display(code) or detail)
                    )
            elif group == "pump":
                reading = pump_value(detail, observation)
                found.pump.setdefault(detail, []).append((effective, reading, source))
            elif group == "egfr":
                if newest_egfr is None or effective > newest_egfr[0]:
                    newest_egfr = (effective, source, observation)
            else:
                vitals.extend(read_vitals(group, observation, source, effective, codes))
        except (ValueError, UnitError):
            skipped[_LABELS.get(group, _VITALS_LABEL)] += 1
    if newest_egfr is not None:
        effective, source, observation = newest_egfr
        quantity = value_quantity(observation)
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
