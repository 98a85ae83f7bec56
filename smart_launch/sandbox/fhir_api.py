"""The sandbox's FHIR R4 REST API: ``{root}/{tenant}/fhir``.

metadata, read, vread, search (GET and POST _search), create (with If-None-Exist), update (with
If-Match) and batch/transaction. Every request except /metadata needs a valid bearer token. Errors are
OperationOutcome; responses are ``application/fhir+json``. Latency and faults from FaultState apply here.
"""

from __future__ import annotations

import logging
import time
from email.utils import format_datetime
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from .auth import Grant, bearer_grant, patient_restriction
from .bundles import BundleEnv, process_bundle
from .capability import UNSUPPORTED_TYPE_STATUS, capability_statement, tenant_types
from .context import auth_url, fhir_base, known_tenant, sandbox
from .interactions import WriteResult, create, execute_search, parse_if_match, read, update, validate_resource
from .outcome import FhirError, error_response, fhir_response
from .search import parse_search
from .searchset import count_bundle, first_page, page_bundle
from .store import Record

log = logging.getLogger(__name__)
bp = Blueprint("sandbox_fhir", __name__, url_prefix="/<tenant>/fhir")
_WRITE_METHODS = ("POST", "PUT")
_BODY_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


@bp.errorhandler(FhirError)
def _fhir_error(error: FhirError) -> ResponseReturnValue:
    """Every error is an OperationOutcome."""
    return error_response(error)


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> ResponseReturnValue:
    """An unexpected failure is still an OperationOutcome (logged by type only: bodies may hold PHI)."""
    if isinstance(error, HTTPException):
        return error
    log.error("Sandbox FHIR request failed: %s", type(error).__name__)
    return error_response(FhirError(500, "exception", "Internal sandbox error"))


@bp.before_request
def _faults_and_latency() -> None:
    """Apply configured latency and injected faults before any FHIR work."""
    tenant = str((request.view_args or {}).get("tenant", ""))
    if not known_tenant(tenant):
        raise FhirError(404, "not-found", f"Unknown tenant '{tenant}'")
    faults = sandbox().faults
    if faults.latency_ms:
        time.sleep(faults.latency_ms / 1000)
    if tenant in faults.offline_tenants or faults.take_request_failure():
        raise FhirError(503, "transient", "The EHR is temporarily unavailable", {"Retry-After": "1"})
    is_search = request.path.endswith("/_search")
    if request.method in _WRITE_METHODS and not is_search and faults.take_write_failure():
        raise FhirError(500, "exception", "Injected write failure (nothing was stored)")


def _grant(tenant: str) -> Grant:
    """Authenticate the request's bearer token for this tenant."""
    return bearer_grant(sandbox().auth, tenant, request.headers.get("Authorization"))


def _check_type(tenant: str, resource_type: str) -> None:
    """Refuse a resource type the tenant does not offer (as HAPI refuses an unknown one)."""
    if resource_type not in tenant_types(tenant):
        raise FhirError(
            UNSUPPORTED_TYPE_STATUS, "not-supported", f"Resource type '{resource_type}' is not supported"
        )


def _body() -> Any:
    """Parse a JSON request body, refusing other media types."""
    mimetype = request.mimetype or ""
    if mimetype not in _BODY_TYPES:
        raise FhirError(415, "not-supported", "Send application/fhir+json")
    body = request.get_json(silent=True)
    if body is None:
        raise FhirError(400, "structure", "The body is not valid JSON")
    return body


def _record_headers(tenant: str, record: Record) -> dict[str, str]:
    """ETag, Last-Modified and Location for a stored version."""
    resource = record.resource
    path = f"{resource['resourceType']}/{resource['id']}/_history/{record.version}"
    return {
        "ETag": record.etag,
        "Last-Modified": format_datetime(record.last_updated, usegmt=True),
        "Location": f"{fhir_base(tenant)}/{path}",
    }


def _write_response(tenant: str, result: WriteResult) -> ResponseReturnValue:
    """Answer a create or update as the Prefer header asks (representation by default)."""
    prefer = request.headers.get("Prefer", "")
    hang = sandbox().faults.take_write_hang()
    if hang:
        time.sleep(hang)  # the write is stored; the client's read timeout fires first
    headers = _record_headers(tenant, result.record)
    if "return=minimal" in prefer:
        return fhir_response(None, result.status, headers)
    if "return=OperationOutcome" in prefer:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "Stored"}],
        }
        return fhir_response(outcome, result.status, headers)
    return fhir_response(result.record.resource, result.status, headers)


@bp.get("/metadata")
def metadata(tenant: str) -> ResponseReturnValue:
    """The CapabilityStatement (no token needed)."""
    statement = capability_statement(
        tenant,
        fhir_base(tenant),
        auth_url(tenant, "authorize"),
        auth_url(tenant, "token"),
        sandbox().auth.clock(),
    )
    return fhir_response(statement)


@bp.post("")
@bp.post("/")
def bundle(tenant: str) -> ResponseReturnValue:
    """Batch or transaction."""
    grant = _grant(tenant)
    context = sandbox()
    env = BundleEnv(
        grant, tenant, fhir_base(tenant), tenant_types(tenant), context.snapshots, context.auth.clock()
    )
    response = process_bundle(context.store.tenant(tenant), _body(), env)
    hang = context.faults.take_write_hang()
    if hang:
        time.sleep(hang)
    return fhir_response(response)


@bp.get("")
@bp.get("/")
def next_page(tenant: str) -> ResponseReturnValue:
    """Follow a ``next`` link: a page of a stored search snapshot."""
    grant = _grant(tenant)
    context = sandbox()
    token = request.args.get("_getpages")
    if not token:
        raise FhirError(400, "invalid", "A GET on the base needs _getpages")
    snapshot = context.snapshots.get(token)
    if snapshot is None or snapshot.tenant != tenant:
        raise FhirError(410, "not-found", "The search has expired; run it again")
    restriction = patient_restriction(grant, snapshot.resource_type, "s")
    offset_text = request.args.get("_getpagesoffset", "0") or "0"
    if not offset_text.isdigit():
        raise FhirError(400, "invalid", "Invalid _getpagesoffset")
    offset = int(offset_text)
    page = page_bundle(
        context.store.tenant(tenant),
        snapshot,
        token,
        offset,
        fhir_base(tenant),
        request.url,
        restriction,
        context.auth.clock(),
    )
    return fhir_response(page)


def _search(tenant: str, resource_type: str, params: list[tuple[str, str]]) -> ResponseReturnValue:
    """Run a search and answer with its first page."""
    _check_type(tenant, resource_type)
    grant = _grant(tenant)
    context = sandbox()
    restriction = patient_restriction(grant, resource_type, "s")
    query = parse_search(resource_type, params)
    store = context.store.tenant(tenant)
    ids = execute_search(store, query, restriction)
    now = context.auth.clock()
    if query.summary_count:
        return fhir_response(count_bundle(len(ids), request.url, now))
    return fhir_response(
        first_page(
            store, context.snapshots, tenant, query, ids, fhir_base(tenant), request.url, restriction, now
        )
    )


@bp.get("/<resource_type>")
def search(tenant: str, resource_type: str) -> ResponseReturnValue:
    """Search with GET."""
    return _search(tenant, resource_type, list(request.args.items(multi=True)))


@bp.post("/<resource_type>/_search")
def search_post(tenant: str, resource_type: str) -> ResponseReturnValue:
    """Search with POST (form-encoded parameters, plus any in the URL)."""
    return _search(tenant, resource_type, [*request.args.items(multi=True), *request.form.items(multi=True)])


@bp.post("/<resource_type>")
def create_resource(tenant: str, resource_type: str) -> ResponseReturnValue:
    """Create, or conditionally create with If-None-Exist."""
    _check_type(tenant, resource_type)
    grant = _grant(tenant)
    resource = validate_resource(_body(), resource_type)
    result = create(sandbox().store.tenant(tenant), grant, resource, request.headers.get("If-None-Exist"))
    return _write_response(tenant, result)


@bp.get("/<resource_type>/<resource_id>")
def read_resource(tenant: str, resource_type: str, resource_id: str) -> ResponseReturnValue:
    """Read the current version."""
    _check_type(tenant, resource_type)
    record = read(sandbox().store.tenant(tenant), _grant(tenant), resource_type, resource_id)
    headers = _record_headers(tenant, record)
    headers.pop("Location")
    return fhir_response(record.resource, 200, headers)


@bp.get("/<resource_type>/<resource_id>/_history/<int:version>")
def vread_resource(tenant: str, resource_type: str, resource_id: str, version: int) -> ResponseReturnValue:
    """Read one version."""
    _check_type(tenant, resource_type)
    record = read(sandbox().store.tenant(tenant), _grant(tenant), resource_type, resource_id, version)
    headers = _record_headers(tenant, record)
    headers.pop("Location")
    return fhir_response(record.resource, 200, headers)


@bp.put("/<resource_type>/<resource_id>")
def update_resource(tenant: str, resource_type: str, resource_id: str) -> ResponseReturnValue:
    """Update (or create under the client's id); If-Match must name the current version."""
    _check_type(tenant, resource_type)
    grant = _grant(tenant)
    resource = validate_resource(_body(), resource_type)
    if_match = parse_if_match(request.headers.get("If-Match"))
    result = update(sandbox().store.tenant(tenant), grant, resource_type, resource_id, resource, if_match)
    return _write_response(tenant, result)
