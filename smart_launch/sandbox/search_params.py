"""The search parameters the sandbox FHIR store knows, per resource type (a subset of FHIR R4's).

Paths are dot-separated element names; ``[x]`` matches any choice type (``effective[x]`` matches
effectiveDateTime and effectivePeriod). Anything not listed here is an unknown parameter and answers 400,
as HAPI does by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["token", "reference", "date", "string"]


@dataclass(frozen=True)
class ParamDef:
    """One search parameter: its kind, the elements it looks at and, for references, the target type."""

    name: str
    kind: Kind
    paths: tuple[str, ...]
    target: str | None = None


def _p(name: str, kind: Kind, *paths: str, target: str | None = None) -> ParamDef:
    """Shorthand constructor for the table below."""
    return ParamDef(name, kind, paths, target)


def _patient_params(path: str = "subject") -> list[ParamDef]:
    """The ``patient`` (and ``subject``, when the element is subject) parameters of a clinical resource."""
    params = [_p("patient", "reference", path, target="Patient")]
    if path == "subject":
        params.append(_p("subject", "reference", "subject"))
    return params


_COMMON = [
    _p("_id", "token", "id"),
    _p("_lastUpdated", "date", "meta.lastUpdated"),
    # HAPI searches meta.tag on every type; the outbox finds a Provenance (no identifier in R4) by it.
    _p("_tag", "token", "meta.tag"),
]

_TABLE: dict[str, list[ParamDef]] = {
    "Patient": [
        _p("identifier", "token", "identifier"),
        _p("name", "string", "name.family", "name.given", "name.text"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("birthdate", "date", "birthDate"),
        _p("gender", "token", "gender"),
    ],
    "Practitioner": [
        _p("identifier", "token", "identifier"),
        _p("name", "string", "name.family", "name.given", "name.text"),
    ],
    "PractitionerRole": [
        _p("identifier", "token", "identifier"),
        _p("practitioner", "reference", "practitioner", target="Practitioner"),
        _p("role", "token", "code"),
    ],
    "Organization": [_p("identifier", "token", "identifier"), _p("name", "string", "name")],
    "Encounter": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("status", "token", "status"),
        _p("date", "date", "period"),
        _p("class", "token", "class"),
    ],
    "Medication": [_p("identifier", "token", "identifier"), _p("code", "token", "code")],
    "MedicationRequest": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "medicationCodeableConcept"),
        _p("medication", "reference", "medicationReference", target="Medication"),
        _p("status", "token", "status"),
        _p("intent", "token", "intent"),
        _p("category", "token", "category"),
        _p("authoredon", "date", "authoredOn"),
        _p("encounter", "reference", "encounter", target="Encounter"),
    ],
    "MedicationStatement": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "medicationCodeableConcept"),
        _p("medication", "reference", "medicationReference", target="Medication"),
        _p("status", "token", "status"),
        _p("category", "token", "category"),
        _p("effective", "date", "effective[x]"),
    ],
    "MedicationAdministration": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "medicationCodeableConcept"),
        _p("medication", "reference", "medicationReference", target="Medication"),
        _p("status", "token", "status"),
        _p("effective-time", "date", "effective[x]"),
    ],
    "Observation": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("date", "date", "effective[x]"),
        _p("encounter", "reference", "encounter", target="Encounter"),
    ],
    "Condition": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("clinical-status", "token", "clinicalStatus"),
        _p("verification-status", "token", "verificationStatus"),
        _p("onset-date", "date", "onset[x]"),
        _p("recorded-date", "date", "recordedDate"),
    ],
    "AllergyIntolerance": [
        *_patient_params("patient"),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("clinical-status", "token", "clinicalStatus"),
    ],
    "Device": [
        *_patient_params("patient"),
        _p("identifier", "token", "identifier"),
        _p("type", "token", "type"),
        _p("status", "token", "status"),
    ],
    "DeviceUseStatement": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("device", "reference", "device", target="Device"),
    ],
    "Procedure": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("status", "token", "status"),
        _p("date", "date", "performed[x]"),
    ],
    "DocumentReference": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("type", "token", "type"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("date", "date", "date"),
        _p("encounter", "reference", "context.encounter", target="Encounter"),
    ],
    "DetectedIssue": [
        *_patient_params("patient"),
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("identified", "date", "identified[x]"),
    ],
    "QuestionnaireResponse": [
        *_patient_params(),
        _p("identifier", "token", "identifier"),
        _p("status", "token", "status"),
        _p("authored", "date", "authored"),
        _p("author", "reference", "author"),
        _p("encounter", "reference", "encounter", target="Encounter"),
    ],
    "Provenance": [
        _p("patient", "reference", "target", target="Patient"),
        _p("target", "reference", "target"),
        _p("recorded", "date", "recorded"),
    ],
}

#: The search parameters per resource type, including the common ones.
SEARCH_PARAMS: dict[str, dict[str, ParamDef]] = {
    resource_type: {param.name: param for param in [*_COMMON, *params]}
    for resource_type, params in _TABLE.items()
}

#: Every resource type the store supports.
RESOURCE_TYPES: tuple[str, ...] = tuple(sorted(SEARCH_PARAMS))

#: Elements that put a resource in a patient's compartment (the FHIR R4 CompartmentDefinition, trimmed).
PATIENT_COMPARTMENT: dict[str, tuple[str, ...]] = {
    "Encounter": ("subject",),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "MedicationAdministration": ("subject",),
    "Observation": ("subject",),
    "Condition": ("subject",),
    "AllergyIntolerance": ("patient",),
    "Device": ("patient",),
    "DeviceUseStatement": ("subject",),
    "Procedure": ("subject",),
    "DocumentReference": ("subject",),
    "DetectedIssue": ("patient",),
    "QuestionnaireResponse": ("subject",),
    "Provenance": ("target",),
}

#: Search result parameters that are not filters.
CONTROL_PARAMS = frozenset({"_count", "_sort", "_include", "_summary", "_format", "_pretty", "_total"})
