"""Each transition of the verification and each refusal, on rows built directly."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.launches.models import Launch
from plugin.verification.models import VerificationAction
from plugin.verification.queue import on_dose_change_submitted, pending_changes
from plugin.verification.service import Decision, VerificationConflict, VerificationRefused, decide
from plugin.writeback.models import OutboxItem
from plugin.writeback.note import NoteInput
from plugin.writeback.resources import WriteBackSettings
from tests.conftest import SANDBOX_ISS
from tests.verification.support import (
    NOW,
    OTHER_PHARMACIST,
    PRESCRIBER,
    SUMMARY,
    check_json,
    make_change,
    make_launch,
    stored_review,
)

CAPS: dict[str, Any] = {
    "rest": [
        {
            "mode": "server",
            "resource": [
                {"type": t, "interaction": [{"code": "create"}, {"code": "read"}, {"code": "search-type"}]}
                for t in ("DocumentReference", "Provenance")
            ],
        }
    ]
}


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    return app.extensions["itb.db"]


def run(
    app: Flask,
    launch: Launch,
    record: DoseChangeRecord,
    action: str,
    *,
    version: int | None = None,
    reason: str = "",
    comment: str = "",
    at_minutes: int = 5,
) -> VerificationAction:
    """Apply one decision in its own transaction."""
    with app.app_context(), app.extensions["itb.db"].session() as session:
        return decide(
            session,
            launch=launch,
            decision=Decision(record.id, version or current_version(app, record), action, reason, comment),
            review=stored_review(record),
            capabilities=CAPS,
            settings=WriteBackSettings(),
            now=NOW + timedelta(minutes=at_minutes),
        )


def current_version(app: Flask, record: DoseChangeRecord) -> int:
    """Return the change's version now."""
    return reload(app, record).version


def reload(app: Flask, record: DoseChangeRecord) -> DoseChangeRecord:
    """Re-read a change."""
    with app.extensions["itb.db"].session() as session:
        row = session.get(DoseChangeRecord, record.id)
        assert row is not None
        return row


def note_input(patient_id: str) -> NoteInput:
    """Return a minimal note input carrying the chart summary."""
    return NoteInput(
        check_result=check_json(patient_id=patient_id),
        chart_summary=SUMMARY,
        rationale="r",
        side_effects_reviewed="",
        education_given=True,
        rescue_plan="",
        monitoring_plan="",
        author_display=PRESCRIBER,
        patient_display=patient_id,
    )


def test_a_newer_submission_supersedes_older_proposals_of_the_same_patient_only(
    app: Flask, db: Database
) -> None:
    older = make_change(db, submitted_at=NOW - timedelta(hours=2))
    verified = make_change(db, submitted_at=NOW - timedelta(hours=3), status="verified")
    other_patient = make_change(db, patient_id="p2")
    other_ehr = make_change(db, iss="https://other.example/fhir")
    newer = make_change(db, submitted_at=NOW)
    with db.session() as session:
        count = on_dose_change_submitted(session, session.get(DoseChangeRecord, newer.id), note_input("p1"))
    assert count == 1
    assert reload(app, older).status == "superseded" and reload(app, older).version == 2
    assert [reload(app, r).status for r in (verified, other_patient, other_ehr, newer)] == [
        "verified",
        "proposed",
        "proposed",
        "proposed",
    ]


def test_the_queue_is_most_severe_first_then_oldest_and_only_proposed_at_this_ehr(db: Database) -> None:
    made = {
        "pass-old": make_change(db, verdict="pass", patient_id="a", submitted_at=NOW - timedelta(days=3)),
        "warn-new": make_change(db, verdict="warn", patient_id="b", submitted_at=NOW),
        "warn-old": make_change(db, verdict="warn", patient_id="c", submitted_at=NOW - timedelta(days=1)),
        "block": make_change(db, verdict="block", patient_id="d", submitted_at=NOW),
        "cannot": make_change(db, verdict="cannot-check", patient_id="e", submitted_at=NOW),
    }
    make_change(db, verdict="block", patient_id="f", status="verified")
    make_change(db, verdict="block", patient_id="g", iss="https://other.example/fhir")
    with db.session() as session:
        order = [r.id for r in pending_changes(session, SANDBOX_ISS)]
    names = {v.id: k for k, v in made.items()}
    assert [names[i] for i in order] == ["block", "cannot", "warn-old", "warn-new", "pass-old"]


def test_verify_moves_the_change_and_queues_a_note_appending_the_clinicians_with_a_verifier_provenance(
    app: Flask, db: Database
) -> None:
    record = make_change(db)
    launch, _ = make_launch(app)
    done = run(app, launch, record, "verify", comment="Checked against the pump log.")
    after = reload(app, record)
    assert (after.status, after.version) == ("verified", 2)
    assert (done.status_before, done.status_after, done.actor) == ("proposed", "verified", launch.fhir_user)
    with db.session() as session:
        rows = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.submission_id == done.outbox_submission_id)
            .order_by(OutboxItem.seq)
        ).all()
    document, provenance = (r.resource for r in rows[:2])
    [update] = rows[2:]  # the mitigation for the clinician's DetectedIssue; CAPS cannot update one: held
    assert (update.operation, update.resource_type, update.status) == ("update", "DetectedIssue", "held")
    assert document["relatesTo"][0]["code"] == "appends"
    assert document["relatesTo"][0]["target"]["reference"] == "DocumentReference/note-1"
    assert document["subject"]["reference"] == "Patient/p1"
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "verifier"
    assert provenance["agent"][0]["who"]["reference"] == launch.fhir_user
    assert "DocumentReference/note-1" in [t["reference"] for t in provenance["target"]]
    assert "Outcome: VERIFIED" in done.note_text and "Checked against the pump log." in done.note_text
    assert [m["action"] for m in done.mitigations] == ["pharmacist-verified"]
    assert done.mitigations[0]["detected_issue"] == "DetectedIssue/issue-1"


def test_a_note_not_yet_filed_is_appended_by_its_write_identifier(app: Flask, db: Database) -> None:
    record = make_change(db, note_server_id=None)
    launch, _ = make_launch(app)
    done = run(app, launch, record, "verify")
    with db.session() as session:
        document = (
            session.scalars(
                select(OutboxItem).where(
                    OutboxItem.submission_id == done.outbox_submission_id, OutboxItem.seq == 0
                )
            )
            .one()
            .resource
        )
    target = document["relatesTo"][0]["target"]
    assert "reference" not in target and target["identifier"]["value"]


def test_reject_needs_a_reason_and_records_it(app: Flask, db: Database) -> None:
    record = make_change(db)
    launch, _ = make_launch(app)
    with pytest.raises(VerificationRefused, match="reason") as refused:
        run(app, launch, record, "reject", reason="  ")
    assert refused.value.status == 422 and reload(app, record).status == "proposed"
    done = run(app, launch, record, "reject", reason="Increase too soon after the last one.")
    assert reload(app, record).status == "rejected"
    assert done.reason == "Increase too soon after the last one." and "REJECTED" in done.note_text


def test_a_nul_character_in_the_reason_or_comment_is_dropped(app: Flask, db: Database) -> None:
    # PostgreSQL cannot store NUL in a text column: the decision failed there with a server error.
    record = make_change(db)
    launch, _ = make_launch(app)
    done = run(app, launch, record, "reject", reason="Too soon\x00.", comment="See\x00 the pump log.")
    assert (done.reason, done.comment) == ("Too soon.", "See the pump log.")
    assert "Too soon." in done.note_text and "\x00" not in done.note_text
    assert reload(app, record).status == "rejected"


def test_the_prescriber_can_never_verify_their_own_change(app: Flask, db: Database) -> None:
    record = make_change(db, prescriber="https://ehr.example.org/fhir/Practitioner/pharmacist-1")
    launch, _ = make_launch(app)  # Practitioner/pharmacist-1, relative: the same person
    with pytest.raises(VerificationRefused, match="separation of duties"):
        run(app, launch, record, "verify")
    assert reload(app, record).status == "proposed" and reload(app, record).version == 1


def test_a_change_whose_prescriber_is_unknown_cannot_be_verified_independently(
    app: Flask, db: Database
) -> None:
    record = make_change(db, prescriber=None)  # filed from a launch without fhirUser
    launch, _ = make_launch(app)
    with pytest.raises(VerificationRefused, match="prescriber of this dose change is not known"):
        run(app, launch, record, "verify")
    assert reload(app, record).status == "proposed"


def test_a_pharmacist_launch_without_fhir_user_cannot_decide(app: Flask, db: Database) -> None:
    record = make_change(db)
    launch, _ = make_launch(app, fhir_user=None)
    with pytest.raises(VerificationRefused, match="did not say who you are"):
        run(app, launch, record, "verify")
    assert reload(app, record).status == "proposed"


def test_only_a_pharmacist_may_decide(app: Flask, db: Database) -> None:
    record = make_change(db)
    launch, _ = make_launch(app, fhir_user="Practitioner/clinician-2", role="clinician")
    with pytest.raises(VerificationRefused, match="Only a pharmacist"):
        run(app, launch, record, "verify")


def test_deciding_needs_a_launch_in_that_patients_chart(app: Flask, db: Database) -> None:
    record = make_change(db, patient_id="p2")
    launch, _ = make_launch(app, patient_id="p1")
    with pytest.raises(VerificationRefused, match="this patient's chart"):
        run(app, launch, record, "verify")
    assert reload(app, record).status == "proposed"


def test_a_stale_version_is_a_conflict_that_files_nothing(app: Flask, db: Database) -> None:
    record = make_change(db)
    first, _ = make_launch(app)
    second, _ = make_launch(app, fhir_user=OTHER_PHARMACIST)
    run(app, first, record, "verify", version=1)
    with pytest.raises(VerificationConflict, match="already verified by Practitioner/pharmacist-1"):
        run(app, second, record, "reject", version=1, reason="no")
    with db.session() as session:
        assert len(session.scalars(select(VerificationAction)).all()) == 1
        assert (
            len(session.scalars(select(OutboxItem).where(OutboxItem.resource_type == "Provenance")).all())
            == 1
        )


def test_a_superseded_change_cannot_be_verified(app: Flask, db: Database) -> None:
    record = make_change(db, status="superseded")
    launch, _ = make_launch(app)
    with pytest.raises(VerificationConflict, match="superseded"):
        run(app, launch, record, "verify", version=1)


def test_undo_only_by_the_same_pharmacist_with_a_reason(app: Flask, db: Database) -> None:
    record = make_change(db)
    pharmacist, _ = make_launch(app)
    colleague, _ = make_launch(app, fhir_user=OTHER_PHARMACIST)
    run(app, pharmacist, record, "verify")
    with pytest.raises(VerificationRefused, match="Only the pharmacist who decided"):
        run(app, colleague, record, "undo", reason="not mine")
    with pytest.raises(VerificationRefused, match="reason"):
        run(app, pharmacist, record, "undo")
    done = run(app, pharmacist, record, "undo", reason="Verified the wrong patient's change.")
    after = reload(app, record)
    assert (after.status, after.version) == ("proposed", 3)
    assert (done.status_before, done.status_after) == ("verified", "proposed")
    assert "VERIFICATION WITHDRAWN" in done.note_text
    assert [m["action"] for m in done.mitigations] == ["verification-withdrawn"]
    run(app, colleague, record, "verify")  # back in the queue: anyone but the prescriber may decide again
    assert reload(app, record).status == "verified"


def test_undo_when_a_newer_change_exists_leaves_it_superseded(app: Flask, db: Database) -> None:
    record = make_change(db, submitted_at=NOW - timedelta(hours=1))
    launch, _ = make_launch(app)
    run(app, launch, record, "reject", reason="too much")
    make_change(db, submitted_at=NOW)
    run(app, launch, record, "undo", reason="mistake")
    assert reload(app, record).status == "superseded"


def test_undo_of_a_proposed_change_is_a_conflict(app: Flask, db: Database) -> None:
    record = make_change(db)
    launch, _ = make_launch(app)
    with pytest.raises(VerificationConflict, match="no verification to undo"):
        run(app, launch, record, "undo", reason="r")


def test_the_rerun_is_stored_with_the_decision(app: Flask, db: Database) -> None:
    record = make_change(db)
    launch, _ = make_launch(app)
    rerun = check_json(
        "warn", findings=[{"code": "cns-depressant", "severity": "warn", "message": "m", "evidence": []}]
    )
    with app.app_context(), db.session() as session:
        done = decide(
            session,
            launch=launch,
            decision=Decision(record.id, 1, "verify"),
            review=stored_review(record, rerun),
            capabilities=CAPS,
            settings=WriteBackSettings(),
            now=NOW,
        )
    assert json.loads(done.rerun_json or "{}")["verdict"] == "warn"
    assert "verdict pass -> warn" in done.note_text and "new finding cns-depressant" in done.note_text
