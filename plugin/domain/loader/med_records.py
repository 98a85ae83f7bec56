"""Medication records classified: is this MedicationStatement or MedicationRequest intrathecal baclofen?

Resolves each record's medication (contained, relative, absolute or ``urn:uuid:``), decides from
``config/codes.toml`` whether it is baclofen and whether intrathecal, reads its start and end, and reads a
Medication's baclofen strength in ug/mL. The CDS service classifies a draft order with these functions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plugin.domain import units
from plugin.domain.codes import CodeSets
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

# Where each record type keeps its Dosage.
DOSAGE_KEY = {"MedicationStatement": "dosage", "MedicationRequest": "dosageInstruction"}


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
                for route in (as_map(d).get("route") for d in as_list(resource.get(DOSAGE_KEY[kind])))
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
