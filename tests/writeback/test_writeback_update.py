"""Update rows: append a mitigation to a DetectedIssue filed earlier (GET, then PUT with If-Match)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
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
from plugin.writeback.codes import MITIGATION_SYSTEM
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.models import OutboxItem
from plugin.writeback.outbox import enqueue_submission, submission_status
from plugin.writeback.resources import new_write_id
from plugin.writeback.sender import DEPENDENCY_RECHECK, run_once
from plugin.writeback.update import Append, dropped_on_update, find_appended, marked, marker_of
from smart_launch.fhir_client import FhirClient

WRITTEN = ("DocumentReference", "DetectedIssue", "Provenance", "QuestionnaireResponse")
# FULL_CAPS plus the update interaction for DetectedIssue.
UPDATE_CAPS = capability_statement(
    {t: {"conditionalCreate": True, "update": t == "DetectedIssue"} for t in WRITTEN}
)
LATER = NOW + timedelta(hours=1)
PHARMACIST = f"{BASE}/Practitioner/ph-1"


def mitigation(code: str = "pharmacist-verified") -> dict[str, Any]:
    """Return a pharmacist's mitigation as the verification builds one."""
    return {
        "action": {
            "coding": [{"system": MITIGATION_SYSTEM, "code": code}],
            "text": "Pharmacist verified the dose change",
        },
        "date": LATER.isoformat(),
        "author": {"reference": "Practitioner/ph-1"},
    }


def row(db: Database, item_id: str) -> OutboxItem:
    """Return one outbox row as stored now."""
    with db.session() as session:
        found = session.get(OutboxItem, item_id)
        assert found is not None
        return found


def first_issue(db: Database, submission_id: str) -> OutboxItem:
    """Return the first DetectedIssue row of a clinician's submission (a warn, overridden)."""
    with db.session() as session:
        found = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.submission_id == submission_id, OutboxItem.resource_type == "DetectedIssue")
            .order_by(OutboxItem.seq)
        ).first()
    assert found is not None
    return found


def queue_update(
    db: Database, target_id: str, caps: dict[str, Any] = UPDATE_CAPS, *, value: dict[str, Any] | None = None
) -> tuple[str, str]:
    """Queue one update appending a mitigation to the target row's resource; return (submission, row id)."""
    write_id = new_write_id()
    with db.session() as session:
        submission = enqueue_submission(
            session,
            launch_id="launch-2",
            iss=BASE,
            patient_id="123",
            resources=[],
            capabilities=caps,
            author_ref=PHARMACIST,
            updates=[Append(write_id, target_id, "mitigation", value or mitigation())],
            now=NOW,
        )
    return submission, write_id


def filed_issue(db: Database, ehr: FakeEhr, client: FhirClient) -> tuple[OutboxItem, dict[str, Any]]:
    """File a clinician's submission; return its first DetectedIssue row and the EHR's copy of it."""
    ehr.capabilities = UPDATE_CAPS
    submission = queue_note(db, UPDATE_CAPS)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    target = first_issue(db, submission)
    assert target.status == "confirmed" and target.server_id
    return target, ehr.store[("DetectedIssue", target.server_id)]


def ours(resource: dict[str, Any], write_id: str) -> list[dict[str, Any]]:
    """Return the mitigations carrying this update's marker."""
    return [m for m in resource.get("mitigation", []) if marker_of(m) == write_id]


def fhir_calls(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    """Return (method, path after the base) of every call but /metadata."""
    calls = [(c.request.method, urlsplit(c.request.url).path) for c in rsps.calls]
    base = urlsplit(BASE).path
    return [(method, path[len(base) :]) for method, path in calls if not path.endswith("/metadata")]


def test_a_filed_detected_issue_is_read_and_put_back_with_the_mitigation_appended(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    target, before = filed_issue(db, ehr, client)
    submission, update_id = queue_update(db, target.id)
    rsps.calls.reset()  # type: ignore[no-untyped-call]
    report = run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert (report.sent, report.confirmed, report.held, report.failed) == (1, 1, 0, 0)
    path = f"/DetectedIssue/{target.server_id}"
    assert fhir_calls(rsps) == [("GET", path), ("PUT", path), ("GET", path)]  # read, update, read back
    [put] = [c for c in rsps.calls if c.request.method == "PUT"]
    assert put.request.headers["If-Match"] == 'W/"1"'
    stored = ehr.store[("DetectedIssue", target.server_id)]
    assert stored["meta"]["versionId"] == "2"
    assert stored["mitigation"][:-1] == before["mitigation"]  # the clinician's override is kept
    [appended] = ours(stored, update_id)
    assert appended is stored["mitigation"][-1]
    assert appended["action"]["coding"] == [{"system": MITIGATION_SYSTEM, "code": "pharmacist-verified"}]
    assert appended["author"] == {"reference": "Practitioner/ph-1"}
    assert {k: v for k, v in stored.items() if k not in ("meta", "mitigation")} == {
        k: v for k, v in before.items() if k not in ("meta", "mitigation")
    }
    done = row(db, update_id)
    assert (done.status, done.server_id, done.dropped, done.attempts) == (
        "confirmed",
        target.server_id,
        [],
        1,
    )
    with db.session() as session:
        status = submission_status(session, submission)
    assert status.state == "filed"
    assert status.items[0].description == f"mitigation added to DetectedIssue/{target.server_id}"


@pytest.mark.parametrize("client_retries", [0, 1])
def test_a_put_whose_answer_was_lost_does_not_append_the_mitigation_twice(
    db: Database, ehr: FakeEhr, client: FhirClient, client_retries: int
) -> None:
    target, before = filed_issue(db, ehr, client)
    _, update_id = queue_update(db, target.id)
    ehr.put_faults.append("store-then-timeout")  # the EHR stores the PUT, the answer never arrives
    with FhirClient(BASE, lambda: "AT-1", max_retries=client_retries) as flaky:
        run_once(db, lambda item: flaky, now=LATER, owner="runner-1")
        run_once(db, lambda item: flaky, now=LATER + timedelta(minutes=5), owner="runner-1")
    stored = ehr.store[("DetectedIssue", target.server_id)]
    assert len(ours(stored, update_id)) == 1
    assert len(stored["mitigation"]) == len(before["mitigation"]) + 1
    assert row(db, update_id).status == "confirmed"
    # Without client retries the outbox retried later and found it (no PUT); with one, the client's own
    # retry of the PUT met a 412 (the stored version moved on), and the re-read found it.
    assert len(ehr.puts) == 1 + client_retries


def test_a_version_conflict_reads_again_and_puts_on_the_new_version(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    target, before = filed_issue(db, ehr, client)
    _, update_id = queue_update(db, target.id)
    ehr.put_faults.append("concurrent-change")  # another system adds a mitigation just before our PUT
    rsps.calls.reset()  # type: ignore[no-untyped-call]
    report = run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert (report.confirmed, report.retry_later, report.failed) == (1, 0, 0)
    if_matches = [c.request.headers["If-Match"] for c in rsps.calls if c.request.method == "PUT"]
    assert if_matches == ['W/"1"', 'W/"2"']
    stored = ehr.store[("DetectedIssue", target.server_id)]
    assert stored["meta"]["versionId"] == "3"
    texts = [m["action"].get("text") for m in stored["mitigation"]]
    assert texts[: len(before["mitigation"])] == [m["action"]["text"] for m in before["mitigation"]]
    assert texts[-2:] == ["Other system", "Pharmacist verified the dose change"]  # theirs kept, ours added
    assert len(ours(stored, update_id)) == 1


def test_conflicts_that_keep_coming_are_retried_later_with_backoff(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    target, before = filed_issue(db, ehr, client)
    _, update_id = queue_update(db, target.id)
    ehr.put_faults.extend([(412, outcome("version conflict", "conflict"))] * 3)
    report = run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert (report.retry_later, report.failed, len(ehr.puts)) == (1, 0, 3)
    waiting = row(db, update_id)
    assert (waiting.status, waiting.next_attempt_at) == ("pending", LATER + timedelta(seconds=30))
    assert "kept changing" in (waiting.last_error or "")
    assert ehr.store[("DetectedIssue", target.server_id)]["mitigation"] == before["mitigation"]
    run_once(db, lambda item: client, now=LATER + timedelta(minutes=1), owner="runner-1")
    assert row(db, update_id).status == "confirmed"
    assert len(ours(ehr.store[("DetectedIssue", target.server_id)], update_id)) == 1


def test_an_update_of_a_detected_issue_kept_in_the_app_is_kept_in_the_app_too(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    ehr.capabilities = EPIC_LIKE_CAPS  # no DetectedIssue at all
    target = first_issue(db, queue_note(db, EPIC_LIKE_CAPS))
    assert target.status == "held"
    submission, update_id = queue_update(db, target.id)
    assert row(db, update_id).status == "held"
    run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert not [c for c in rsps.calls if c.request.method == "PUT"]
    with db.session() as session:
        status = submission_status(session, submission)
    assert (status.state, status.message) == (
        "held",
        "kept in ITB Dose Check (this EHR cannot update DetectedIssue)",
    )


def test_a_target_held_at_its_first_send_wakes_its_update_which_is_held_too(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    # Both were queued believing the EHR could store and update DetectedIssues; it cannot.
    target = first_issue(db, queue_note(db, UPDATE_CAPS))
    _, update_id = queue_update(db, target.id)
    ehr.capabilities = EPIC_LIKE_CAPS
    run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert row(db, target.id).status == "held"
    assert row(db, update_id).status == "held"
    assert not [c for c in rsps.calls if c.request.method == "PUT"]


@pytest.mark.parametrize("queued_with", ["FULL_CAPS", "UPDATE_CAPS"])
def test_an_ehr_that_cannot_update_detected_issues_holds_the_update(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock, queued_with: str
) -> None:
    ehr.capabilities = FULL_CAPS  # create, read, search; no update
    submission = queue_note(db, FULL_CAPS)
    run_once(db, lambda item: client, now=NOW, owner="runner-1")
    target = first_issue(db, submission)
    # Queued with the EHR's statement it is held at once; queued believing otherwise, at its send.
    _, update_id = queue_update(db, target.id, FULL_CAPS if queued_with == "FULL_CAPS" else UPDATE_CAPS)
    rsps.calls.reset()  # type: ignore[no-untyped-call]
    report = run_once(db, lambda item: client, now=LATER, owner="runner-1")
    assert row(db, update_id).status == "held"
    assert report.held == (0 if queued_with == "FULL_CAPS" else 1)
    assert fhir_calls(rsps) == []  # neither read nor PUT
    assert not ours(ehr.store[("DetectedIssue", str(target.server_id))], update_id)


def test_an_update_waits_without_a_request_until_its_target_is_filed(
    db: Database, ehr: FakeEhr, client: FhirClient, rsps: responses.RequestsMock
) -> None:
    ehr.capabilities = UPDATE_CAPS
    clinician = queue_note(db, UPDATE_CAPS)  # not sent yet
    target = first_issue(db, clinician)
    submission, update_id = queue_update(db, target.id)
    report = run_once(db, lambda item: client, now=NOW, owner="runner-1", submission_id=submission)
    assert report.claimed == 1 and len(rsps.calls) == 0
    waiting = row(db, update_id)
    assert (waiting.status, waiting.attempts) == ("pending", 0)
    assert waiting.next_attempt_at == NOW + DEPENDENCY_RECHECK
    with db.session() as session:
        assert submission_status(session, submission).state == "pending"
    # Filing the clinician's DetectedIssue wakes the update at once, in the same run.
    run_once(db, lambda item: client, now=NOW + timedelta(seconds=1), owner="runner-1")
    assert row(db, update_id).status == "confirmed"
    assert len(ours(ehr.store[("DetectedIssue", str(row(db, target.id).server_id))], update_id)) == 1


def test_an_invalid_mitigation_or_a_target_of_another_patient_queues_nothing(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    target = first_issue(db, queue_note(db, UPDATE_CAPS))
    with pytest.raises(WriteBackInputError, match="invalid DetectedIssue"):
        queue_update(db, target.id, value={"date": LATER.isoformat()})  # mitigation.action is 1..1
    with pytest.raises(WriteBackInputError, match="another patient"), db.session() as session:
        enqueue_submission(
            session,
            launch_id="launch-3",
            iss=BASE,
            patient_id="456",
            resources=[],
            capabilities=UPDATE_CAPS,
            updates=[Append(new_write_id(), target.id, "mitigation", mitigation())],
            now=NOW,
        )
    with db.session() as session:
        assert not session.scalars(select(OutboxItem).where(OutboxItem.operation == "update")).all()


def test_a_mitigation_whose_marker_the_ehr_dropped_is_recognised_by_code_date_and_author() -> None:
    value = marked(mitigation(), "w-1")
    kept = {k: v for k, v in value.items() if k != "extension"}
    returned = {
        "mitigation": [
            {**kept, "date": LATER.strftime("%Y-%m-%dT%H:%M:%SZ"), "author": {"reference": PHARMACIST}}
        ]
    }
    assert find_appended(returned, "mitigation", value) is not None
    assert dropped_on_update("mitigation", value, returned) == ["mitigation.extension"]
    assert dropped_on_update("mitigation", value, {"mitigation": []}) == ["mitigation"]
    other_update = {"mitigation": [marked(mitigation(), "w-2")]}
    assert find_appended(other_update, "mitigation", value) is None
    later = {"mitigation": [{**kept, "date": (LATER + timedelta(minutes=1)).isoformat()}]}
    assert find_appended(later, "mitigation", value) is None
