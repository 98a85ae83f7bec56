"""A decision appends the pharmacist's mitigation to each DetectedIssue of the clinician's submission.

The last test files a clinician's submission in the sandbox EHR (started on a loopback port, unseeded),
verifies and undoes the change, runs the outbox, and reads the DetectedIssues from the sandbox's store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.verification.models import VerificationAction
from plugin.verification.service import Decision, decide
from plugin.writeback.codes import MITIGATION_SYSTEM
from plugin.writeback.models import OutboxItem
from plugin.writeback.outbox import enqueue_submission, submission_status
from plugin.writeback.resources import WriteBackSettings, WriteContext, validate_resource
from plugin.writeback.sender import run_once
from plugin.writeback.submission import build_submission
from plugin.writeback.update import marker_of
from smart_launch.fhir_client import FhirClient
from smart_launch.sandbox import SandboxConfig, create_sandbox_app, serve_in_thread
from tests.conftest import SANDBOX_ISS
from tests.contract.support import sandbox_user_token, users_bundle
from tests.verification.support import (
    NOW,
    PHARMACIST,
    PRESCRIBER,
    check_json,
    make_change,
    make_launch,
    stored_review,
)
from tests.writeback.writeback_support import note_input

CAN_UPDATE: dict[str, Any] = {
    "rest": [
        {
            "mode": "server",
            "resource": [
                {"type": t, "interaction": [{"code": "create"}, {"code": "read"}, {"code": "update"}]}
                for t in ("DocumentReference", "Provenance", "DetectedIssue")
            ],
        }
    ]
}


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    return app.extensions["itb.db"]


def decision(
    app: Flask, record: DoseChangeRecord, action: str, version: int, capabilities: dict[str, Any], **text: str
) -> VerificationAction:
    """Apply one decision by Practitioner/pharmacist-1 in its own transaction."""
    launch, _ = make_launch(app)
    at = {"verify": 5, "reject": 5, "undo": 10}[action]
    with app.app_context(), app.extensions["itb.db"].session() as session:
        return decide(
            session,
            launch=launch,
            decision=Decision(record.id, version, action, text.get("reason", ""), text.get("comment", "")),
            review=stored_review(record),
            capabilities=capabilities,
            settings=WriteBackSettings(),
            now=NOW + timedelta(minutes=at),
        )


def rows_of(db: Database, submission_id: str | None) -> list[OutboxItem]:
    """Return a submission's outbox rows in order."""
    with db.session() as session:
        return list(
            session.scalars(
                select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
            )
        )


def test_a_reject_queues_one_mitigation_update_per_detected_issue(app: Flask, db: Database) -> None:
    record = make_change(db)  # the clinician's submission: a note and one DetectedIssue (issue-1)
    done = decision(app, record, "reject", 1, CAN_UPDATE, reason="Increase too soon after the last one.")
    [issue] = [r for r in rows_of(db, record.outbox_submission_id) if r.resource_type == "DetectedIssue"]
    updates = [r for r in rows_of(db, done.outbox_submission_id) if r.is_update]
    assert [(u.target_id, u.resource_type, u.status) for u in updates] == [
        (issue.id, "DetectedIssue", "pending")
    ]
    [mitigation] = updates[0].resource["mitigation"]
    assert mitigation["action"]["coding"][0] == {
        "system": MITIGATION_SYSTEM,
        "code": "pharmacist-rejected",
        "display": "Pharmacist rejected the dose change",
    }
    assert mitigation["action"]["text"].endswith("Increase too soon after the last one.")
    assert mitigation["author"] == {"reference": PHARMACIST}
    assert marker_of(mitigation) == updates[0].id
    assert done.mitigations[0]["update_id"] == updates[0].id
    # The mitigation is a valid R4B DetectedIssue.mitigation on the clinician's DetectedIssue.
    validate_resource({**issue.resource, "mitigation": [mitigation]})


@dataclass
class Sandbox:
    """The sandbox EHR on a loopback port: its Flask app (for the store), FHIR base and a user token."""

    app: Flask
    base: str
    token: str

    def detected_issue(self, server_id: str) -> dict[str, Any]:
        """Return the current DetectedIssue from the sandbox's store."""
        record = self.app.extensions["sandbox"].store.tenant("full").read("DetectedIssue", server_id)
        assert record is not None
        resource: dict[str, Any] = record.resource
        return resource


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """Start the sandbox unseeded with the sandbox users and Patient/p1."""
    sandbox_app = create_sandbox_app(SandboxConfig(seed=False, token_lifetime_seconds=6 * 3600))
    handle = serve_in_thread(sandbox_app)
    try:
        token = sandbox_user_token(handle.url)
        base = f"{handle.url}/full/fhir"
        with FhirClient(base, lambda: token, max_retries=1) as client:
            client.transaction(users_bundle())
            client.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Testpatient"}]})
        yield Sandbox(sandbox_app, base, token)
    finally:
        handle.shutdown()


def clinician_submission(db: Database, client: FhirClient) -> str:
    """Queue and file the clinician's note with two DetectedIssues (a warn overridden, an info)."""
    check = check_json(
        "warn",
        findings=[
            {"code": "cns-depressant", "severity": "warn", "message": "An opioid is active.", "evidence": []},
            {"code": "oral-baclofen-active", "severity": "info", "message": "Oral baclofen.", "evidence": []},
        ],
    )
    check["current_dose"].pop("source")  # the sandbox refuses references to nothing
    context = WriteContext(SANDBOX_ISS, "p1", PRESCRIBER, None, NOW)
    resources = build_submission(
        note_input(check_result=check), context=context, settings=WriteBackSettings()
    )
    with db.session() as session:
        submission = enqueue_submission(
            session,
            launch_id=str(uuid.uuid4()),
            iss=SANDBOX_ISS,
            patient_id="p1",
            resources=resources,
            capabilities=client.capabilities(),
            author_ref=PRESCRIBER,
            now=NOW,
        )
    report = run_once(db, lambda item: client, now=NOW, owner="test", submission_id=submission)
    assert report.failed == 0 and {r.status for r in rows_of(db, submission)} == {"confirmed"}
    return submission


def test_verify_then_undo_append_mitigations_to_the_detected_issues_in_the_sandbox_ehr(
    app: Flask, db: Database, sandbox: Sandbox
) -> None:
    with FhirClient(sandbox.base, lambda: sandbox.token, max_retries=1) as client:
        clinician = clinician_submission(db, client)
        issues = [r for r in rows_of(db, clinician) if r.resource_type == "DetectedIssue"]
        assert len(issues) == 2
        before = {i.id: sandbox.detected_issue(str(i.server_id)) for i in issues}
        record = make_change(db, verdict="warn", outbox_submission_id=clinician)
        capabilities = client.capabilities()

        verified = decision(app, record, "verify", 1, capabilities, comment="Pump log checked.")
        updates = [r for r in rows_of(db, verified.outbox_submission_id) if r.is_update]
        assert sorted(u.target_id or "" for u in updates) == sorted(i.id for i in issues)
        assert {u.status for u in updates} == {"pending"}
        later = NOW + timedelta(minutes=5)
        report = run_once(
            db, lambda item: client, now=later, owner="test", submission_id=verified.outbox_submission_id
        )
        assert (report.failed, report.held, report.retry_later) == (0, 0, 0)

        update_of = {u.target_id: u.id for u in updates}
        for issue in issues:
            stored = sandbox.detected_issue(str(issue.server_id))
            validate_resource(stored)
            assert stored["mitigation"][:-1] == before[issue.id].get("mitigation", [])  # the override stays
            pharmacist = stored["mitigation"][-1]
            assert pharmacist["action"]["coding"][0]["code"] == "pharmacist-verified"
            assert pharmacist["action"]["text"] == "Pharmacist verified the dose change: Pump log checked."
            assert pharmacist["author"] == {"reference": PHARMACIST}
            assert marker_of(pharmacist) == update_of[issue.id]
        overridden = sandbox.detected_issue(str(issues[0].server_id))
        assert [m["action"]["coding"][0]["code"] for m in overridden["mitigation"]] == [
            "override",
            "pharmacist-verified",
        ]
        with db.session() as session:
            assert submission_status(session, str(verified.outbox_submission_id)).state == "filed"

        undone = decision(app, record, "undo", 2, capabilities, reason="Verified the wrong change.")
        run_once(db, lambda item: client, now=later + timedelta(minutes=5), owner="test")
        for issue in issues:
            codes = [
                m["action"]["coding"][0]["code"]
                for m in sandbox.detected_issue(str(issue.server_id))["mitigation"]
            ]
            assert codes[-2:] == ["pharmacist-verified", "verification-withdrawn"]
        assert {r.status for r in rows_of(db, undone.outbox_submission_id)} == {"confirmed"}
