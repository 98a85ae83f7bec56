"""Audit records as FHIR R4 AuditEvents, shaped after IHE Basic Audit Log Patterns (BALP).

Neither Epic nor Oracle Health accepts AuditEvent writes, so these only leave the app in an export (a
Bundle of type collection) for an audit repository or a reviewer. Each event carries the record's hash
chain fields in ``entity.detail`` so an exported event can be matched to the chain without extensions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from plugin.audit.models import canonical_json, format_instant
from plugin.db import utcnow

DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACTION_CODES = "http://itb-dose-check.org/CodeSystem/audit-action"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
URI_SYSTEM = "urn:ietf:rfc:3986"

# action -> (restful-interaction subtype, AuditEvent.action). BALP: read R, create C, update U, and
# queries/operations E.
INTERACTIONS: dict[str, tuple[str, str]] = {
    "launch.read-record": ("read", "R"),
    "check.run": ("operation", "E"),
    "dose-change.propose": ("create", "C"),
    "dose-change.override": ("create", "C"),
    "writeback.filed": ("create", "C"),
    "writeback.queued": ("create", "C"),
    "writeback.refused": ("create", "C"),
    "verification.verify": ("update", "U"),
    "verification.reject": ("update", "U"),
    "verification.undo": ("update", "U"),
    "cds.card": ("operation", "E"),
    "cds.feedback": ("create", "C"),
    "action.refused": ("operation", "E"),
    "audit.export": ("search", "E"),
    "audit.view": ("read", "R"),
}
# Outcome 4 "minor failure" is FHIR's HTTP-4xx-like outcome: the action was refused, nothing broke.
REFUSED_ACTIONS = frozenset({"writeback.refused", "action.refused"})


def _reference(value: str) -> dict[str, str]:
    """Return a Reference for a FHIR reference (relative or absolute) or a display-only one otherwise."""
    head = value.split("/", 1)[0]
    if value.startswith(("http://", "https://")) or ("/" in value and head[:1].isupper() and head.isalpha()):
        return {"reference": value}
    return {"display": value}


def _outcome(record: dict[str, Any]) -> tuple[str, str | None]:
    """Return the AuditEvent outcome code (0, 4 or 8) and a description for failures."""
    detail = record["detail"]
    reason = detail.get("reason") if isinstance(detail.get("reason"), str) else None
    if isinstance(detail.get("error"), str) and detail["error"].strip():
        return "8", detail["error"]
    if record["action"] in REFUSED_ACTIONS:
        return "4", reason or record["action"]
    return "0", None


def _details(record: dict[str, Any]) -> list[dict[str, str]]:
    """Return the record's dose, verdict, findings, override and chain fields as entity.detail."""
    values: list[tuple[str, Any]] = [
        ("action", record["action"]),
        ("seq", str(record["seq"])),
        ("dose_before_ug_per_day", record["dose_before_ug_per_day"]),
        ("dose_after_ug_per_day", record["dose_after_ug_per_day"]),
        ("verdict", record["verdict"]),
        ("finding_codes", canonical_json(record["finding_codes"]) if record["finding_codes"] else None),
        ("override_reason_code", record["override_reason_code"]),
        ("override_reason_text", record["override_reason_text"]),
        ("request_id", record["request_id"]),
        ("iss", record["iss"]),
        ("detail", canonical_json(record["detail"]) if record["detail"] else None),
        ("prev_hash", record["prev_hash"]),
        ("hash", record["hash"]),
    ]
    details = []
    for name, value in values:
        text = json.dumps(value) if isinstance(value, float) else value
        if isinstance(text, str) and text.strip():  # FHIR strings may not be empty
            details.append({"type": name, "valueString": text})
    return details


def audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """Return one typed audit record (``models.record_as_dict``) as a FHIR R4 AuditEvent (JSON dict)."""
    interaction, action_code = INTERACTIONS[record["action"]]
    outcome, outcome_desc = _outcome(record)
    agents: list[dict[str, Any]] = [
        {
            "who": _reference(record["actor"]),
            "name": record["actor"],
            "requestor": True,
            "role": [{"text": record["actor_role"]}],
        }
    ]
    if record["iss"]:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"identifier": {"system": URI_SYSTEM, "value": record["iss"]}, "display": "EHR"},
                "requestor": False,
                "network": {"address": record["iss"], "type": "5"},  # 5 = URI
            }
        )
    entities: list[dict[str, Any]] = []
    if record["patient_id"]:
        patient = record["patient_id"]
        entities.append(
            {
                "what": {"reference": patient if "/" in patient else f"Patient/{patient}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    for reference in record["related"]:
        entities.append(
            {
                "what": _reference(reference),
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    entities.append(
        {
            "what": {"identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{record['id']}"}},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "name": f"ITB Dose Check audit record {record['seq']}",
            "detail": _details(record),
        }
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record["id"],
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [
            {"system": RESTFUL_INTERACTION, "code": interaction, "display": interaction},
            {"system": ACTION_CODES, "code": record["action"]},
        ],
        "action": action_code,
        "recorded": format_instant(record["recorded_at"]),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "observer": {"display": "ITB Dose Check"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    return event


def write_bundle(records: Iterable[dict[str, Any]], out: IO[str], *, now: datetime | None = None) -> int:
    """Stream a Bundle (type collection) of one AuditEvent per record to ``out``; return the count."""
    head = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": format_instant(now or utcnow()),
    }
    out.write(json.dumps(head, ensure_ascii=False)[:-1])
    count = 0
    for record in records:
        # FHIR JSON forbids empty arrays, so "entry" opens only with its first element.
        out.write(',"entry":[' if count == 0 else ",")
        entry = {"fullUrl": f"urn:uuid:{record['id']}", "resource": audit_event(record)}
        out.write(json.dumps(entry, ensure_ascii=False))
        count += 1
    out.write("]}\n" if count else "}\n")
    return count
