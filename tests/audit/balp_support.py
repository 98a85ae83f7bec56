"""Helpers for the BALP tests: the event's agents and entities grouped as BALP slices them."""

from __future__ import annotations

from typing import Any

DCM = "http://dicom.nema.org/resources/ontology/DCM"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
X_REQUEST_ID = ("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId")
REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}


def agents_by_type(event: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return the event's agents grouped by their type coding (system, code), as BALP slices them."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for agent in event["agent"]:
        (coding,) = agent["type"]["coding"]
        grouped.setdefault((coding["system"], coding["code"]), []).append(agent)
    return grouped


def entities_by_type(event: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return the event's entities grouped by their type (system, code), as BALP slices them."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entity in event["entity"]:
        grouped.setdefault((entity["type"]["system"], entity["type"]["code"]), []).append(entity)
    return grouped


def record_details(event: dict[str, Any]) -> dict[str, str]:
    """Return the detail of the entity that is the audit record itself (its ``urn:uuid`` is the event id)."""
    (entity,) = [
        e
        for e in event["entity"]
        if e["what"].get("identifier", {}).get("value") == f"urn:uuid:{event['id']}"
    ]
    assert entity["type"] == {"system": ENTITY_TYPE, "code": "4", "display": "Other"}
    return {d["type"]: d["valueString"] for d in entity["detail"]}
