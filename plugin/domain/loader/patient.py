"""The Patient banner facts: name, birth date, sex and MRN (for display only, never for logs)."""

from __future__ import annotations

from plugin.domain.chart import Patient
from plugin.domain.loader.fhir import JSON, as_list, as_map, parse_full_date, plain_codes

_NAME_PREFERENCE = ("official", "usual", None)


def _name(resource: JSON) -> str | None:
    """Return the official (else usual, else first) name as text or given + family."""
    names = [as_map(n) for n in as_list(resource.get("name"))]
    names.sort(key=lambda n: _NAME_PREFERENCE.index(n.get("use")) if n.get("use") in _NAME_PREFERENCE else 3)
    for name in names:
        if isinstance(name.get("text"), str) and name["text"].strip():
            return str(name["text"]).strip()
        parts = [g for g in as_list(name.get("given")) if isinstance(g, str)]
        if isinstance(name.get("family"), str):
            parts.append(name["family"])
        if parts:
            return " ".join(parts)
    return None


def _mrn(resource: JSON) -> str | None:
    """Return the identifier typed MR, else the first identifier's value."""
    identifiers = [
        as_map(i) for i in as_list(resource.get("identifier")) if isinstance(as_map(i).get("value"), str)
    ]
    for identifier in identifiers:
        if "MR" in plain_codes(identifier.get("type")):
            return str(identifier["value"])
    return str(identifiers[0]["value"]) if identifiers else None


def read_patient(reference: str, resource: JSON | None) -> Patient:
    """Return the chart's Patient (only the reference when the resource is not at hand)."""
    if resource is None:
        return Patient(reference)
    gender = resource.get("gender")
    return Patient(
        reference=reference,
        name=_name(resource),
        birth_date=parse_full_date(resource.get("birthDate")),
        sex=gender if isinstance(gender, str) else None,
        mrn=_mrn(resource),
    )
