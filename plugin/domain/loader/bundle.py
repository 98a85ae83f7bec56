"""Charts from a FHIR Bundle (``itb check --bundle``) and from CDS Hooks prefetch.

A prefetch value is a resource, a Bundle, null, or an OperationOutcome (CDS Hooks 2.0, standards.md
§2.4). Keys that are absent, null, failed, or a Bundle with more pages are returned so that the caller
can fetch them itself; the chart built without them is incomplete and says so in ``data_gaps``.

The prefetch keys are not defined here: the one list is ``plugin.cds.prefetch.prefetch_templates(codes)``
(what the CDS service advertises), and callers pass its keys. The CDS service itself reads prefetch with
``plugin.cds.prefetch.resolve`` (which also fetches what is missing) and ``chart_from_entries``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from plugin.domain.chart import Chart
from plugin.domain.codes import CodeSets
from plugin.domain.loader.build import chart_from_entries
from plugin.domain.loader.fhir import as_list, as_map
from plugin.domain.loader.index import ChartInputError

BUNDLE_TYPES = frozenset({"collection", "searchset", "transaction", "batch"})


def _bundle_entries(bundle: Mapping[str, Any], allowed: frozenset[str]) -> list[tuple[str | None, Any]]:
    """Return a Bundle's (fullUrl, resource) pairs; raise ChartInputError when it is not a usable Bundle."""
    if bundle.get("resourceType") != "Bundle":
        raise ChartInputError("the input is not a FHIR Bundle")
    if bundle.get("type") not in allowed:
        raise ChartInputError(f"a Bundle of type '{bundle.get('type')}' cannot be checked")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise ChartInputError("Bundle.entry is not a list")
    pairs: list[tuple[str | None, Any]] = []
    for position, entry in enumerate(entries):
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise ChartInputError(f"Bundle entry {position + 1} is not a JSON object")
        resource = entry.get("resource")
        if resource is None:  # a transaction DELETE, or a bare request
            continue
        full_url = entry.get("fullUrl")
        pairs.append((full_url if type(full_url) is str else None, resource))
    return pairs


def chart_from_bundle(bundle: Mapping[str, Any], *, codes: CodeSets, now: datetime) -> Chart:
    """Build a Chart from a collection, searchset, transaction or batch Bundle."""
    if not isinstance(bundle, Mapping):
        raise ChartInputError("the input is not a JSON object")
    return chart_from_entries(_bundle_entries(bundle, BUNDLE_TYPES), codes=codes, now=now)


def chart_from_prefetch(
    prefetch: Mapping[str, Any | None],
    *,
    keys: Iterable[str],
    codes: CodeSets,
    now: datetime,
    patient_id: str,
) -> tuple[Chart, list[str]]:
    """Build a Chart from CDS Hooks prefetch; return it with the keys still to fetch.

    ``keys`` are the advertised prefetch keys (``plugin.cds.prefetch.prefetch_templates(codes)``): an
    advertised key the prefetch lacks is returned as missing.
    """
    entries: list[tuple[str | None, Any]] = []
    missing: list[str] = [key for key in keys if key not in prefetch]
    for key, value in prefetch.items():
        if not isinstance(value, Mapping) or value.get("resourceType") == "OperationOutcome":
            missing.append(key)
            continue
        if value.get("resourceType") == "Bundle":
            try:
                entries.extend(_bundle_entries(value, BUNDLE_TYPES))
            except ChartInputError:
                missing.append(key)
                continue
            if any(as_map(link).get("relation") == "next" for link in as_list(value.get("link"))):
                missing.append(key)
        else:
            entries.append((None, value))
    gaps = [f"prefetch '{key}' was not provided or incomplete" for key in missing]
    chart = chart_from_entries(
        entries, codes=codes, now=now, patient_id=patient_id, gaps=gaps, require_patient=False
    )
    return chart, missing
