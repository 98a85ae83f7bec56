"""Batch and transaction Bundles (POST to the FHIR base).

A transaction is all-or-nothing: it runs on a staged copy of the tenant store that is swapped in only if
every entry succeeds, and the first failing entry's OperationOutcome is the answer. Ids for POST entries
are assigned up front so ``urn:uuid:`` fullUrls can be rewritten in every reference before anything is
stored. Entries run in the order FHIR prescribes (POST, then PUT, then GET) and are answered in the
Bundle's order. References are checked once every entry is staged (entries may refer to later ones),
so a transaction with a reference to nothing stores nothing. A batch runs each entry on its own and
reports each entry's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from .auth import Grant, patient_restriction
from .capability import UNSUPPORTED_TYPE_STATUS
from .interactions import (
    WriteResult,
    check_references,
    create,
    execute_search,
    parse_if_match,
    read,
    update,
    validate_resource,
)
from .outcome import FhirError
from .search import parse_search
from .searchset import first_page
from .store import SnapshotCache, TenantStore, new_id

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
}
_ORDER = {"POST": 0, "PUT": 1, "GET": 2}


@dataclass(frozen=True)
class BundleEnv:
    """What entries need besides the store: who asks, where, and which types the tenant offers."""

    grant: Grant
    tenant: str
    base: str
    types: tuple[str, ...]
    snapshots: SnapshotCache
    now: datetime


def _status(code: int) -> str:
    """Format an entry response status line."""
    return f"{code} {_REASONS.get(code, '')}".strip()


def _split_url(url: str, base: str) -> tuple[str, str | None, str]:
    """Split an entry request URL into (type, id or None, query string)."""
    path, _, query = url.removeprefix(base + "/").lstrip("/").partition("?")
    parts = path.split("/")
    return parts[0], (parts[1] if len(parts) > 1 and parts[1] else None), query


def _check_type(resource_type: str, env: BundleEnv) -> None:
    """Refuse types the tenant does not offer."""
    if resource_type not in env.types:
        raise FhirError(
            UNSUPPORTED_TYPE_STATUS, "not-supported", f"Resource type '{resource_type}' is not supported"
        )


def _rewrite(node: Any, mapping: dict[str, str]) -> Any:
    """Replace every reference that names a Bundle-internal fullUrl with the assigned ``Type/id``."""
    if isinstance(node, dict):
        return {
            k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, mapping))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item, mapping) for item in node]
    return node


def _written(result: WriteResult) -> dict[str, Any]:
    """Entry response of a create or update."""
    record = result.record
    location = f"{record.resource['resourceType']}/{record.resource['id']}/_history/{record.version}"
    return {
        "resource": record.resource,
        "response": {
            "status": _status(result.status),
            "location": location,
            "etag": record.etag,
            "lastModified": record.last_updated.isoformat(timespec="milliseconds"),
        },
    }


def _run_entry(
    store: TenantStore, entry: dict[str, Any], env: BundleEnv, *, check_refs: bool = True
) -> dict[str, Any]:
    """Run one entry's request and return its response entry (errors raise FhirError)."""
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    resource_type, resource_id, query = _split_url(str(request.get("url", "")), env.base)
    _check_type(resource_type, env)
    if method == "GET":
        if resource_id:
            record = read(store, env.grant, resource_type, resource_id)
            return {"resource": record.resource, "response": {"status": "200 OK", "etag": record.etag}}
        restriction = patient_restriction(env.grant, resource_type, "s")
        search = parse_search(resource_type, parse_qsl(query, keep_blank_values=True))
        ids = execute_search(store, search, restriction)
        url = f"{env.base}/{resource_type}?{query}"
        bundle = first_page(
            store, env.snapshots, env.tenant, search, ids, env.base, url, restriction, env.now
        )
        return {"resource": bundle, "response": {"status": "200 OK"}}
    resource = validate_resource(entry.get("resource"), resource_type)
    if method == "POST":
        if resource_id:
            raise FhirError(400, "invalid", "POST entries must target a resource type, not an instance")
        return _written(create(store, env.grant, resource, request.get("ifNoneExist"), check_refs=check_refs))
    if method == "PUT" and resource_id:
        if_match = parse_if_match(request.get("ifMatch"))
        result = update(
            store, env.grant, resource_type, resource_id, resource, if_match, check_refs=check_refs
        )
        return _written(result)
    raise FhirError(400, "not-supported", f"Bundle entry method '{method}' is not supported here")


def _prepare_transaction(
    store: TenantStore, entries: list[dict[str, Any]], env: BundleEnv
) -> list[dict[str, Any]]:
    """Resolve conditional creates, assign ids to the other POSTs, and rewrite internal references."""
    mapping: dict[str, str] = {}
    prepared: list[dict[str, Any]] = []
    for entry in entries:
        request = entry.get("request") or {}
        resource = entry.get("resource")
        method = str(request.get("method", "")).upper()
        full_url = entry.get("fullUrl")
        resource_type, resource_id, _ = _split_url(str(request.get("url", "")), env.base)
        entry = dict(entry)
        if method == "POST" and isinstance(resource, dict) and not request.get("ifNoneExist"):
            entry["_assigned"] = new_id()
            if full_url:
                mapping[full_url] = f"{resource_type}/{entry['_assigned']}"
        elif method == "POST" and isinstance(resource, dict):
            _check_type(resource_type, env)
            search = parse_search(resource_type, parse_qsl(request["ifNoneExist"], keep_blank_values=True))
            ids = execute_search(store, search, patient_restriction(env.grant, resource_type, "c"))
            if len(ids) == 1 and full_url:
                mapping[full_url] = f"{resource_type}/{ids[0]}"
            elif not ids:
                entry["_assigned"] = new_id()
                entry["request"] = {k: v for k, v in request.items() if k != "ifNoneExist"}
                if full_url:
                    mapping[full_url] = f"{resource_type}/{entry['_assigned']}"
        elif method == "PUT" and full_url and resource_id:
            mapping[full_url] = f"{resource_type}/{resource_id}"
        prepared.append(entry)
    for entry in prepared:
        if isinstance(entry.get("resource"), dict):
            entry["resource"] = _rewrite(entry["resource"], mapping)
    return prepared


def _run_transaction_entry(store: TenantStore, entry: dict[str, Any], env: BundleEnv) -> dict[str, Any]:
    """Run a prepared transaction entry, storing POSTs under their pre-assigned ids."""
    assigned = entry.get("_assigned")
    if assigned is None:
        return _run_entry(store, entry, env, check_refs=False)
    resource_type, _, _ = _split_url(str(entry["request"].get("url", "")), env.base)
    _check_type(resource_type, env)
    resource = validate_resource(entry.get("resource"), resource_type)
    return _written(create(store, env.grant, resource, resource_id=assigned, check_refs=False))


def process_bundle(store: TenantStore, bundle: Any, env: BundleEnv) -> dict[str, Any]:
    """Run a batch or transaction Bundle and return its response Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError(400, "invalid", "POST to the base needs a Bundle")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError(400, "invalid", "Only batch and transaction Bundles can be posted to the base")
    entries: list[dict[str, Any]] = list(bundle.get("entry") or [])
    for entry in entries:
        method = str((entry.get("request") or {}).get("method", "")).upper()
        if method not in _ORDER:
            raise FhirError(400, "not-supported", f"Bundle entry method '{method}' is not supported")
    responses: list[dict[str, Any] | None] = [None] * len(entries)
    if kind == "transaction":
        with store.staged() as stage:
            prepared = _prepare_transaction(stage, entries, env)
            order = sorted(
                range(len(prepared)), key=lambda i: _ORDER[prepared[i]["request"]["method"].upper()]
            )
            for index in order:
                responses[index] = _run_transaction_entry(stage, prepared[index], env)
            for index in order:
                if str(prepared[index]["request"].get("method", "")).upper() in ("POST", "PUT"):
                    check_references(stage, (responses[index] or {})["resource"])
    else:
        for index, entry in enumerate(entries):
            try:
                responses[index] = _run_entry(store, entry, env)
            except FhirError as error:
                responses[index] = {"response": {"status": _status(error.status), "outcome": error.outcome()}}
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses}
