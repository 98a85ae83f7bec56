"""Prefetch for the CDS service: the templates it advertises and how each answer is read.

CDS Hooks 2.0 (standards.md §2.4) gives four cases per key, read here as follows:

- missing key: not satisfied. We fetch it through ``fhirServer`` (one parallel round), else see below.
- ``null``: the client looked and found no data (spec: "no data to populate"), so an empty result.
- an OperationOutcome: the client's query failed: not satisfied, fetched like a missing key.
- a searchset Bundle with a ``next`` link: incomplete. Re-run through ``fhirServer`` (all pages).

What cannot be satisfied decides the answer: a *required* key (the patient and the medication orders:
without them there is no current dose) makes the service answer 412; any other key becomes a data gap
that the card names ("not checked: vital signs"), because EHRs omit templates they do not support (Epic
and Oracle Health have no R4 MedicationStatement) and a 412 there would hide the whole check. An
incomplete optional key keeps the page it has (newest first, by the templates' ``_sort=-date``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from plugin.domain.codes import CodeSets
from smart_launch.fhir_client import FhirClient, FhirError, Search

PATIENT = "{{context.patientId}}"
REQUIRED_KEYS = frozenset({"patient", "medicationRequests"})
KEY_LABELS = {
    "patient": "the patient",
    "medicationRequests": "medication orders",
    "medicationStatements": "medication statements",
    "scores": "spasticity scores",
    "findings": "exam and assessment findings",
    "pump": "pump values",
    "vitals": "vital signs",
    "egfr": "eGFR",
    "conditions": "conditions",
    "devices": "devices",
    "deviceUse": "device use",
    "procedures": "procedures",
}
_TOKEN = re.compile(r"\{\{\s*context\.(patientId|encounterId|userId)\s*\}\}")
_REASONS = {"missing": "not sent by the EHR", "error": "the EHR reported an error"}
_BUNDLE_TYPES = frozenset({"searchset", "collection", "batch-response", "transaction-response"})


def _tokens(codings: Any) -> str:
    """Return ``system|code,...`` sorted, for a token search parameter."""
    return ",".join(sorted(f"{system}|{code}" for system, code in codings))


def prefetch_templates(codes: CodeSets) -> dict[str, str]:
    """Return the prefetch templates, with the pump and eGFR codes taken from ``codes.toml``."""
    return {
        "patient": f"Patient/{PATIENT}",
        "medicationRequests": f"MedicationRequest?patient={PATIENT}&status=active,completed,stopped,on-hold"
        "&_include=MedicationRequest:medication",
        "medicationStatements": f"MedicationStatement?patient={PATIENT}"
        "&_include=MedicationStatement:medication",
        # Scores by their codes (any category), as the chart loader searches them.
        "scores": f"Observation?patient={PATIENT}&code={_tokens(codes.score_codes)}&_sort=-date&_count=200",
        # Withdrawal signs have no verified codes (matched by text): the recent exam and assessment
        # findings, where nursing records them. Vital signs have their own key.
        "findings": f"Observation?patient={PATIENT}&category=exam,survey&_sort=-date&_count=100",
        "pump": f"Observation?patient={PATIENT}&code={_tokens(codes.pump_observations)}",
        "vitals": f"Observation?patient={PATIENT}&category=vital-signs&_sort=-date&_count=50",
        "egfr": f"Observation?patient={PATIENT}&code={_tokens(codes.egfr)}&_sort=-date&_count=1",
        "conditions": f"Condition?patient={PATIENT}&clinical-status=active",
        "devices": f"Device?patient={PATIENT}",
        "deviceUse": f"DeviceUseStatement?patient={PATIENT}",
        "procedures": f"Procedure?patient={PATIENT}",
    }


def search_for(template: str, context: Mapping[str, Any]) -> Search:
    """Return the FHIR search that satisfies ``template`` for ``context`` (a read becomes ``_id=``)."""
    filled = _TOKEN.sub(lambda match: str(context.get(match.group(1)) or ""), template)
    path, _, query = filled.partition("?")
    if not query and "/" in path:  # an instance read, e.g. Patient/123
        resource_type, _, resource_id = path.partition("/")
        return Search(resource_type, {"_id": resource_id}, max_pages=1)
    pairs = parse_qsl(query, keep_blank_values=False)
    pages = 1 if any(name == "_count" and value == "1" for name, value in pairs) else 20
    return Search(path, pairs, max_pages=pages)


@dataclass
class Resolved:
    """What the prefetch (and any fetch) gave: resources, gaps in plain words, and required keys lost."""

    entries: list[tuple[str | None, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    unsatisfied_required: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)


def _read_value(value: Any) -> tuple[str, list[tuple[str | None, Any]]]:
    """Classify one prefetch value: ('ok' | 'error' | 'incomplete', entries)."""
    if value is None:
        return "ok", []
    if not isinstance(value, Mapping):
        return "error", []
    resource_type = value.get("resourceType")
    if resource_type == "OperationOutcome":
        return "error", []
    if resource_type != "Bundle":
        return "ok", [(None, value)]
    if value.get("type") not in _BUNDLE_TYPES or not isinstance(value.get("entry", []), list):
        return "error", []
    entries: list[tuple[str | None, Any]] = []
    # JSON objects are plain dicts: ``isinstance(x, dict)`` is several times cheaper than the
    # ``Mapping`` ABC check, and this loop runs for every resource of every prefetch Bundle.
    for entry in value.get("entry", []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") == "OperationOutcome":
            continue  # not a resource, or a searchset's warnings as an OperationOutcome entry
        full_url = entry.get("fullUrl")
        entries.append((full_url if isinstance(full_url, str) else None, resource))
    links = value["link"] if isinstance(value.get("link"), list) else []
    has_next = any(isinstance(link, Mapping) and link.get("relation") == "next" for link in links)
    return ("incomplete" if has_next else "ok"), entries


def resolve(
    prefetch: Mapping[str, Any],
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    client_factory: Callable[[], FhirClient] | None,
) -> Resolved:
    """Read every template's prefetch; fetch what is unsatisfied in one round when a client is allowed."""
    resolved = Resolved()
    pending: dict[str, tuple[str, list[tuple[str | None, Any]]]] = {}
    for key in templates:
        if key not in prefetch:
            pending[key] = ("missing", [])
            continue
        state, entries = _read_value(prefetch[key])
        if state == "ok":
            resolved.entries.extend(entries)
        else:
            pending[key] = (state, entries)
    if pending and client_factory is not None:
        _fetch(pending, templates, context, client_factory, resolved)
    for key, (state, entries) in pending.items():
        label = KEY_LABELS.get(key, key)
        if key in REQUIRED_KEYS:
            resolved.unsatisfied_required.append(key)
        elif state == "incomplete":
            resolved.entries.extend(entries)
            resolved.gaps.append(f"only the first page of {label} was available")
        else:
            reason = _REASONS.get(state, state)
            resolved.gaps.append(f"{label} could not be read ({reason})")
    return resolved


def _fetch(
    pending: dict[str, tuple[str, list[tuple[str | None, Any]]]],
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    client_factory: Callable[[], FhirClient],
    resolved: Resolved,
) -> None:
    """Run the pending keys' searches in one parallel round; drop each satisfied key from ``pending``."""
    keys = list(pending)
    client = client_factory()
    try:
        results = client.search_many([search_for(templates[key], context) for key in keys])
    finally:
        client.close()
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, FhirError):
            state, entries = pending[key]
            failed = f"the FHIR server answered: {result.safe_message}"
            pending[key] = (failed if state != "incomplete" else state, entries)
            continue
        resolved.entries.extend((None, resource) for resource in result)
        resolved.fetched.append(key)
        del pending[key]
