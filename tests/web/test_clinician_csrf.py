"""Every clinician form refuses a POST without the launch's CSRF token (issue 6, §5 embedding).

Forms: the no-JavaScript check (``/check``), the note preview, the submit and the retry of a refused
write. The live check is a GET (``/api/check``) that changes nothing, so it needs no token. Each refusal is
checked against a control request with the right token, so a test fails if the token stops mattering.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.launches.models import Launch
from plugin.writeback.models import OutboxItem
from tests.verification.support import make_change
from tests.web.test_override_rules import (
    BLOCK_DOSE,
    COMMENT,
    NOTE_ANSWERS,
    REASON,
    clinician_launch,
    stand_in_for_the_ehr,
    token,
)

CSRF_REFUSAL = "did not come from ITB Dose Check"
# A complete, attested block override: with the right token every form below goes through.
FORM = {
    "dose_value": BLOCK_DOSE,
    "dose_mode": "ug/d",
    "override_reason": REASON,
    "override_comment": COMMENT,
    "attest": "yes",
    **NOTE_ANSWERS,
}
FORM_PATHS = ["check", "preview", "submit"]


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    return app.extensions["itb.db"]


@pytest.fixture
def launched(app: Flask, monkeypatch: pytest.MonkeyPatch) -> tuple[Launch, str]:
    """Return a clinician's launch on the 400 ug/d scenario chart, with no EHR behind it."""
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    return clinician_launch(app)


def bad_tokens(app: Flask) -> dict[str, dict[str, str]]:
    """Return the ways a token can be wrong: missing, empty, forged, another launch's."""
    other, _ = clinician_launch(app)
    return {
        "missing": {},
        "empty": {"csrf_token": ""},
        "forged": {"csrf_token": "0" * 64},
        "other-launch": {"csrf_token": token(app, other)},
    }


def dose_changes(db: Database) -> list[str]:
    """Return the ids of the recorded dose changes."""
    with db.session() as session:
        return list(session.scalars(select(DoseChangeRecord.id)).all())


@pytest.mark.parametrize("kind", ["missing", "empty", "forged", "other-launch"])
@pytest.mark.parametrize("path", FORM_PATHS)
def test_a_clinician_form_without_the_launch_token_is_refused(
    app: Flask, client: FlaskClient, db: Database, launched: tuple[Launch, str], path: str, kind: str
) -> None:
    _, handle = launched
    data = {**FORM, "submit_key": str(uuid.uuid4()), **bad_tokens(app)[kind]}
    response = client.post(f"/l/{handle}/{path}", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert CSRF_REFUSAL in page
    assert 'id="verdict"' not in page and 'id="note-text"' not in page  # nothing was checked or shown
    assert dose_changes(db) == []


@pytest.mark.parametrize(
    ("path", "status", "marker"),
    [("check", 200, 'data-verdict="block"'), ("preview", 200, 'id="note-text"'), ("submit", 303, "")],
)
def test_the_same_form_with_the_launch_token_goes_through(
    app: Flask,
    client: FlaskClient,
    db: Database,
    launched: tuple[Launch, str],
    path: str,
    status: int,
    marker: str,
) -> None:
    launch, handle = launched
    data = {**FORM, "submit_key": str(uuid.uuid4()), "csrf_token": token(app, launch)}
    response = client.post(f"/l/{handle}/{path}", data=data)
    assert response.status_code == status
    assert marker in response.get_data(as_text=True)
    assert len(dose_changes(db)) == (1 if path == "submit" else 0)


def test_the_token_may_come_in_the_header_instead_of_the_form(
    app: Flask, client: FlaskClient, launched: tuple[Launch, str]
) -> None:
    launch, handle = launched
    response = client.post(f"/l/{handle}/check", data=FORM, headers={"X-CSRF-Token": token(app, launch)})
    assert response.status_code == 200 and 'data-verdict="block"' in response.get_data(as_text=True)


def refused_change(db: Database, launch: Launch) -> tuple[str, str]:
    """Store a dose change of this launch whose note the EHR refused; return (change id, item id)."""
    record = make_change(db, note_server_id=None)
    with db.session() as session:
        session.get(DoseChangeRecord, record.id).launch_id = launch.id  # type: ignore[union-attr]
        item = session.scalars(
            select(OutboxItem).where(
                OutboxItem.submission_id == record.outbox_submission_id,
                OutboxItem.resource_type == "DocumentReference",
            )
        ).one()
        item.status = "failed"
        item.last_error = "HTTP 400: refused"
        return record.id, item.id


def item_status(db: Database, item_id: str) -> str:
    """Return an outbox row's status."""
    with db.session() as session:
        item = session.get(OutboxItem, item_id)
        assert item is not None
        return str(item.status)


@pytest.mark.parametrize("kind", ["missing", "empty", "forged", "other-launch"])
def test_a_retry_without_the_launch_token_is_refused_and_retries_nothing(
    app: Flask, client: FlaskClient, db: Database, launched: tuple[Launch, str], kind: str
) -> None:
    launch, handle = launched
    change_id, item_id = refused_change(db, launch)
    response = client.post(f"/l/{handle}/changes/{change_id}/retry", data=bad_tokens(app)[kind])
    assert response.status_code == 400 and CSRF_REFUSAL in response.get_data(as_text=True)
    assert item_status(db, item_id) == "failed"


def test_a_retry_with_the_launch_token_queues_the_refused_write_again(
    app: Flask, client: FlaskClient, db: Database, launched: tuple[Launch, str]
) -> None:
    launch, handle = launched
    change_id, item_id = refused_change(db, launch)
    response = client.post(f"/l/{handle}/changes/{change_id}/retry", data={"csrf_token": token(app, launch)})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/changes/{change_id}")
    assert item_status(db, item_id) == "pending"


def test_the_live_check_is_a_get_that_changes_nothing(
    client: FlaskClient, db: Database, launched: tuple[Launch, str]
) -> None:
    _, handle = launched
    assert client.post(f"/l/{handle}/api/check", data=FORM).status_code == 405
    response = client.get(f"/l/{handle}/api/check", query_string={"dose_value": BLOCK_DOSE})
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body["result"]["verdict"] == "block" and dose_changes(db) == []
