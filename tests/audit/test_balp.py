"""The AuditEvent of one audit record follows IHE BALP's RESTful patterns in the awkward cases too."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from audit.balp_support import DCM, ENTITY_TYPE, REST, X_REQUEST_ID, agents_by_type, entities_by_type
from plugin.audit.fhir import INTERACTIONS, audit_event
from plugin.audit.log import ACTIONS, AuditEntry, record
from plugin.audit.models import record_as_dict
from plugin.db import Database

EHR = "https://ehr.example.org/fhir"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"


def event_of(db: Database, **fields: Any) -> dict[str, Any]:
    """Record one entry (a clinician at the EHR about patient 123 unless told) and return its AuditEvent."""
    values: dict[str, Any] = {
        "actor": "Practitioner/pr-1",
        "actor_role": "clinician",
        "patient_id": "123",
        "iss": EHR,
        "request_id": "req-1",
        **fields,
    }
    stored = record(db, AuditEntry(**values))
    event = audit_event(record_as_dict(stored))
    AuditEvent.model_validate(event)  # every shape here is valid R4B
    return event


def test_every_action_has_a_restful_interaction() -> None:
    assert set(INTERACTIONS) == set(ACTIONS)
    assert {code for code, _ in INTERACTIONS.values()} <= {"read", "create", "update", "operation", "search"}


def test_a_launch_read_without_related_resources_names_the_patient_as_the_data_read(
    sqlite_db: Database,
) -> None:
    event = event_of(sqlite_db, action="launch.read-record")
    assert event["type"] == REST and event["action"] == "R"
    entities = entities_by_type(event)
    (data,) = entities[(ENTITY_TYPE, "2")]
    assert data["what"] == {"reference": "Patient/123"} and data["role"]["code"] == "4"
    (patient,) = entities[(ENTITY_TYPE, "1")]
    assert patient["what"] == {"reference": "Patient/123"} and patient["role"]["code"] == "1"


def test_a_filing_has_one_data_entity_the_first_fhir_resource(sqlite_db: Database) -> None:
    related = ["DoseChange/7", "DocumentReference/9", "DetectedIssue/3", "Provenance/4"]
    event = event_of(sqlite_db, action="writeback.filed", related=related)
    entities = entities_by_type(event)
    (data,) = entities[(ENTITY_TYPE, "2")]  # BALP's entity[data] is 1..1
    assert data["what"] == {"reference": "DocumentReference/9"}
    (issue,) = entities[(RESOURCE_TYPES, "DetectedIssue")]
    (provenance,) = entities[(RESOURCE_TYPES, "Provenance")]
    assert issue["what"] == {"reference": "DetectedIssue/3"} and provenance["role"]["code"] == "4"
    others = [e["what"] for e in entities[(ENTITY_TYPE, "4")]]
    assert {"reference": "DoseChange/7"} in others  # the app's own record: not a FHIR resource type


def test_a_proposal_of_the_apps_own_record_still_has_a_data_entity(sqlite_db: Database) -> None:
    event = event_of(sqlite_db, action="dose-change.propose", related=["DoseChange/7"])
    (data,) = entities_by_type(event)[(ENTITY_TYPE, "2")]
    assert data["what"] == {"reference": "DoseChange/7"}


def test_an_entry_without_a_request_id_has_no_transaction_entity(sqlite_db: Database) -> None:
    with_id = event_of(sqlite_db, action="check.run")
    without = event_of(sqlite_db, action="check.run", request_id=None)
    (transaction,) = entities_by_type(with_id)[X_REQUEST_ID]
    assert transaction["what"] == {"identifier": {"value": "req-1"}}
    assert X_REQUEST_ID not in entities_by_type(without)


def test_a_cds_call_has_the_cds_client_as_client_and_the_app_as_server(sqlite_db: Database) -> None:
    event = event_of(
        sqlite_db, action="cds.card", actor=f"cds-client:{EHR}", actor_role="cds", related=["cds-card:u1"]
    )
    agents = agents_by_type(event)
    (actor,) = agents[(DCM, "110150")]
    assert actor["requestor"] is True and actor["who"] == {"display": f"cds-client:{EHR}"}
    (client,) = agents[(DCM, "110153")]
    (server,) = agents[(DCM, "110152")]
    assert client["who"]["identifier"] == {"system": "urn:ietf:rfc:3986", "value": EHR}
    assert server["who"] == {"display": "ITB Dose Check"}


@pytest.mark.parametrize(
    ("interaction_action", "user_code"),
    [("launch.read-record", "IRCP"), ("audit.export", "IRCP"), ("verification.reject", "AUT")],
)
def test_the_user_agent_type_follows_the_interaction(
    sqlite_db: Database, interaction_action: str, user_code: str
) -> None:
    event = event_of(sqlite_db, action=interaction_action, actor_role="pharmacist")
    assert event["agent"][0]["type"]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": user_code,
            "display": {"IRCP": "information recipient", "AUT": "author (originator)"}[user_code],
        }
    ]


def test_outcomes_are_0_on_success_4_when_refused_and_8_on_error(sqlite_db: Database) -> None:
    ok = event_of(sqlite_db, action="writeback.filed")
    refused = event_of(sqlite_db, action="action.refused", detail={"reason": "not a pharmacist"})
    failed = event_of(sqlite_db, action="writeback.queued", detail={"error": "EHR timed out"})
    assert (ok["outcome"], "outcomeDesc" in ok) == ("0", False)
    assert (refused["outcome"], refused["outcomeDesc"]) == ("4", "not a pharmacist")
    assert (failed["outcome"], failed["outcomeDesc"]) == ("8", "EHR timed out")
