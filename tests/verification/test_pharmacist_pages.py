"""The pharmacist's pages through the test client: queue, review, verify, refusals (audited), conflicts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from plugin.audit import log as audit_log
from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.launches.models import Launch
from plugin.web import pharmacist as pages
from plugin.web.csrf import csrf_token
from tests.verification.support import (
    PHARMACIST,
    audit_actions,
    audit_seq,
    make_change,
    make_launch,
    scenario_chart,
)
from tests.verification.test_verification_service import CAPS


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    return app.extensions["itb.db"]


@pytest.fixture(autouse=True)
def no_ehr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the EHR: the launch patient's chart is the p1 scenario; nothing is sent."""
    monkeypatch.setattr(
        pages,
        "fresh_chart",
        lambda launch, record: scenario_chart() if launch.patient_id == record.patient_id else None,
    )
    monkeypatch.setattr(pages, "ehr_capabilities", lambda launch: CAPS)
    monkeypatch.setattr(pages, "send_now", lambda submission_id: None)


def post(
    app: Flask,
    client: FlaskClient,
    launch: Launch,
    handle: str,
    change: DoseChangeRecord,
    action: str,
    **form: Any,
) -> Any:
    """Post a decision with the launch's CSRF token."""
    with app.test_request_context():
        token = csrf_token(launch.id)
    data = {"csrf_token": token, "version": str(change.version), **form}
    return client.post(f"/l/{handle}/pharmacist/changes/{change.id}/{action}", data=data)


def test_a_clinician_gets_403_and_the_refusal_is_audited(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    _, handle = make_launch(app, fhir_user="Practitioner/clinician-1", role="clinician")
    mark = audit_seq(db)
    response = client.get(f"/l/{handle}/pharmacist/")
    assert response.status_code == 403
    assert b"Only a pharmacist" in response.data
    assert [action for action, _ in audit_actions(db, mark)] == ["action.refused"]


def test_the_queue_lists_every_patient_most_severe_first(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    warn = make_change(db, patient_id="p2", verdict="warn")
    block = make_change(db, patient_id="p3", verdict="block")
    _, handle = make_launch(app)
    page = client.get(f"/l/{handle}/pharmacist/").get_data(as_text=True)
    assert re.findall(r'data-change-id="([^"]+)"', page) == [block.id, warn.id]


def test_a_change_of_this_chart_shows_the_rerun_the_differences_and_the_calculator(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    change = make_change(
        db,
        verdict="warn",
        findings=[{"code": "dose-above-typical", "severity": "warn", "message": "m", "evidence": []}],
    )
    _, handle = make_launch(app)
    page = client.get(f"/l/{handle}/pharmacist/changes/{change.id}").get_data(as_text=True)
    assert 'id="rerun-verdict"' in page
    assert 'data-kind="removed" data-code="dose-above-typical"' in page
    assert 'id="calculator"' in page and "18.333 ug/h" in page  # 440 ug/d
    assert "0.22 mL/d" in page  # 440 ug/d at 2000 ug/mL
    assert 'id="verify-form"' in page and "INTRATHECAL BACLOFEN DOSE CHANGE" in page


def test_a_change_of_another_chart_asks_to_open_that_chart(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    change = make_change(db, patient_id="p2")
    _, handle = make_launch(app, patient_id="p1")
    page = client.get(f"/l/{handle}/pharmacist/changes/{change.id}").get_data(as_text=True)
    assert "Open this patient's chart" in page and 'id="rerun-verdict"' not in page
    assert 'id="verify-form"' not in page and 'id="calculator"' in page


def test_verify_redirects_to_the_verified_change_and_audits(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    change = make_change(db)
    launch, handle = make_launch(app)
    mark = audit_seq(db)
    response = post(app, client, launch, handle, change, "verify", comment="fine")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-status="verified"' in page and 'id="undo-form"' in page
    [(action, detail)] = [(a, d) for a, d in audit_actions(db, mark) if a.startswith("verification.")]
    assert action == "verification.verify" and detail["status_after"] == "verified"


def test_a_decision_whose_audit_record_cannot_be_written_is_not_made(
    app: Flask, client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = make_change(db)
    launch, handle = make_launch(app)
    mark = audit_seq(db)
    append_entries = audit_log.append_entries

    def failing_for_decisions(connection: Any, entries: Any, **kwargs: Any) -> Any:
        if any(e.action.startswith("verification.") for e in entries):
            raise RuntimeError("the audit write failed")  # e.g. the process dies at this point
        return append_entries(connection, entries, **kwargs)

    monkeypatch.setattr(audit_log, "append_entries", failing_for_decisions)
    with pytest.raises(RuntimeError, match="audit write failed"):  # TESTING: the 500 reaches the test
        post(app, client, launch, handle, change, "verify", comment="fine")

    with db.session() as session:
        stored = session.get(DoseChangeRecord, change.id)
        assert stored is not None
        assert (stored.status, stored.version) == ("proposed", change.version), "no decision without a record"
    assert audit_actions(db, mark) == []
    monkeypatch.setattr(audit_log, "append_entries", append_entries)
    assert post(app, client, launch, handle, change, "verify", comment="fine").status_code == 303


def test_self_verification_is_refused_clearly_and_audited(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    change = make_change(db, prescriber=PHARMACIST)
    launch, handle = make_launch(app)
    assert 'id="own-change-notice"' in client.get(f"/l/{handle}/pharmacist/changes/{change.id}").get_data(
        as_text=True
    )
    mark = audit_seq(db)
    response = post(app, client, launch, handle, change, "verify")
    assert response.status_code == 403 and b"You prescribed this dose change" in response.data
    [(action, detail)] = audit_actions(db, mark)
    assert action == "action.refused" and detail["action"] == "verification.verify"


def test_the_second_pharmacist_gets_a_409_conflict_page(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    change = make_change(db)
    first, first_handle = make_launch(app)
    second, second_handle = make_launch(app, fhir_user="Practitioner/pharmacist-2")
    assert post(app, client, first, first_handle, change, "verify").status_code == 303
    response = post(app, client, second, second_handle, change, "reject", reason="no")
    assert response.status_code == 409
    assert b"already verified by Practitioner/pharmacist-1" in response.data


def test_a_post_without_the_csrf_token_is_refused(app: Flask, client: FlaskClient, db: Database) -> None:
    change = make_change(db)
    _, handle = make_launch(app)
    response = client.post(f"/l/{handle}/pharmacist/changes/{change.id}/verify", data={"version": "1"})
    assert response.status_code == 400
