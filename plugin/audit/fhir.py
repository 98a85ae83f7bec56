"""Audit records as FHIR R4 AuditEvents, shaped after IHE Basic Audit Log Patterns (BALP).

Neither Epic nor Oracle Health accepts AuditEvent writes, so these only leave the app in an export (a
Bundle of type collection) for an audit repository or a reviewer. Each event follows the BALP RESTful
patterns (https://profiles.ihe.net/ITI/BALP/): ``type`` rest with the restful-interaction as ``subtype``,
client and server agents, the user, the patient, the data entity and the X-Request-Id as a transaction
entity (``read`` events as PatientRead, ``create`` as PatientCreate, ``update`` as PatientUpdate). An
``Other`` entity for the audit record itself carries its fields and hash chain in ``entity.detail``, so an
exported event can be matched to the chain without extensions. docs/audit.md lists where BALP is not met.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import IO, Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

from plugin.audit.models import canonical_json, format_instant
from plugin.db import utcnow

APP_NAME = "ITB Dose Check"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACTION_CODES = "http://itb-dose-check.org/CodeSystem/audit-action"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
URI_SYSTEM = "urn:ietf:rfc:3986"

REST_TYPE = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
SOURCE_ROLE = {"system": DCM, "code": "110153", "display": "Source Role ID"}
DESTINATION_ROLE = {"system": DCM, "code": "110152", "display": "Destination Role ID"}
APPLICATION = {"system": DCM, "code": "110150", "display": "Application"}
RECIPIENT = {"system": PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}
AUTHOR = {"system": PARTICIPATION_TYPE, "code": "AUT", "display": "author (originator)"}
PERSON = {"system": ENTITY_TYPE, "code": "1", "display": "Person"}
SYSTEM_OBJECT = {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}
OTHER = {"system": ENTITY_TYPE, "code": "4", "display": "Other"}
X_REQUEST_ID = {
    "system": BALP_ENTITY_TYPE,
    "code": "XrequestId",
    "display": "transport specific unique identifier where http X-Request-Id is used",
}
PATIENT_ROLE = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
DOMAIN_RESOURCE = {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}

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
# BALP: for a read the data flows server -> client, so the client is the Destination and the server the
# Source; for everything else (create, update, search, operation) the request flows client -> server.
READ_INTERACTIONS = frozenset({"read", "vread"})
# Calls the EHR's CDS client makes to the app: there the app is the server and the CDS client the client.
INBOUND_ACTIONS = frozenset({"cds.card", "cds.feedback"})
# Actors that are software, not a person: their agent is an Application, not BALP's user.
APPLICATION_ROLES = frozenset({"system", "cds"})
# Outcome 4 "minor failure" is FHIR's HTTP-4xx-like outcome: the action was refused, nothing broke.
REFUSED_ACTIONS = frozenset({"writeback.refused", "action.refused"})


def _reference(value: str) -> dict[str, str]:
    """Return a Reference for a FHIR reference (relative or absolute) or a display-only one otherwise."""
    head = value.split("/", 1)[0]
    if value.startswith(("http://", "https://")) or ("/" in value and head[:1].isupper() and head.isalpha()):
        return {"reference": value}
    return {"display": value}


@cache
def _is_resource_type(name: str) -> bool:
    """Return whether ``name`` is a concrete FHIR resource type (``DoseChange`` is the app's, not FHIR's)."""
    if name in ("Resource", "DomainResource") or not (name.isalpha() and name[:1].isupper()):
        return False
    try:
        return issubclass(get_fhir_model_class(name), Resource)
    except ValueError:
        return False


def _resource_type(value: str) -> str | None:
    """Return the FHIR resource type a related reference names (``Type/id``, absolute or versioned)."""
    if "/_history/" in value:
        value = value.split("/_history/", 1)[0]
    parts = value.rstrip("/").split("/")
    if len(parts) < 2:
        return None
    name = parts[-2]
    return name if _is_resource_type(name) else None


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
    """Return the record's dose, verdict, findings, override, related and chain fields as entity.detail."""
    values: list[tuple[str, Any]] = [
        ("action", record["action"]),
        ("seq", str(record["seq"])),
        ("dose_before_ug_per_day", record["dose_before_ug_per_day"]),
        ("dose_after_ug_per_day", record["dose_after_ug_per_day"]),
        ("verdict", record["verdict"]),
        ("finding_codes", canonical_json(record["finding_codes"]) if record["finding_codes"] else None),
        ("override_reason_code", record["override_reason_code"]),
        ("override_reason_text", record["override_reason_text"]),
        # in stored order (the entities put the data first), so the hash can be recomputed from the event
        ("related", canonical_json(record["related"]) if record["related"] else None),
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


def _agents(record: dict[str, Any], interaction: str) -> list[dict[str, Any]]:
    """Return the actor (BALP's user, or an Application for system and CDS actors), client and server.

    The client and server are typed as BALP's RESTful patterns want: for a read the client is the
    Destination Role ID and the server the Source Role ID, for everything else the other way round.
    """
    read = interaction in READ_INTERACTIONS
    if record["actor_role"] in APPLICATION_ROLES:
        actor_type = APPLICATION
    else:
        actor_type = RECIPIENT if read or interaction == "search" else AUTHOR
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [actor_type]},
            "role": [{"text": record["actor_role"]}],
            "who": _reference(record["actor"]),
            "name": record["actor"],
            "requestor": True,
        }
    ]
    app: dict[str, Any] = {"who": {"display": APP_NAME}}
    iss = record["iss"]
    if record["action"] in INBOUND_ACTIONS:  # the EHR's CDS client called the app
        client: dict[str, Any] | None = (
            {"who": {"identifier": {"system": URI_SYSTEM, "value": iss}, "display": "CDS client"}}
            if iss
            else None
        )
        server: dict[str, Any] | None = app
    else:
        client = app
        server = (
            {
                "who": {"identifier": {"system": URI_SYSTEM, "value": iss}, "display": "EHR"},
                "network": {"address": iss, "type": "5"},  # 5 = URI
            }
            if iss
            else None
        )
    if client is not None:
        agents.append(
            {"type": {"coding": [DESTINATION_ROLE if read else SOURCE_ROLE]}, **client, "requestor": False}
        )
    if server is not None:
        agents.append(
            {"type": {"coding": [SOURCE_ROLE if read else DESTINATION_ROLE]}, **server, "requestor": False}
        )
    return agents


def _entities(record: dict[str, Any], interaction: str) -> list[dict[str, Any]]:
    """Return the patient, data, other related, transaction and audit-record entities.

    BALP slices entities by ``type``: exactly one ``System Object`` (the data: the first related FHIR
    resource, else the first related reference, else for a read the Patient read), so further related
    references are typed by their FHIR resource type (or ``Other`` when they are not FHIR resources).
    """
    entities: list[dict[str, Any]] = []
    patient = record["patient_id"]
    patient_ref = (patient if "/" in patient else f"Patient/{patient}") if patient else None
    if patient_ref:
        entities.append({"what": {"reference": patient_ref}, "type": PERSON, "role": PATIENT_ROLE})
    related: list[str] = list(record["related"])
    data = next((r for r in related if _resource_type(r)), related[0] if related else None)
    if data is not None:
        entities.append({"what": _reference(data), "type": SYSTEM_OBJECT, "role": DOMAIN_RESOURCE})
    elif patient_ref and interaction in READ_INTERACTIONS:  # the launch read the patient's record
        entities.append({"what": {"reference": patient_ref}, "type": SYSTEM_OBJECT, "role": DOMAIN_RESOURCE})
    for reference in related:
        if reference == data:
            continue
        resource_type = _resource_type(reference)
        entity_type = {"system": RESOURCE_TYPES, "code": resource_type} if resource_type else OTHER
        entities.append({"what": _reference(reference), "type": entity_type, "role": DOMAIN_RESOURCE})
    if record["request_id"]:
        entities.append({"what": {"identifier": {"value": record["request_id"]}}, "type": X_REQUEST_ID})
    entities.append(
        {
            "what": {"identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{record['id']}"}},
            "type": OTHER,
            "name": f"{APP_NAME} audit record {record['seq']}",
            "detail": _details(record),
        }
    )
    return entities


def audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """Return one typed audit record (``models.record_as_dict``) as a FHIR R4 AuditEvent (JSON dict)."""
    interaction, action_code = INTERACTIONS[record["action"]]
    outcome, outcome_desc = _outcome(record)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record["id"],
        "type": REST_TYPE,
        "subtype": [
            {"system": RESTFUL_INTERACTION, "code": interaction, "display": interaction},
            {"system": ACTION_CODES, "code": record["action"]},
        ],
        "action": action_code,
        "recorded": format_instant(record["recorded_at"]),
        "outcome": outcome,
        "agent": _agents(record, interaction),
        "source": {
            "observer": {"display": APP_NAME},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": _entities(record, interaction),
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    return copy.deepcopy(event)  # the codings are module constants: callers may edit their copy


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
