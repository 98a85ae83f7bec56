"""Assemble one patient's Chart from plain FHIR resources (the loader's single entry point)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from plugin.domain.chart import Chart
from plugin.domain.codes import CodeSets
from plugin.domain.loader.conditions import read_conditions
from plugin.domain.loader.index import ChartInputError, ResourceIndex, single_patient
from plugin.domain.loader.medications import read_medications
from plugin.domain.loader.observations import read_observations
from plugin.domain.loader.patient import read_patient
from plugin.domain.loader.pump import read_pump


def utc_now(now: datetime) -> datetime:
    """Return ``now`` in UTC, refusing a naive datetime (every window is measured back from it)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def chart_from_entries(
    entries: Iterable[tuple[str | None, Any]],
    *,
    codes: CodeSets,
    now: datetime,
    patient_id: str | None = None,
    gaps: Iterable[str] = (),
    require_patient: bool = True,
) -> Chart:
    """Build a Chart from (fullUrl, resource) pairs; raise ChartInputError when they are not one patient's
    or an element has the wrong JSON type."""
    try:
        return _chart_from_entries(
            entries, codes=codes, now=now, patient_id=patient_id, gaps=gaps, require_patient=require_patient
        )
    except (TypeError, AttributeError) as error:
        # The readers trust JSON types that FHIR fixes (a code is a string); a resource that breaks that
        # (e.g. a coding whose "system" is a list) is invalid input, said in one line, never a crash.
        raise ChartInputError(
            f"a resource has an element of the wrong JSON type ({type(error).__name__})"
        ) from None


def _chart_from_entries(
    entries: Iterable[tuple[str | None, Any]],
    *,
    codes: CodeSets,
    now: datetime,
    patient_id: str | None,
    gaps: Iterable[str],
    require_patient: bool,
) -> Chart:
    """Build the Chart (see ``chart_from_entries``)."""
    now = utc_now(now)
    index = ResourceIndex(entries)
    reference, patient_resource = single_patient(index, patient_id, require_patient=require_patient)
    medications = read_medications(index, codes, now)
    observations = read_observations(index.of_type("Observation"), codes, now)
    conditions = read_conditions(index.of_type("Condition"), codes, now)
    pump, refills = read_pump(index, codes, observations.pump, medications.dose_records, now)
    signs = sorted(observations.signs + list(conditions.signs), key=lambda s: (s.effective, s.source))
    all_gaps = [*gaps, *medications.gaps, *observations.gaps(), *conditions.gaps]
    return Chart(
        patient=read_patient(reference, patient_resource),
        dose_records=medications.dose_records,
        dose_history=medications.dose_history,
        scores=tuple(observations.scores),
        vitals=tuple(observations.vitals),
        clinical_signs=tuple(signs),
        egfr=observations.egfr,
        co_medications=medications.co_medications,
        origin=conditions.origin,
        origin_evidence=conditions.origin_evidence,
        pregnancy=conditions.pregnancy,
        pump=pump,
        refills=refills,
        data_gaps=tuple(dict.fromkeys(all_gaps)),
    )


def chart_from_resources(
    resources: Iterable[Mapping[str, Any]], *, codes: CodeSets, now: datetime, patient_id: str | None = None
) -> Chart:
    """Build a Chart from one patient's resources; raise ChartInputError for none or several patients."""
    return chart_from_entries(((None, r) for r in resources), codes=codes, now=now, patient_id=patient_id)
