"""The clinician's override rules through the test client (issues 5 and 6).

Warn, block and cannot-check need a coded reason (from config/templates/override-reasons.json) and a
comment before the note can be previewed or filed; block additionally needs the explicit attestation.
A warn override is documented as an override (never as an attestation) and every DetectedIssue it
overrides carries the override as its mitigation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import chart_from_bundle
from plugin.launches.models import Launch
from plugin.web import clinician as clinician_pages
from plugin.web import notes as note_pages
from plugin.web.csrf import csrf_token
from plugin.writeback.codes import MITIGATION_SYSTEM, OVERRIDE_REASON_SYSTEM, override_reasons
from plugin.writeback.models import OutboxItem
from tests.verification.support import PRESCRIBER, make_launch

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
# dose-ug-per-day: Patient/p1 on 400 ug/d. 300 ug/d is a 25 % decrease (warn: decrease-large),
# 600 ug/d a 50 % increase (block: increase-over-limit). no-itb-record: Patient/p1 with no ITB record
# (cannot-check: current-dose-unknown).
WARN_DOSE, BLOCK_DOSE, PASS_DOSE = "300", "600", "400"
REASON = "benefit-outweighs-risk"
REASON_DISPLAY = "Clinical benefit outweighs the risk for this patient"
COMMENT = "Spasms are controlled; slow taper agreed with the patient."
NOTE_ANSWERS = {
    "rationale": "Drowsy at the current dose.",
    "side_effects_reviewed": "Drowsiness.",
    "education_given": "yes",
    "rescue_plan": "Oral baclofen 10 mg if withdrawal signs.",
    "monitoring_plan": "Phone review in 48 hours.",
}
CAPS: dict[str, Any] = {
    "rest": [
        {
            "mode": "server",
            "resource": [
                {"type": t, "interaction": [{"code": "create"}, {"code": "read"}, {"code": "search-type"}]}
                for t in ("DocumentReference", "DetectedIssue", "QuestionnaireResponse", "Provenance")
            ],
        }
    ]
}


def scenario_chart(name: str) -> Chart:
    """Return a scenario's chart evaluated now (the pages check at the current time)."""
    bundle = json.loads((SCENARIOS / name).read_text())
    return chart_from_bundle(bundle, codes=load_code_sets(), now=datetime.now().astimezone())


class FakeClient:
    """Stands in for the launch's FHIR client: only the CapabilityStatement is asked for."""

    def capabilities(self) -> dict[str, Any]:
        """Return a server that creates every type the submission writes."""
        return CAPS


def stand_in_for_the_ehr(monkeypatch: pytest.MonkeyPatch, chart_name: str) -> None:
    """Serve a scenario chart to the clinician pages and send nothing to an EHR."""
    chart = scenario_chart(chart_name)

    def chart_for_launch(launch_id: str, patient_id: str, **_: Any) -> Chart:
        return chart

    monkeypatch.setattr(clinician_pages, "chart_for_launch", chart_for_launch)
    monkeypatch.setattr(note_pages, "chart_for_launch", chart_for_launch)
    monkeypatch.setattr(note_pages, "fhir_client_for_launch", lambda launch_id: FakeClient())
    monkeypatch.setattr(note_pages, "send_now", lambda submission_id: None)


def clinician_launch(app: Flask) -> tuple[Launch, str]:
    """Store a clinician's launch for Patient/p1 and return it with its handle."""
    return make_launch(app, patient_id="p1", fhir_user=PRESCRIBER, role="clinician")


def token(app: Flask, launch: Launch) -> str:
    """Return the launch's CSRF token, as its pages carry it."""
    with app.test_request_context():
        return csrf_token(launch.id)


Poster = Callable[..., Any]


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    return app.extensions["itb.db"]


@pytest.fixture
def post(app: Flask, client: FlaskClient) -> Poster:
    """Return a function posting a clinician form (with the launch's CSRF token) for a new launch."""
    launch, handle = clinician_launch(app)

    def send(path: str, dose: str, **form: str) -> Any:
        data = {"csrf_token": token(app, launch), "dose_value": dose, "dose_mode": "ug/d", **form}
        return client.post(f"/l/{handle}/{path}", data=data)

    return send


def page_of(response: Any) -> str:
    """Return a response's HTML."""
    return str(response.get_data(as_text=True))


def form_error(page: str) -> str:
    """Return the page's form error line (empty when there is none)."""
    match = re.search(r'<p class="form-error" role="alert" id="form-error">([^<]*)</p>', page)
    return match.group(1) if match else ""


def note_text(page: str) -> str:
    """Return the note shown by the preview page (unescaped enough for plain assertions)."""
    match = re.search(r'<pre class="note" id="note-text">(.*?)</pre>', page, re.S)
    assert match is not None, "no note on the page"
    return match.group(1)


def outbox_resources(db: Database, resource_type: str) -> list[dict[str, Any]]:
    """Return the queued resources of one type."""
    with db.session() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.resource_type == resource_type)).all()
        return [json.loads(row.payload) for row in rows]


def filed_change(db: Database) -> DoseChangeRecord:
    """Return the only dose change recorded."""
    with db.session() as session:
        [record] = session.scalars(select(DoseChangeRecord)).all()
        session.expunge(record)
        return record


# --- block -------------------------------------------------------------------------------------


def test_a_block_shows_the_reason_list_and_the_attestation(
    monkeypatch: pytest.MonkeyPatch, post: Poster
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    page = page_of(post("check", BLOCK_DOSE))
    assert 'data-verdict="block"' in page
    assert 'id="override_reason"' in page and 'id="attest"' in page
    assert f'<option value="{REASON}"' in page


@pytest.mark.parametrize("path", ["preview", "submit"])
def test_a_block_without_the_attestation_is_refused(
    monkeypatch: pytest.MonkeyPatch, post: Poster, db: Database, path: str
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    response = post(
        path, BLOCK_DOSE, override_reason=REASON, override_comment=COMMENT, submit_key="", **NOTE_ANSWERS
    )
    assert response.status_code == 422
    assert "explicit attestation" in form_error(page_of(response))
    assert outbox_resources(db, "DocumentReference") == []


def test_a_block_with_the_attestation_is_filed_as_attested(
    monkeypatch: pytest.MonkeyPatch, post: Poster, db: Database
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    response = submit(post, BLOCK_DOSE, attest="yes")
    assert response.status_code == 303
    note = filed_change(db).note_text
    assert "Attestation: I have reviewed the blocking findings" in note
    assert "NOT ATTESTED" not in note
    [issue] = [i for i in outbox_resources(db, "DetectedIssue") if i["code"]["text"] == "increase-over-limit"]
    assert mitigation_codes(issue) == {
        (MITIGATION_SYSTEM, "override-attested"),
        (OVERRIDE_REASON_SYSTEM, REASON),
    }
    assert filed_change(db).attested is True


# --- warn --------------------------------------------------------------------------------------


def test_a_warn_shows_the_reason_list_but_no_attestation(
    monkeypatch: pytest.MonkeyPatch, post: Poster
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    page = page_of(post("check", WARN_DOSE))
    assert 'data-verdict="warn"' in page
    assert 'id="override_reason"' in page and 'id="override_comment"' in page
    assert 'id="attest"' not in page


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ({"override_comment": COMMENT}, "coded override reason"),
        ({"override_reason": "not-a-listed-reason", "override_comment": COMMENT}, "coded override reason"),
        ({"override_reason": REASON}, "comment"),
        ({"override_reason": REASON, "override_comment": "   "}, "comment"),
    ],
)
@pytest.mark.parametrize("path", ["preview", "submit"])
def test_a_warn_without_a_listed_reason_and_a_comment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    post: Poster,
    db: Database,
    path: str,
    answers: dict[str, str],
    error: str,
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    response = post(path, WARN_DOSE, **answers, **NOTE_ANSWERS)
    assert response.status_code == 422
    assert error in form_error(page_of(response))
    assert 'id="note-text"' not in page_of(response)
    assert outbox_resources(db, "DocumentReference") == []


def submit(post: Poster, dose: str, **extra: str) -> Any:
    """Preview a proposal with a complete override, then file it with the preview's submit key."""
    answers = {"override_reason": REASON, "override_comment": COMMENT, **NOTE_ANSWERS, **extra}
    preview = post("preview", dose, **answers)
    assert preview.status_code == 200, form_error(page_of(preview))
    key = re.search(r'name="submit_key" value="([^"]+)"', page_of(preview))
    assert key is not None
    return post("submit", dose, submit_key=key.group(1), **answers)


def mitigation_codes(issue: dict[str, Any]) -> set[tuple[str, str]]:
    """Return (system, code) of every coding of the issue's mitigations."""
    return {
        (coding["system"], coding["code"])
        for mitigation in issue.get("mitigation", ())
        for coding in mitigation["action"]["coding"]
    }


def test_a_warn_override_previews_as_an_override_not_an_attestation(
    monkeypatch: pytest.MonkeyPatch, post: Poster
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    # a stray "attest" on a warn must not make the note claim an attestation either
    response = post(
        "preview", WARN_DOSE, override_reason=REASON, override_comment=COMMENT, attest="yes", **NOTE_ANSWERS
    )
    assert response.status_code == 200
    note = note_text(page_of(response))
    assert "OVERRIDE\nThe clinician went ahead despite the warn result above." in note
    assert f"Reason: {REASON_DISPLAY} [{REASON}]" in note
    assert f"Comment: {COMMENT}" in note
    assert f"Overridden by: {PRESCRIBER} on " in note
    assert "ATTEST" not in note.upper()


def test_a_warn_override_is_filed_with_its_reason_and_a_mitigation_on_each_warn_issue(
    monkeypatch: pytest.MonkeyPatch, post: Poster, db: Database
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    response = submit(post, WARN_DOSE, attest="yes")
    assert response.status_code == 303
    record = filed_change(db)
    assert record.verdict == "warn" and record.attested is False
    assert record.override_reason_code == REASON and record.override_comment == COMMENT
    assert f"Reason: {REASON_DISPLAY} [{REASON}]" in record.note_text
    assert "NOT ATTESTED" not in record.note_text and "Attestation" not in record.note_text
    issues = {i["code"]["text"]: i for i in outbox_resources(db, "DetectedIssue")}
    warn = issues["decrease-large"]
    assert mitigation_codes(warn) == {(MITIGATION_SYSTEM, "override"), (OVERRIDE_REASON_SYSTEM, REASON)}
    [mitigation] = warn["mitigation"]
    assert COMMENT in mitigation["action"]["text"] and "attested" not in mitigation["action"]["text"]
    assert mitigation["author"] == {"reference": PRESCRIBER}
    info = [i for i in issues.values() if i["severity"] == "low"]
    assert info and all("mitigation" not in i for i in info)  # info findings are not overridden


# --- cannot-check ------------------------------------------------------------------------------


def test_a_cannot_check_shows_the_reason_list_without_an_attestation(
    monkeypatch: pytest.MonkeyPatch, post: Poster
) -> None:
    stand_in_for_the_ehr(monkeypatch, "no-itb-record.json")
    page = page_of(post("check", PASS_DOSE))
    assert 'data-verdict="cannot-check"' in page
    options = re.findall(
        r'<option value="([^"]+)"', page.split('id="override_reason"', 1)[1].split("</select>")[0]
    )
    assert options == [r.code for r in override_reasons()]
    assert 'id="override_comment"' in page and 'id="attest"' not in page


def test_a_cannot_check_without_a_reason_is_refused(monkeypatch: pytest.MonkeyPatch, post: Poster) -> None:
    stand_in_for_the_ehr(monkeypatch, "no-itb-record.json")
    response = post("preview", PASS_DOSE, override_comment=COMMENT, **NOTE_ANSWERS)
    assert response.status_code == 422
    page = page_of(response)
    assert "coded override reason" in form_error(page)
    assert 'id="override_reason"' in page  # the list the error points to is on the page


def test_a_cannot_check_with_a_reason_is_previewable_and_filed(
    monkeypatch: pytest.MonkeyPatch, post: Poster, db: Database
) -> None:
    stand_in_for_the_ehr(monkeypatch, "no-itb-record.json")
    preview = post("preview", PASS_DOSE, override_reason=REASON, override_comment=COMMENT, **NOTE_ANSWERS)
    assert preview.status_code == 200
    note = note_text(page_of(preview))
    assert "Verdict: CANNOT-CHECK" in note
    assert "The check could not be completed" in note and f"[{REASON}]" in note
    response = submit(post, PASS_DOSE)
    assert response.status_code == 303
    record = filed_change(db)
    assert record.verdict == "cannot-check" and record.override_reason_code == REASON
    [issue] = [
        i for i in outbox_resources(db, "DetectedIssue") if i["code"]["text"] == "current-dose-unknown"
    ]
    assert (MITIGATION_SYSTEM, "override") in mitigation_codes(issue)


# --- the note itself refuses an incomplete override, whoever builds it ----------------------------


@pytest.mark.parametrize("verdict", ["warn", "block", "cannot-check"])
def test_the_note_refuses_an_override_without_a_comment(verdict: str) -> None:
    from plugin.writeback.errors import WriteBackInputError
    from plugin.writeback.note import NoteInput, render_note

    note = NoteInput(
        check_result={"verdict": verdict, "patient": "Patient/p1", "findings": []},
        chart_summary={},
        rationale="r",
        side_effects_reviewed="",
        education_given=True,
        rescue_plan="",
        monitoring_plan="",
        author_display=PRESCRIBER,
        patient_display="p1",
        override_reason_code=REASON,
        override_reason_display=REASON_DISPLAY,
        override_comment="  ",
        attested=True,
    )
    with pytest.raises(WriteBackInputError, match="override comment"):
        render_note(note)
