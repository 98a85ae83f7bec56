"""run_once against a fake EHR over HTTP (``responses``) with the real FhirClient."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import responses
from sqlalchemy import select
from writeback_support import (
    BASE,
    EPIC_LIKE_CAPS,
    FULL_CAPS,
    NOW,
    FakeEhr,
    capability_statement,
    outcome,
    queue_note,
)

from plugin.db import Database
from plugin.writeback.models import OutboxItem
from plugin.writeback.outbox import retry, submission_status
from plugin.writeback.resources import WriteBackSettings
from plugin.writeback.sender import DEPENDENCY_RECHECK, run_once
from smart_launch.fhir_client import FhirClient

NOTE_ONLY = WriteBackSettings(detected_issues=False, questionnaire_response=False, provenance=False)


def rows(db: Database) -> list[OutboxItem]:
    """Return every outbox row in filing order."""
    with db.session() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.seq)))


def test_a_note_is_created_read_back_and_confirmed(db: Database, ehr: FakeEhr, client: FhirClient) -> None:
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    assert (report.sent, report.confirmed, report.failed) == (1, 1, 0)
    [row] = rows(db)
    assert row.status == "confirmed" and row.server_id and row.dropped == []
    assert len(ehr.posts) == 1
    with db.session() as session:
        status = submission_status(session, submission)
    assert (status.state, status.message) == ("filed", "filed")


def test_conditional_create_sends_if_none_exist_with_the_write_identifier(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [post] = [c for c in rsps.calls if c.request.method == "POST"]
    [row] = rows(db)
    assert post.request.headers["If-None-Exist"] == (
        f"identifier=http://itb-dose-check.org/fhir/identifier/write|{row.id}"
    )
    assert not [c for c in rsps.calls if "identifier=" in c.request.url]  # no search on the first try


def test_a_whole_submission_is_filed_in_one_run_with_provenance_pointing_at_server_ids(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    submission = queue_note(db, FULL_CAPS)
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    assert report.failed == 0
    assert {r.status for r in rows(db)} == {"confirmed"}
    [provenance] = ehr.of_type("Provenance")
    [document] = ehr.of_type("DocumentReference")
    targets = [t["reference"] for t in provenance["target"]]
    assert f"DocumentReference/{document['id']}" in targets
    assert not any(t.startswith("urn:uuid:") for t in targets)
    assert len(targets) == 1 + 3 + 1  # the note, three DetectedIssues, the QuestionnaireResponse
    with db.session() as session:
        assert submission_status(session, submission).state == "filed"


def test_a_server_error_is_retried_later_with_backoff_then_filed(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.post_faults.append((503, outcome("down for maintenance", "transient")))
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert (report.retry_later, row.status, row.attempts) == (1, "pending", 1)
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert "down for maintenance" in (row.last_error or "")
    with db.session() as session:
        assert submission_status(session, submission).message == "saved, will be filed when the EHR answers"
    assert run_once(db, lambda item: client, now=NOW + timedelta(seconds=10), owner="runner-1").claimed == 0
    run_once(db, lambda item: client, now=NOW + timedelta(seconds=31), owner="runner-1")
    [row] = rows(db)
    assert row.status == "confirmed" and len(ehr.of_type("DocumentReference")) == 1


def test_a_timeout_after_the_server_stored_the_note_makes_no_duplicate(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.post_faults.append("store-then-timeout")
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert row.status == "pending" and len(ehr.of_type("DocumentReference")) == 1
    run_once(db, lambda item: client, now=NOW + timedelta(minutes=5), owner="runner-1")
    [row] = rows(db)
    assert row.status == "confirmed"
    assert len(ehr.posts) == 1  # the retry found the note by its identifier and did not POST again
    assert any("identifier=" in c.request.url for c in rsps.calls if c.request.method == "GET")
    assert row.server_id == ehr.of_type("DocumentReference")[0]["id"]


def test_a_process_killed_mid_send_is_reclaimed_after_its_lease_and_looked_up_first(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.post_faults.append("store-then-timeout")
    with db.session() as session:  # what a killed runner leaves: sending, leased, one attempt
        row = session.scalars(select(OutboxItem)).one()
        row.status, row.attempts, row.lease_owner, row.lease_until = (
            "sending",
            1,
            "dead",
            NOW + timedelta(minutes=2),
        )
    ehr.post_faults.clear()
    assert run_once(db, lambda item: client, now=NOW, owner="runner-2").claimed == 0
    run_once(db, lambda item: client, now=NOW + timedelta(minutes=3), owner="runner-2")
    assert rows(db)[0].status == "confirmed" and len(ehr.posts) == 1


def test_a_400_fails_with_the_operation_outcome_text_and_is_not_retried(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.post_faults.append((400, outcome("DocumentReference.type: unknown LOINC code")))
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert (report.failed, row.status, row.next_attempt_at) == (1, "failed", None)
    assert "unknown LOINC code" in (row.last_error or "")
    assert run_once(db, lambda item: client, now=NOW + timedelta(days=1), owner="runner-1").claimed == 0
    with db.session() as session:
        status = submission_status(session, submission)
    assert status.state == "failed" and status.message.startswith("the EHR refused: ")
    assert "unknown LOINC code" in status.message
    with db.session() as session:  # the user fixed the cause and retries explicitly
        retry(session, row.id, now=NOW + timedelta(days=1))
    run_once(db, lambda item: client, now=NOW + timedelta(days=1), owner="runner-1")
    assert rows(db)[0].status == "confirmed"


def test_a_refusal_whose_text_holds_a_nul_character_fails_the_row_on_every_database(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    # PostgreSQL refuses NUL in text columns: recording the refusal raised, the round failed and the
    # row, still leased as sending, was posted to the EHR again after its lease.
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.post_faults.append((400, outcome("invalid character \u0000 in DocumentReference.description")))
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert (report.failed, row.status, row.lease_owner) == (1, "failed", None)
    assert row.last_error == "HTTP 400: invalid character in DocumentReference.description"
    later = run_once(db, lambda item: client, now=NOW + timedelta(hours=1), owner="runner-2")
    assert later.claimed == 0 and len(ehr.posts) == 1


def test_a_401_is_refreshed_inside_the_client_and_the_note_is_filed(db: Database, ehr: FakeEhr) -> None:
    ehr.expected_token = "AT-2"
    refreshed: list[str] = []

    def refresh() -> str:
        refreshed.append("yes")
        return "AT-2"

    client = FhirClient(BASE, lambda: "AT-2" if refreshed else "AT-1", on_unauthorized=refresh)
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    assert refreshed and rows(db)[0].status == "confirmed"
    client.close()


def test_an_expired_session_keeps_the_note_pending_without_burning_attempts(
    db: Database, ehr: FakeEhr
) -> None:
    ehr.expected_token = "never"
    client = FhirClient(BASE, lambda: "AT-1", on_unauthorized=lambda: None)
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert report.waiting_for_launch == 1
    assert (row.status, row.attempts, row.needs_launch) == ("pending", 0, True)
    assert row.last_error == "the EHR session expired; will be filed after the next launch"
    with db.session() as session:
        assert "will be filed after the next launch" in submission_status(session, submission).message
    client.close()


def test_a_client_factory_that_cannot_build_a_client_parks_the_row_for_the_next_launch(
    db: Database, ehr: FakeEhr
) -> None:
    def expired(item: OutboxItem) -> FhirClient:
        raise RuntimeError("launch expired")

    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    run_once(db, expired, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert (row.status, row.attempts, row.needs_launch) == ("pending", 0, True)
    assert not ehr.posts


def test_without_conditional_create_the_runner_searches_first_then_creates(
    db: Database, rsps: responses.RequestsMock, client: FhirClient
) -> None:
    caps = capability_statement({"DocumentReference": {"conditionalCreate": False}})
    ehr = FakeEhr(rsps, caps)
    queue_note(db, caps, settings=NOTE_ONLY)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    methods = [(c.request.method, c.request.url.split("?")[0].rsplit("/", 1)[-1]) for c in rsps.calls]
    search_index = next(i for i, c in enumerate(rsps.calls) if "identifier=" in c.request.url)
    post_index = next(i for i, (m, _) in enumerate(methods) if m == "POST")
    assert search_index < post_index
    assert "If-None-Exist" not in rsps.calls[post_index].request.headers
    assert rows(db)[0].status == "confirmed" and len(ehr.posts) == 1


def test_fields_the_ehr_drops_are_reported_after_read_back(
    db: Database, rsps: responses.RequestsMock, client: FhirClient
) -> None:
    ehr = FakeEhr(rsps, FULL_CAPS)
    ehr.drop["DocumentReference"] = ["context", "category"]
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert row.status == "confirmed"
    assert row.dropped == ["category", "context"]
    with db.session() as session:
        [item] = submission_status(session, submission).items
    assert "the EHR did not keep: category, context" in item.description


def test_a_read_back_outage_leaves_the_note_sent_and_reads_again_later(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    ehr.read_faults.extend([(503, outcome("busy"))] * 2)  # the client retries GET once (max_retries=1)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert row.status == "sent" and row.next_attempt_at is not None
    with db.session() as session:
        assert submission_status(session, submission).state == "filed"
    run_once(db, lambda item: client, now=NOW + timedelta(hours=1), owner="runner-1")
    assert rows(db)[0].status == "confirmed" and len(ehr.posts) == 1


def test_held_rows_are_never_sent_to_an_epic_like_ehr(
    db: Database, rsps: responses.RequestsMock, client: FhirClient
) -> None:
    ehr = FakeEhr(rsps, EPIC_LIKE_CAPS)
    submission = queue_note(db, EPIC_LIKE_CAPS)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    assert [p["resourceType"] for p in ehr.posts] == ["DocumentReference"]
    with db.session() as session:
        status = submission_status(session, submission)
    assert status.state == "filed"
    assert (
        "kept in ITB Dose Check (this EHR cannot store DetectedIssue, Provenance, QuestionnaireResponse)"
        in (status.message)
    )
    held = [i for i in status.items if i.status == "held"]
    assert {i.description for i in held} >= {"kept in ITB Dose Check (this EHR cannot store DetectedIssue)"}


def test_a_row_about_another_patient_is_never_sent(db: Database, ehr: FakeEhr, client: FhirClient) -> None:
    queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    with db.session() as session:  # e.g. a corrupted or tampered row
        row = session.scalars(select(OutboxItem)).one()
        payload = row.resource
        payload["subject"] = {"reference": "Patient/999"}
        row.payload = json.dumps(payload)
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [row] = rows(db)
    assert (report.failed, row.status) == (1, "failed")
    assert "another patient" in (row.last_error or "")
    assert ehr.posts == []


def test_two_runners_on_one_database_never_send_a_row_twice(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    for _ in range(6):
        queue_note(db, FULL_CAPS)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def runner(owner: str) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                run_once(db, lambda item: client, now=NOW, owner=owner, limit=7)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(f"runner-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # A row that found a dependency unfiled while the other runner was filing it may miss that runner's
    # wake-up and wait for its recheck (the runners' transactions really interleave on PostgreSQL).
    run_once(db, lambda item: client, now=NOW + DEPENDENCY_RECHECK, owner="runner-3")
    sent_ids = [
        (p.get("identifier") or [{}])[0].get("value")
        if isinstance(p.get("identifier"), list)
        else (p.get("identifier") or {}).get("value") or p["meta"]["tag"][0]["code"]
        for p in ehr.posts
    ]
    assert len(sent_ids) == len(set(sent_ids)) == 6 * 6
    assert {r.status for r in rows(db)} == {"confirmed"}


def test_a_refused_note_holds_back_its_provenance_until_a_retry_files_both(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    settings = WriteBackSettings(detected_issues=False, questionnaire_response=False)
    submission = queue_note(db, FULL_CAPS, settings=settings)
    ehr.post_faults.append((422, outcome("author is not the authorized provider")))
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    document, provenance = rows(db)
    assert (document.status, provenance.status, provenance.next_attempt_at) == ("failed", "pending", None)
    with db.session() as session:
        status = submission_status(session, submission)
    assert status.state == "failed"
    assert status.items[1].description == "saved, waits for the resources it refers to"
    with db.session() as session:
        retry(session, document.id, now=NOW)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    assert [r.status for r in rows(db)] == ["confirmed", "confirmed"]
    assert len(ehr.of_type("Provenance")) == 1


def test_an_oracle_like_ehr_gets_a_provenance_that_targets_only_the_note(
    db: Database, rsps: responses.RequestsMock, client: FhirClient
) -> None:
    caps = capability_statement({"DocumentReference": {}, "Provenance": {}})
    ehr = FakeEhr(rsps, caps)
    queue_note(db, caps)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    [provenance] = ehr.of_type("Provenance")
    [document] = ehr.of_type("DocumentReference")
    assert provenance["target"] == [{"reference": f"DocumentReference/{document['id']}"}]


def test_a_retry_on_a_server_that_cannot_search_by_identifier_asks_a_person_to_look(
    db: Database, rsps: responses.RequestsMock, client: FhirClient
) -> None:
    caps = capability_statement({"DocumentReference": {"conditionalCreate": False}})
    rsps.get(f"{BASE}/metadata", json=caps)
    rsps.get(f"{BASE}/DocumentReference", status=400, json=outcome("unknown search parameter identifier"))
    rsps.post(f"{BASE}/DocumentReference", body=requests_timeout())
    queue_note(db, caps, settings=NOTE_ONLY)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")  # search refused, create times out
    assert rows(db)[0].status == "pending"
    run_once(db, lambda item: client, now=NOW + timedelta(hours=1), owner="runner-1")
    [row] = rows(db)
    assert row.status == "failed" and "look in the chart" in (row.last_error or "")
    assert len([c for c in rsps.calls if c.request.method == "POST"]) == 1


def requests_timeout() -> Exception:
    """Return the exception ``responses`` raises for a POST that times out."""
    import requests

    return requests.exceptions.ReadTimeout("read timed out")


def test_a_row_whose_reference_is_not_filed_yet_looks_again_and_is_woken_when_it_is(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    """The lost wake-up of the load test: a Provenance claimed while another runner still holds the
    note must not be left waiting with no time to look again."""
    settings = WriteBackSettings(detected_issues=False, questionnaire_response=False)
    queue_note(db, FULL_CAPS, settings=settings)
    document, provenance = rows(db)
    with db.session() as session:  # another runner holds the note; the Provenance was armed meanwhile
        session.get(OutboxItem, document.id).lease_owner = "runner-elsewhere"
        session.get(OutboxItem, document.id).lease_until = NOW + timedelta(minutes=1)
        session.get(OutboxItem, provenance.id).next_attempt_at = NOW
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    _, provenance = rows(db)
    assert provenance.status == "pending"
    assert provenance.next_attempt_at is not None and provenance.next_attempt_at > NOW
    with db.session() as session:  # the other runner died; its lease runs out
        session.get(OutboxItem, document.id).lease_until = NOW - timedelta(seconds=1)
    run_once(db, lambda item: client, now=NOW, owner="runner-2")
    assert [r.status for r in rows(db)] == ["confirmed", "confirmed"]
    assert len(ehr.of_type("Provenance")) == 1


def test_run_once_for_one_submission_leaves_other_submissions_to_the_runner(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    settings = WriteBackSettings(detected_issues=False, questionnaire_response=False)
    mine = queue_note(db, FULL_CAPS, settings=settings)
    other = queue_note(db, FULL_CAPS, settings=settings)
    run_once(db, lambda item: client, now=NOW, owner="web-1", submission_id=mine)
    with db.session() as session:
        assert submission_status(session, mine).state == "filed"
        assert submission_status(session, other).state == "pending"
