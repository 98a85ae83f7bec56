"""The FHIR interactions of the sandbox store, shared by the REST routes and batch/transaction Bundles:
validation, search execution, create (plain and conditional), update (with If-Match) and read.

Every function takes the tenant store and the caller's grant, so each interaction (also each entry of a
Bundle) is authorized on its own, as SMART requires.
"""

from __future__ import annotations

import re
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
    return body


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
) -> WriteResult:
    """Create a resource; with If-None-Exist, 0 matches create, 1 returns it (200), more are 412.

    ``resource_id`` is only for transactions, which assign ids before storing anything.
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
        return WriteResult(store.create(resource, resource_id), 201)


def update(
    store: TenantStore,
    grant: Grant,
    resource_type: str,
    resource_id: str,
    resource: dict[str, Any],
    if_match: int | None = None,
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
        record, created = store.update(resource, if_match)
    return WriteResult(record, 201 if created else 200)
