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

Only the current intrathecal records are validated with ``fhir.resources.R4B``; an invalid one is kept
as unconvertible (with the first validation error) so that the check cannot pass on a broken record.
Validation is a pure function of the record's content, and the same records come back on every check of
the same patient (each CDS order-sign call carries the whole chart again), so its result is cached by a
hash of the canonical JSON of the record: a repeated record costs a serialisation, not an R4B model.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import orjson

from plugin.domain import units
from plugin.domain.chart import CoMedication, DoseChange, DoseRecord
from plugin.domain.codes import CodeSets
from plugin.domain.loader.dosage import daily_dose
from plugin.domain.loader.fhir import (
    JSON,
    Coding,
    as_list,
    as_map,
    concept_texts,
    iter_codings,
    number,
    parse_datetime,
)
from plugin.domain.loader.index import ResourceIndex
from plugin.domain.units import UnitError

CURRENT_STATUSES = {
    "MedicationStatement": frozenset({"active", "intended"}),
    "MedicationRequest": frozenset({"active"}),
}
NEVER_HAPPENED = frozenset({"entered-in-error", "cancelled", "draft", "not-taken"})
NOT_ORDERS = frozenset({"proposal", "option"})
_DOSAGE_KEY = {"MedicationStatement": "dosage", "MedicationRequest": "dosageInstruction"}


@dataclass(frozen=True, slots=True)
class MedRecord:
    """One MedicationStatement or MedicationRequest with its medication resolved and classified."""

    source: str
    resource_type: str
    status: str
    resource: JSON
    medication: JSON
    names: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    is_baclofen: bool
    is_intrathecal: bool


@dataclass(frozen=True, slots=True)
class Medications:
    """What the loader read from the medication records."""

    dose_records: tuple[DoseRecord, ...]
    dose_history: tuple[DoseChange, ...]
    co_medications: tuple[CoMedication, ...]
    gaps: tuple[str, ...]


def _medication(index: ResourceIndex, resource: JSON) -> tuple[JSON, list[Coding], list[str]]:
    """Return the resolved Medication (or empty), and the codings and names of the drug."""
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return {}, list(iter_codings(concept)), concept_texts(concept)
    medication = index.resolve(resource.get("medicationReference"), resource) or {}
    codings = list(iter_codings(medication.get("code")))
    names = concept_texts(medication.get("code"))
    display = as_map(resource.get("medicationReference")).get("display")
    if isinstance(display, str):
        names.append(display)
    for ingredient in as_list(medication.get("ingredient")):
        item = as_map(ingredient).get("itemCodeableConcept")
        codings.extend(iter_codings(item))
        names.extend(concept_texts(item))
    return medication, codings, names


def classify_med_record(
    index: ResourceIndex, codes: CodeSets, source: str, resource: JSON, kind: str
) -> MedRecord:
    """Read and classify one MedicationStatement or MedicationRequest (``kind``) known as ``source``.

    Resolves its medication through ``index`` (contained, relative, absolute or ``urn:uuid:``) and
    decides with ``codes`` whether it is baclofen and whether it is intrathecal; reads its start and end.
    The CDS service classifies a draft order with this same function, so a draft is recognised exactly as
    the same MedicationRequest would be in the chart.
    """
    medication, codings, names = _medication(index, resource)
    is_product = codes.intrathecal_products.matches(codings, names)
    is_baclofen = is_product or codes.baclofen.matches(codings, names)
    # Intrathecal: a known intrathecal product, or baclofen whose route (or own name, as in
    # "baclofen 2 MG/ML Intrathecal Solution") says intrathecal.
    is_intrathecal = is_product or (
        is_baclofen
        and (
            any(codes.intrathecal_route.text.matches(name) for name in names)
            or any(
                codes.intrathecal_route.matches(iter_codings(route), concept_texts(route))
                for route in (as_map(d).get("route") for d in as_list(resource.get(_DOSAGE_KEY[kind])))
                if route is not None
            )
        )
    )
    if kind == "MedicationStatement":
        period = as_map(resource.get("effectivePeriod"))
        start = parse_datetime(resource.get("effectiveDateTime")) or parse_datetime(period.get("start"))
        start = start or parse_datetime(resource.get("dateAsserted"))
        end = parse_datetime(period.get("end"))
    else:
        start = parse_datetime(resource.get("authoredOn"))
        bounds = [
            as_map(as_map(as_map(d).get("timing")).get("repeat")).get("boundsPeriod")
            for d in as_list(resource.get("dosageInstruction"))
        ]
        end = parse_datetime(as_map(bounds[0]).get("end")) if len(bounds) == 1 else None
        if start is None and len(bounds) == 1:
            start = parse_datetime(as_map(bounds[0]).get("start"))
    status = resource.get("status")
    return MedRecord(
        source=source,
        resource_type=kind,
        status=status if isinstance(status, str) else "",
        resource=resource,
        medication=medication,
        names=tuple(names),
        start=start,
        end=end,
        is_baclofen=is_baclofen,
        is_intrathecal=is_intrathecal,
    )


def baclofen_concentration_ug_per_ml(codes: CodeSets, medication: JSON) -> float | None:
    """Return the baclofen strength of a Medication resource in ug/mL, or None when not readable.

    The strength is the single ingredient's ``strength`` Ratio (or the baclofen ingredient's, when there
    are several), converted with UCUM; an empty ``medication`` (a coded concept, no resource) gives None.
    """
    ingredients = [as_map(i) for i in as_list(medication.get("ingredient"))]
    if len(ingredients) > 1:
        ingredients = [
            i
            for i in ingredients
            if codes.baclofen.matches(
                iter_codings(i.get("itemCodeableConcept")), concept_texts(i.get("itemCodeableConcept"))
            )
        ]
    if len(ingredients) != 1:
        return None
    strength = as_map(ingredients[0].get("strength"))
    numerator, denominator = as_map(strength.get("numerator")), as_map(strength.get("denominator"))
    amount, volume = number(numerator.get("value")), number(denominator.get("value"))
    if amount is None or volume is None:
        return None
    try:
        return units.ratio_concentration_ug_per_ml(
            amount, units.quantity_unit(numerator) or "", volume, units.quantity_unit(denominator) or ""
        )
    except UnitError:
        return None


class _ValidationCache:
    """A bounded, thread-safe LRU of validation results keyed by (type, digest of canonical JSON)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, str | None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(resource_type: str, resource: JSON) -> bytes | None:
        """Return the cache key of a resource, or None when it is not plain JSON (then it is not cached)."""
        try:
            canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            return None
        return resource_type.encode() + b"\0" + hashlib.blake2b(canonical, digest_size=20).digest()

    def get(self, key: bytes) -> tuple[bool, str | None]:
        """Return (found, result)."""
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: bytes, result: str | None) -> None:
        """Remember a result, dropping the least recently used beyond the size."""
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._items.clear()


VALIDATION_CACHE = _ValidationCache(4096)


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


def _validate_r4b(record: MedRecord) -> str | None:
    """Validate one record with its fhir.resources.R4B model (uncached)."""
    from pydantic import ValidationError

    if record.resource_type == "MedicationStatement":
        from fhir.resources.R4B.medicationstatement import MedicationStatement as Model
    else:
        from fhir.resources.R4B.medicationrequest import MedicationRequest as Model  # type: ignore[assignment]
    try:
        Model.model_validate(dict(record.resource))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"the record is not valid FHIR R4 ({where}: {first.get('msg', 'invalid')})"
    except (TypeError, ValueError) as error:  # fhir.resources raises these for some shapes
        return f"the record is not valid FHIR R4 ({type(error).__name__})"
    return None


def _dose_record(codes: CodeSets, record: MedRecord, validate: bool) -> DoseRecord:
    """Build the DoseRecord of one intrathecal record."""
    concentration = baclofen_concentration_ug_per_ml(codes, record.medication)
    result = daily_dose(as_list(record.resource.get(_DOSAGE_KEY[record.resource_type])), concentration)
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
