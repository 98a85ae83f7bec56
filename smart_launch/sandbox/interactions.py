"""The FHIR interactions of the sandbox store, shared by the REST routes and batch/transaction Bundles:
validation, search execution, create (plain and conditional), update (with If-Match) and read.

Every function takes the tenant store and the caller's grant, so each interaction (also each entry of a
Bundle) is authorized on its own, as SMART requires. Like HAPI's JPA server, writes are refused (400)
when a relative reference points to nothing or a required-binding code is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .auth import FORBIDDEN_STATUS, Grant, in_patient_compartment, patient_restriction
from .outcome import FhirError
from .search import SearchQuery, matches, parse_search, sort_resources
from .store import Record, TenantStore

_ETAG_RE = re.compile(r'^(W/)?"?(\d+)"?$')


def _codes(words: str) -> frozenset[str]:
    """Return a value set's codes from a space-separated list."""
    return frozenset(words.split())


_OBSERVATION_STATUS = _codes(
    "registered preliminary final amended corrected cancelled entered-in-error unknown"
)
_GENDER = _codes("male female other unknown")
#: Top-level codes with a required binding that HAPI's parser enforces (an unknown one is HTTP 400).
#: fhir.resources checks structure only, so the sandbox checks these itself (R4 value sets).
REQUIRED_CODES: dict[str, dict[str, frozenset[str]]] = {
    "Patient": {"gender": _GENDER},
    "Practitioner": {"gender": _GENDER},
    "Observation": {"status": _OBSERVATION_STATUS},
    "DetectedIssue": {"status": _OBSERVATION_STATUS, "severity": _codes("high moderate low")},
    "MedicationRequest": {
        "status": _codes("active on-hold cancelled completed entered-in-error stopped draft unknown"),
        "intent": _codes(
            "proposal plan order original-order reflex-order filler-order instance-order option"
        ),
    },
    "MedicationStatement": {
        "status": _codes("active completed entered-in-error intended stopped on-hold unknown not-taken")
    },
    "MedicationAdministration": {
        "status": _codes("in-progress not-done on-hold completed entered-in-error stopped unknown")
    },
    "Procedure": {
        "status": _codes(
            "preparation in-progress not-done on-hold stopped completed entered-in-error unknown"
        )
    },
    "Device": {"status": _codes("active inactive entered-in-error unknown")},
    "DeviceUseStatement": {"status": _codes("active completed entered-in-error intended stopped on-hold")},
    "Encounter": {
        "status": _codes(
            "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"
        )
    },
    "DocumentReference": {
        "status": _codes("current superseded entered-in-error"),
        "docStatus": _codes("preliminary final amended entered-in-error"),
    },
    "QuestionnaireResponse": {"status": _codes("in-progress completed amended entered-in-error stopped")},
}


@dataclass(frozen=True)
class WriteResult:
    """What a create or update did: the stored record and the HTTP status to answer with."""

    record: Record
    status: int


def validate_resource(body: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Parse a resource with fhir.resources R4B; anything invalid (including unknown elements) is 400.

    HAPI silently drops unknown elements; the sandbox refuses them instead, so a client that sends
    something the server would lose finds out in development rather than in production.
    """
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(400, "invalid", "The body is not a FHIR resource (no resourceType)")
    resource_type = body["resourceType"]
    if expected_type and resource_type != expected_type:
        raise FhirError(400, "invalid", f"Expected a {expected_type} but got a {resource_type}")
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5])
        raise FhirError(400, "structure", f"Invalid {resource_type}: {problems}") from error
    except ValueError as error:
        raise FhirError(400, "not-supported", f"Unknown resource type '{resource_type}'") from error
    for element, codes in REQUIRED_CODES.get(resource_type, {}).items():
        if element in body and body[element] not in codes:
            raise FhirError(
                400, "structure", f"Invalid {resource_type}: unknown {element} code '{body[element]}'"
            )
    return body


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (element path, reference) for every ``reference`` string in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield path, value
            else:
                yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _references(item, path)


def check_references(store: TenantStore, resource: dict[str, Any]) -> None:
    """Refuse a resource whose relative ``Type/id`` references point to nothing (HAPI-1094 is a 400 too).

    Contained (``#id``), ``urn:`` placeholders, absolute URLs and conditional references are not checked.
    """
    own = f"{resource.get('resourceType')}/{resource.get('id')}"
    for path, reference in _references(resource, str(resource.get("resourceType"))):
        if reference.startswith(("#", "urn:", "http://", "https://")) or "?" in reference:
            continue
        parts = reference.split("/")
        if len(parts) == 4 and parts[2] == "_history":
            parts = parts[:2]
        if len(parts) != 2 or reference == own:
            continue
        if store.read(parts[0], parts[1]) is None:
            raise FhirError(
                400, "processing", f"Resource {parts[0]}/{parts[1]} not found, specified in path: {path}"
            )


def parse_if_match(header: str | None) -> int | None:
    """Parse ``If-Match: W/"3"`` (also ``"3"`` or ``3``) into a version number."""
    if header is None:
        return None
    match = _ETAG_RE.match(header.strip())
    if not match:
        raise FhirError(400, "invalid", "Malformed If-Match header")
    return int(match.group(2))


def execute_search(store: TenantStore, query: SearchQuery, restriction: str | None) -> list[str]:
    """Return the ids matching a search, in result order, limited to a patient's compartment if given."""
    resources = [r.resource for r in store.current(query.resource_type)]
    found = [r for r in resources if matches(r, query)]
    if restriction:
        found = [r for r in found if in_patient_compartment(r, restriction, store.resolve)]
    return [r["id"] for r in sort_resources(found, query)]


def read(
    store: TenantStore, grant: Grant, resource_type: str, resource_id: str, version: int | None = None
) -> Record:
    """Read (or vread) a resource the grant may see."""
    restriction = patient_restriction(grant, resource_type, "r")
    record = (
        store.read(resource_type, resource_id)
        if version is None
        else store.vread(resource_type, resource_id, version)
    )
    if record is None:
        raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
    if restriction and not in_patient_compartment(record.resource, restriction, store.resolve):
        raise FhirError(
            FORBIDDEN_STATUS, "forbidden", "The resource is outside the token's patient compartment"
        )
    return record


def _check_writable(
    store: TenantStore, grant: Grant, resource: dict[str, Any], permission: str
) -> str | None:
    """Authorize a write and keep patient-level tokens inside their patient's compartment."""
    restriction = patient_restriction(grant, resource["resourceType"], permission)
    if restriction and not in_patient_compartment(resource, restriction, store.resolve):
        raise FhirError(
            FORBIDDEN_STATUS, "forbidden", "A patient-level token can only write its patient's data"
        )
    return restriction


def create(
    store: TenantStore,
    grant: Grant,
    resource: dict[str, Any],
    if_none_exist: str | None = None,
    resource_id: str | None = None,
    *,
    check_refs: bool = True,
) -> WriteResult:
    """Create a resource; with If-None-Exist, 0 matches create, 1 returns it (200), more are 412.

    ``resource_id`` is only for transactions, which assign ids before storing anything; transactions
    also pass ``check_refs=False`` and check references once every entry is staged.
    """
    restriction = _check_writable(store, grant, resource, "c")
    with store.lock:  # the search and the create are one step, so concurrent retries cannot both create
        if if_none_exist:
            query = parse_search(
                resource["resourceType"], parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True)
            )
            ids = execute_search(store, query, restriction)
            if len(ids) > 1:
                raise FhirError(412, "duplicate", f"If-None-Exist matched {len(ids)} resources")
            if ids:
                existing = store.read(resource["resourceType"], ids[0])
                assert existing is not None
                return WriteResult(existing, 200)
        if check_refs:
            check_references(store, resource)
        return WriteResult(store.create(resource, resource_id), 201)


def update(
    store: TenantStore,
    grant: Grant,
    resource_type: str,
    resource_id: str,
    resource: dict[str, Any],
    if_match: int | None = None,
    *,
    check_refs: bool = True,
) -> WriteResult:
    """Update (or create under the client's id) a resource; If-Match must name the current version."""
    if resource.get("id") != resource_id:
        raise FhirError(400, "invalid", "The resource id must be present and equal the id in the URL")
    if resource["resourceType"] != resource_type:
        raise FhirError(400, "invalid", "The resource type does not match the URL")
    restriction = _check_writable(store, grant, resource, "u")
    with store.lock:
        existing = store.read(resource_type, resource_id)
        if (
            restriction
            and existing
            and not in_patient_compartment(existing.resource, restriction, store.resolve)
        ):
            raise FhirError(
                FORBIDDEN_STATUS, "forbidden", "The resource is outside the token's patient compartment"
            )
        if check_refs:
            check_references(store, resource)
        record, created = store.update(resource, if_match)
    return WriteResult(record, 201 if created else 200)
