"""Queuing a submission: all or nothing, held types per CapabilityStatement, status in words, adoption."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from writeback_support import (
    BASE,
    EPIC_LIKE_CAPS,
    FULL_CAPS,
    NOW,
    capability_statement,
    note_input,
    write_context,
)

from plugin.db import Database
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.export import submission_bundle
from plugin.writeback.models import OutboxItem
from plugin.writeback.outbox import adopt_after_launch, enqueue_submission, retry, submission_status
from plugin.writeback.resources import WriteBackSettings, write_id_of
from plugin.writeback.submission import build_submission


def resources() -> list[dict]:
    """Return a full submission for Patient/123."""
    return build_submission(note_input(), context=write_context(), settings=WriteBackSettings())


def enqueue(db: Database, items: list[dict], caps: dict = FULL_CAPS, **kwargs: object) -> str:
    """Queue resources for launch-1 / Patient/123."""
    with db.session() as session:
        return enqueue_submission(
            session,
            launch_id="launch-1",
            iss=BASE,
            patient_id="123",
            resources=items,
            capabilities=caps,
            author_ref=f"{BASE}/Practitioner/9",
            now=NOW,
            **kwargs,
        )


def count(db: Database) -> int:
    """Return how many outbox rows exist."""
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxItem)) or 0)


def test_one_row_per_resource_with_the_write_id_as_row_id(db: Database) -> None:
    items = resources()
    submission = enqueue(db, items)
    with db.session() as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.seq)).all()
    assert [r.id for r in rows] == [write_id_of(r) for r in items]
    assert {r.submission_id for r in rows} == {submission}
    assert [r.status for r in rows] == ["pending"] * 6
    provenance = rows[-1]
    assert provenance.next_attempt_at is None and len(provenance.dependencies) == 5
    assert rows[0].next_attempt_at == NOW and rows[0].author_ref == "Practitioner/9"


def test_an_invalid_resource_refuses_the_whole_submission(db: Database) -> None:
    items = resources()
    del items[2]["status"]  # DetectedIssue.status is required
    with pytest.raises(WriteBackInputError, match="invalid DetectedIssue"):
        enqueue(db, items)
    assert count(db) == 0


def test_a_resource_about_another_patient_refuses_the_submission(db: Database) -> None:
    items = resources()
    items[1]["patient"] = {"reference": "Patient/999"}
    with pytest.raises(WriteBackInputError, match="another patient"):
        enqueue(db, items)
    assert count(db) == 0


def test_a_resource_without_the_write_identifier_is_refused(db: Database) -> None:
    items = resources()
    del items[0]["identifier"]
    with pytest.raises(WriteBackInputError, match="write identifier"):
        enqueue(db, items)


def test_queuing_the_same_resources_twice_returns_the_first_submission(db: Database) -> None:
    items = resources()
    assert enqueue(db, items) == enqueue(db, items)
    assert count(db) == 6


def test_types_the_ehr_cannot_create_are_held_and_references_to_them_dropped(db: Database) -> None:
    caps = capability_statement({"DocumentReference": {}, "Provenance": {}})  # Oracle-like
    submission = enqueue(db, resources(), caps)
    with db.session() as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.seq)).all()
        status = submission_status(session, submission)
    assert [r.status for r in rows] == ["pending", "held", "held", "held", "held", "pending"]
    provenance = rows[-1]
    assert provenance.dependencies == [rows[0].id]
    assert [t["reference"] for t in provenance.resource["target"]] == [f"urn:uuid:{rows[0].id}"]
    assert status.state == "pending"
    assert status.items[1].description == "kept in ITB Dose Check (this EHR cannot store DetectedIssue)"


def test_site_policy_can_keep_a_creatable_type_in_the_app(db: Database) -> None:
    submission = enqueue(db, resources(), FULL_CAPS, app_only_types={"QuestionnaireResponse"})
    with db.session() as session:
        statuses = {i.resource_type: i.status for i in submission_status(session, submission).items}
    assert statuses["QuestionnaireResponse"] == "held" and statuses["DocumentReference"] == "pending"


def test_a_submission_the_ehr_can_store_nothing_of_is_held(db: Database) -> None:
    submission = enqueue(db, resources(), capability_statement({}))
    with db.session() as session:
        status = submission_status(session, submission)
    assert status.state == "held" and status.message.startswith(
        "kept in ITB Dose Check (this EHR cannot store "
    )


def test_held_rows_can_be_exported_as_a_bundle(db: Database) -> None:
    submission = enqueue(db, resources(), EPIC_LIKE_CAPS)
    with db.session() as session:
        bundle = submission_bundle(session, submission)
    assert bundle["type"] == "collection" and len(bundle["entry"]) == 6
    assert bundle["entry"][1]["resource"]["resourceType"] == "DetectedIssue"


def test_retry_is_for_failed_rows_only(db: Database) -> None:
    enqueue(db, resources())
    with db.session() as session:
        row = session.scalars(select(OutboxItem)).first()
        assert row is not None
        with pytest.raises(WriteBackInputError, match="only failed"):
            retry(session, row.id)
        with pytest.raises(LookupError):
            retry(session, "nope")


def test_a_new_launch_of_the_same_user_and_patient_adopts_rows_waiting_for_a_launch(db: Database) -> None:
    enqueue(db, resources())
    with db.session() as session:
        for row in session.scalars(select(OutboxItem)):
            if row.next_attempt_at is not None:
                row.needs_launch, row.next_attempt_at = True, NOW + timedelta(minutes=15)
    later = NOW + timedelta(minutes=1)
    with db.session() as session:
        assert (
            adopt_after_launch(
                session,
                launch_id="launch-2",
                iss=BASE,
                patient_id="123",
                fhir_user="Practitioner/8",
                now=later,
            )
            == 0
        )  # another user
        adopted = adopt_after_launch(
            session,
            launch_id="launch-2",
            iss=BASE,
            patient_id="123",
            fhir_user=f"{BASE}/Practitioner/9",
            now=later,
        )
    assert adopted == 6
    with db.session() as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.seq)).all()
    assert {r.launch_id for r in rows} == {"launch-2"} and not any(r.needs_launch for r in rows)
    assert rows[0].next_attempt_at == later and rows[-1].next_attempt_at is None  # Provenance still waits


def test_status_of_an_unknown_submission_is_a_lookup_error(db: Database) -> None:
    with db.session() as session, pytest.raises(LookupError):
        submission_status(session, "nope")


def test_payloads_are_stored_as_json(db: Database) -> None:
    enqueue(db, resources())
    with db.session() as session:
        row = session.scalars(select(OutboxItem).order_by(OutboxItem.seq)).first()
        assert row is not None and json.loads(row.payload)["resourceType"] == "DocumentReference"
