"""Every resource the app writes passes HAPI's ``$validate`` with no error or fatal issue.

For each sandbox patient, the dose-change submission (DocumentReference, one DetectedIssue per finding,
QuestionnaireResponse, Provenance) is validated as the outbox would send it, and so is the pharmacist's
verification note with its verifier Provenance (placeholders resolved to
relative references); so are AuditEvents (one per audit action) and the note's Questionnaire. The
counts per type are printed at the end of the run (``conftest.pytest_terminal_summary``). HAPI only:
the sandbox has no ``$validate``. Expected warnings: dom-6 (no narrative), unknown code systems (LOINC,
US Core, the app's own, and its ValueSets), and, on a fresh HAPI, "questionnaire could not be
resolved" until its validation cache sees the stored Questionnaire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.support import NOW, PATIENT_IDS, VALIDATE_TALLY, FhirServer, dose_change_note
from plugin.audit.fhir import INTERACTIONS, audit_event
from plugin.audit.log import AuditEntry, record
from plugin.audit.models import AUDIT_TABLE, AuditRecord, record_as_dict
from plugin.db import Base, Database
from plugin.writeback.resources import PLACEHOLDER_PREFIX, WriteBackSettings, WriteContext, write_id_of
from plugin.writeback.submission import build_submission
from smart_launch.fhir_client import FhirError

pytestmark = pytest.mark.fhir_server
QUESTIONNAIRE = (
    Path(__file__).resolve().parents[2] / "config" / "templates" / "dose-change-questionnaire.json"
)


@pytest.fixture(scope="module")
def hapi(loaded_hapi: FhirServer) -> FhirServer:
    """Return the HAPI server (the sandbox has no $validate), holding the note's Questionnaire."""
    # Stored so HAPI's validator can check QuestionnaireResponse answers against it once its
    # validation cache picks it up (until then it warns that the questionnaire cannot be resolved).
    loaded_hapi.client.update(json.loads(QUESTIONNAIRE.read_text(encoding="utf-8")))
    return loaded_hapi


def validate(server: FhirServer, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a resource to ``{Type}/$validate``, count the outcome, return its error and fatal issues."""
    resource_type = resource["resourceType"]
    try:
        outcome = server.client.operation(f"{resource_type}/$validate", resource)
    except FhirError as error:  # 400: HAPI could not even parse it
        outcome = error.outcome or {"issue": [{"severity": "fatal", "diagnostics": error.safe_message}]}
    return VALIDATE_TALLY.add(resource_type, outcome)


def _resolved(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the resources with ``urn:uuid:`` placeholders replaced as the outbox does (Type/id)."""
    text = json.dumps(resources)
    for resource in resources:
        write_id = str(write_id_of(resource))
        text = text.replace(
            json.dumps(PLACEHOLDER_PREFIX + write_id), json.dumps(f"{resource['resourceType']}/{write_id}")
        )
    resolved: list[dict[str, Any]] = json.loads(text)
    return resolved


def _problems(issues: list[dict[str, Any]]) -> list[str]:
    """Return the issues as readable lines for an assertion message."""
    return [
        f"{i.get('severity')} at {i.get('expression') or i.get('location')}: {i.get('diagnostics')}"
        for i in issues
    ]


@pytest.mark.parametrize("patient_id", PATIENT_IDS)
def test_the_submission_of_every_patient_validates(hapi: FhirServer, patient_id: str) -> None:
    note, _ = dose_change_note(patient_id, hapi.client)
    context = WriteContext(hapi.base_url, patient_id, "Practitioner/clinician-1", None, NOW)
    resources = _resolved(build_submission(note, context=context, settings=WriteBackSettings()))
    types = [r["resourceType"] for r in resources]
    assert types[0] == "DocumentReference" and types[-2:] == ["QuestionnaireResponse", "Provenance"]
    assert types.count("DetectedIssue") == len(note.findings)
    errors = {f"{r['resourceType']}#{n}": _problems(validate(hapi, r)) for n, r in enumerate(resources)}
    assert {k: v for k, v in errors.items() if v} == {}


@pytest.mark.parametrize("action", ["verify", "reject"])
def test_the_pharmacists_verification_note_and_provenance_validate(hapi: FhirServer, action: str) -> None:
    from plugin.verification.note import ClinicianNote, build_verification_resources
    from plugin.writeback.note import RenderedNote

    rendered = RenderedNote(
        text=f"ITB dose change verification\nOutcome: {action.upper()}\nPharmacist: Practitioner/pharmacist-1\n",
        html=f"<p>ITB dose change verification</p><p>Outcome: {action.upper()}</p>",
    )
    context = WriteContext(hapi.base_url, "sci-adult", "Practitioner/pharmacist-1", None, NOW)
    resources = _resolved(
        build_verification_resources(
            rendered, action=action, clinician_note=ClinicianNote("note-write-1", "note-1"),
            context=context, settings=WriteBackSettings(),
        )
    )  # fmt: skip
    assert [r["resourceType"] for r in resources] == ["DocumentReference", "Provenance"]
    assert resources[0]["relatesTo"][0]["code"] == "appends"
    errors = {r["resourceType"]: _problems(validate(hapi, r)) for r in resources}
    assert {k: v for k, v in errors.items() if v} == {}


@pytest.fixture(scope="module")
def audit_records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """Write one audit record per action (varied fields) and return them as typed dicts."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.sqlite'}")
    Base.metadata.create_all(db.engine, tables=[AUDIT_TABLE])
    for index, action in enumerate(sorted(INTERACTIONS)):
        refused = action in ("writeback.refused", "action.refused")
        record(
            db,
            AuditEntry(
                actor="Practitioner/clinician-1" if index % 3 else "system:outbox",
                actor_role="clinician" if index % 3 else "system",
                action=action,
                patient_id="sci-adult" if index % 4 else None,
                iss="https://ehr.example.org/fhir" if index % 2 else None,
                dose_before_ug_per_day=400.0,
                dose_after_ug_per_day=480.0 if index % 2 else None,
                verdict="warn" if index % 2 else None,
                finding_codes=["cns-depressant"] if index % 2 else [],
                override_reason_code="benefit-outweighs-risk" if index % 5 == 0 else None,
                override_reason_text="Reviewed with the pump team" if index % 5 == 0 else None,
                related=["MedicationRequest/mr-1", "note-outbox-row-7"] if index % 2 else [],
                request_id=f"req-{index}",
                detail={"reason": "the EHR refused"} if refused else {"index": index},
            ),
            now=NOW + timedelta(minutes=index),
        )
    with db.session() as session:
        rows = [record_as_dict(r) for r in session.query(AuditRecord).order_by(AuditRecord.seq)]
    yield rows
    db.dispose()


def test_audit_events_validate(hapi: FhirServer, audit_records: list[dict[str, Any]]) -> None:
    assert len(audit_records) == len(INTERACTIONS)
    errors = {r["action"]: _problems(validate(hapi, audit_event(r))) for r in audit_records}
    assert {k: v for k, v in errors.items() if v} == {}


def test_the_note_questionnaire_validates(hapi: FhirServer) -> None:
    questionnaire = json.loads(QUESTIONNAIRE.read_text(encoding="utf-8"))
    assert _problems(validate(hapi, questionnaire)) == []
