"""Origin of spasticity, pregnancy and withdrawal signs from Conditions.

Origin is decided from *active* Conditions only (clinicalStatus active, recurrence or relapse, or no
status): spinal (SCI, MS) or cerebral (CP, brain injury, stroke). When both kinds are present the origin
is UNKNOWN with both as evidence: the chart is ambiguous, and UNKNOWN makes the engine apply the stricter
(cerebral) limits and say so (``origin-unknown``). Inactive or resolved conditions are ignored, which can
only make the stricter limits apply. Refuted and entered-in-error Conditions are ignored everywhere.
Withdrawal signs (pruritus, altered mental status) count whatever their clinical status, at their onset
(else recorded) time: a sign that resolved yesterday was still a sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from plugin.domain.chart import ClinicalSign, ConditionEvidence, Origin
from plugin.domain.codes import CodeSets
from plugin.domain.loader.fhir import (
    JSON,
    concept_display,
    concept_texts,
    iter_codings,
    parse_datetime,
    period_start,
    status_code,
)

ACTIVE = frozenset({"active", "recurrence", "relapse", None})
NOT_TRUE = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class ConditionFindings:
    """Origin, pregnancy and signs read from Conditions."""

    origin: Origin
    origin_evidence: tuple[ConditionEvidence, ...]
    pregnancy: ConditionEvidence | None
    signs: tuple[ClinicalSign, ...]
    gaps: tuple[str, ...]


def read_conditions(conditions: list[tuple[str, JSON]], codes: CodeSets, now: datetime) -> ConditionFindings:
    """Decide origin and pregnancy and collect sign Conditions."""
    spinal: list[ConditionEvidence] = []
    cerebral: list[ConditionEvidence] = []
    pregnancies: list[tuple[datetime | None, ConditionEvidence]] = []
    signs: list[ClinicalSign] = []
    undated_signs = 0
    for source, condition in conditions:
        if status_code(condition.get("verificationStatus")) in NOT_TRUE:
            continue
        code = condition.get("code")
        codings, texts = list(iter_codings(code)), concept_texts(code)
        display = concept_display(code) or source
        active = status_code(condition.get("clinicalStatus")) in ACTIVE
        if active and codes.spinal.matches(codings, texts):
            spinal.append(ConditionEvidence(source, display, "spinal"))
        elif active and codes.cerebral.matches(codings, texts):
            cerebral.append(ConditionEvidence(source, display, "cerebral"))
        if active and codes.pregnancy.matches(codings, texts):
            when = period_start(condition, "onset") or parse_datetime(condition.get("recordedDate"))
            pregnancies.append((when, ConditionEvidence(source, display, "pregnancy")))
        for kind, concept in codes.signs.items():
            if concept.matches(codings, texts):
                when = period_start(condition, "onset") or parse_datetime(condition.get("recordedDate"))
                if when is None:
                    undated_signs += 1
                elif when <= now:
                    signs.append(ClinicalSign(kind, when, source, display))
    if spinal and cerebral:
        origin = Origin.UNKNOWN
    elif spinal:
        origin = Origin.SPINAL
    elif cerebral:
        origin = Origin.CEREBRAL
    else:
        origin = Origin.UNKNOWN
    pregnancies.sort(
        key=lambda item: (item[0] is not None, item[0] or datetime.min.replace(tzinfo=UTC), item[1].source)
    )
    gaps = (
        (f"{undated_signs} sign conditions have no onset or recorded date and were ignored",)
        if undated_signs
        else ()
    )
    return ConditionFindings(
        origin=origin,
        origin_evidence=tuple(spinal + cerebral),
        pregnancy=pregnancies[-1][1] if pregnancies else None,
        signs=tuple(signs),
        gaps=gaps,
    )
