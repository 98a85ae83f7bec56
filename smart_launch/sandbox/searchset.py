"""Searchset Bundles for the sandbox: stable pages over a snapshot of ids (like HAPI's ``_getpages``),
``_include`` of referenced resources, ``_summary=count`` and ``next`` links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .auth import in_patient_compartment
from .search import SearchQuery, element_values
from .search_params import SEARCH_PARAMS
from .store import Snapshot, SnapshotCache, TenantStore

HAPI_FIRST_LOAD = 13  # HAPI JPA's first search pre-fetch threshold (JpaStorageSettings)


def _bundle(
    now: datetime, total: int | None, links: list[dict[str, str]], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Assemble a searchset Bundle (``total`` None leaves it out)."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now.isoformat(timespec="milliseconds")},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def count_bundle(total: int, self_url: str, now: datetime) -> dict[str, Any]:
    """The answer to ``_summary=count``: a total and no entries."""
    return _bundle(now, total, [{"relation": "self", "url": self_url}], [])


def _included(
    store: TenantStore,
    resources: list[dict[str, Any]],
    snapshot: Snapshot,
    base: str,
    restriction: str | None,
) -> list[dict[str, Any]]:
    """Resolve the snapshot's _include parameters for one page (each included resource once)."""
    params = [SEARCH_PARAMS[snapshot.resource_type][name] for name in snapshot.includes]
    seen: set[str] = {f"{r['resourceType']}/{r['id']}" for r in resources}
    included: list[dict[str, Any]] = []
    for resource in resources:
        for param in params:
            for value in (v for path in param.paths for v in element_values(resource, path)):
                reference = value.get("reference", "") if isinstance(value, dict) else ""
                if reference.startswith(base + "/"):
                    reference = reference[len(base) + 1 :]
                parts = reference.split("/")
                if len(parts) != 2 or reference in seen:
                    continue  # contained (#id), foreign or already listed
                record = store.read(parts[0], parts[1])
                if record and (
                    not restriction or in_patient_compartment(record.resource, restriction, store.resolve)
                ):
                    seen.add(reference)
                    included.append(record.resource)
    return included


def page_bundle(
    store: TenantStore,
    snapshot: Snapshot,
    token: str | None,
    offset: int,
    base: str,
    self_url: str,
    restriction: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Render one page of a snapshot; resources are read as they are now, and re-checked for access."""
    page_ids = snapshot.ids[offset : offset + snapshot.count]
    resources = []
    for resource_id in page_ids:
        record = store.read(snapshot.resource_type, resource_id)
        if record and (
            not restriction or in_patient_compartment(record.resource, restriction, store.resolve)
        ):
            resources.append(record.resource)
    entries = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    entries += [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
        for r in _included(store, resources, snapshot, base, restriction)
    ]
    links = [{"relation": "self", "url": self_url}]
    if token and offset + snapshot.count < len(snapshot.ids):
        query = urlencode(
            {
                "_getpages": token,
                "_getpagesoffset": offset + snapshot.count,
                "_count": snapshot.count,
                "_bundletype": "searchset",
            }
        )
        links.append({"relation": "next", "url": f"{base}?{query}"})
    # Like HAPI JPA 8, which loads a search's matches in batches (13, then 503, ...) and names the total
    # only once it has them all: a page with a next link of a search with more than 13 matches has no
    # total unless the search asked for _total=accurate. The last page names it (HAPI does by then for
    # small searches; for large ones it may not, so nothing may depend on it).
    has_next = len(links) > 1
    known = snapshot.total_accurate or not has_next or len(snapshot.ids) <= HAPI_FIRST_LOAD
    total = len(snapshot.ids) if known else None
    return _bundle(now, total, links, entries)


def first_page(
    store: TenantStore,
    cache: SnapshotCache,
    tenant: str,
    query: SearchQuery,
    ids: list[str],
    base: str,
    self_url: str,
    restriction: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Freeze the result ids (only when there is more than one page) and render the first page."""
    snapshot = Snapshot(
        tenant,
        query.resource_type,
        tuple(ids),
        tuple(p.name for p in query.includes),
        query.count,
        query.total_accurate,
    )
    token = cache.put(snapshot) if len(ids) > query.count else None
    return page_bundle(store, snapshot, token, 0, base, self_url, restriction, now)
