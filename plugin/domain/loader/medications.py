"""Intrathecal baclofen dose records, dose history and co-medications from MedicationStatement/Request.

Which records are current: MedicationStatement ``active`` or ``intended`` and MedicationRequest ``active``
(intent not ``proposal``/``option``), whose period has started by ``now`` and not ended. ``on-hold`` and
``unknown`` are not current (a paused pump has no current rate) and become a data gap. ``completed``,
``stopped`` and ``on-hold`` records are history; ``entered-in-error``, ``cancelled``, ``draft`` and
``not-taken`` never happened and are ignored.

MedicationStatement vs MedicationRequest: a server that keeps both usually records the same regimen
twice (the order, and what the patient is on). Counting both would raise a false "conflicting doses".
So when any current intrathecal MedicationStatement exists, the statements are the dose source (they
say what the pump delivers); otherwise the requests are (Epic and Oracle Health expose no R4
MedicationStatement, standards.md §4.1). "The same regimen" means the same daily dose: a current
request whose (convertible) daily dose differs from every current statement is kept as a dose record
too, so the engine reports the conflict. An order never discontinued at an old dose is a real hazard
that a person must resolve; a request that only restates the statement's dose is not. The dose
history comes from the preferred resource type only.

Modules: ``med_records`` classifies each record (baclofen? intrathecal? when?) and reads a Medication's
strength; ``r4b_validation`` validates current intrathecal records with R4B, cached by content; this
module picks the current dose records, the dose history and the co-medications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plugin.domain.chart import CoMedication, DoseChange, DoseRecord
from plugin.domain.codes import CodeSets
from plugin.domain.loader.dosage import daily_dose
from plugin.domain.loader.fhir import as_list
from plugin.domain.loader.index import ResourceIndex
from plugin.domain.loader.med_records import DOSAGE_KEY
from plugin.domain.loader.med_records import MedRecord as MedRecord
from plugin.domain.loader.med_records import (
    baclofen_concentration_ug_per_ml as baclofen_concentration_ug_per_ml,
)
from plugin.domain.loader.med_records import classify_med_record as classify_med_record
from plugin.domain.loader.r4b_validation import VALIDATION_CACHE as VALIDATION_CACHE
from plugin.domain.loader.r4b_validation import validate_r4b as _validate_r4b

# "X as X" imports are re-exported: the CDS service and the tests reach them through this module. The R4B
# validator is looked up here at call time, so a test can replace ``medications._validate_r4b``.

CURRENT_STATUSES = {
    "MedicationStatement": frozenset({"active", "intended"}),
    "MedicationRequest": frozenset({"active"}),
}
NEVER_HAPPENED = frozenset({"entered-in-error", "cancelled", "draft", "not-taken"})
NOT_ORDERS = frozenset({"proposal", "option"})


@dataclass(frozen=True, slots=True)
class Medications:
    """What the loader read from the medication records."""

    dose_records: tuple[DoseRecord, ...]
    dose_history: tuple[DoseChange, ...]
    co_medications: tuple[CoMedication, ...]
    gaps: tuple[str, ...]


def _validation_error(record: MedRecord) -> str | None:
    """Validate a dose-bearing record with fhir.resources.R4B; return the first error in plain words.

    Cached by content (``VALIDATION_CACHE``): the same record gives the same answer without a new model.
    """
    key = VALIDATION_CACHE.key(record.resource_type, record.resource)
    if key is not None:
        found, result = VALIDATION_CACHE.get(key)
        if found:
            return result
    result = _validate_r4b(record)
    if key is not None:
        VALIDATION_CACHE.put(key, result)
    return result


def _dose_record(codes: CodeSets, record: MedRecord, validate: bool) -> DoseRecord:
    """Build the DoseRecord of one intrathecal record."""
    concentration = baclofen_concentration_ug_per_ml(codes, record.medication)
    result = daily_dose(as_list(record.resource.get(DOSAGE_KEY[record.resource_type])), concentration)
    daily, reason = result.daily_dose_ug, result.reason
    invalid = _validation_error(record) if validate else None
    if invalid is not None:
        daily, reason = None, invalid
    return DoseRecord(
        source=record.source,
        status=record.status,
        daily_dose_ug=daily,
        unconvertible_reason=reason,
        rate_ug_per_h=result.rate_ug_per_h if invalid is None else None,
        concentration_ug_per_ml=concentration,
        flex_steps=result.flex_steps if invalid is None else (),
        effective_start=record.start,
        medication_display=record.names[0] if record.names else None,
        original_text=result.original_text,
    )


def _is_current(record: MedRecord, now: datetime) -> bool:
    """Return whether a record is in force at ``now`` by status, intent and period."""
    if record.status not in CURRENT_STATUSES[record.resource_type]:
        return False
    if record.resource.get("intent") in NOT_ORDERS:
        return False
    if record.start is not None and record.start > now:
        return False
    return record.end is None or record.end > now


def _history(codes: CodeSets, records: list[MedRecord], now: datetime) -> tuple[DoseChange, ...]:
    """Return the changes of daily dose over time (oldest first) from dated, convertible records."""
    dated: list[tuple[datetime, str, float]] = []
    for record in records:
        if record.status in NEVER_HAPPENED or record.start is None or record.start > now:
            continue
        dose = _dose_record(codes, record, validate=False).daily_dose_ug
        if dose is not None:
            dated.append((record.start, record.source, dose))
    dated.sort(key=lambda item: (item[0], item[1]))
    changes: list[DoseChange] = []
    previous: float | None = None
    for at, source, dose in dated:
        if previous is None or abs(dose - previous) > 1e-6:
            changes.append(DoseChange(at, dose, previous, source))
        previous = dose
    return tuple(changes)


def read_medications(index: ResourceIndex, codes: CodeSets, now: datetime) -> Medications:
    """Read dose records, dose history and co-medications from the chart's medication records."""
    records = [
        classify_med_record(index, codes, source, resource, kind)
        for kind in ("MedicationStatement", "MedicationRequest")
        for source, resource in index.of_type(kind)
    ]
    intrathecal = [r for r in records if r.is_intrathecal]
    current_statements = [
        r for r in intrathecal if r.resource_type == "MedicationStatement" and _is_current(r, now)
    ]
    chosen = "MedicationStatement" if current_statements else "MedicationRequest"
    chosen_records = [r for r in intrathecal if r.resource_type == chosen]
    current = [r for r in chosen_records if _is_current(r, now)]
    dose_records = [_dose_record(codes, r, validate=True) for r in current]
    if chosen == "MedicationStatement":
        stated = [d.daily_dose_ug for d in dose_records if d.daily_dose_ug is not None]
        for request in intrathecal:
            if request.resource_type != "MedicationRequest" or not _is_current(request, now):
                continue
            ordered = _dose_record(codes, request, validate=True)
            dose = ordered.daily_dose_ug
            if dose is not None and all(abs(dose - s) > 1e-6 for s in stated):
                dose_records.append(ordered)
    gaps = [
        f"{r.source} is {r.status or 'without status'}: not counted as a current dose"
        for r in intrathecal
        if r.status in ("on-hold", "unknown", "")
    ]
    gaps.extend(
        f"{r.source} is marked {r.status} but its period ended: not counted as a current dose"
        for r in chosen_records
        if r.status in CURRENT_STATUSES[chosen] and r.end is not None and r.end <= now
    )
    co_medications = []
    for record in records:
        if record.is_intrathecal or not _is_current(record, now):
            continue
        classes = codes.classify_drug(" ".join(record.names))
        if record.is_baclofen:
            classes = classes | {"oral-baclofen"}
        if classes:
            display = record.names[0] if record.names else record.source
            co_medications.append(CoMedication(record.source, display, classes))
    return Medications(
        dose_records=tuple(dose_records),
        dose_history=_history(codes, chosen_records, now),
        co_medications=tuple(co_medications),
        gaps=tuple(gaps),
    )
