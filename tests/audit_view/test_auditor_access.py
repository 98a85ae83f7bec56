"""Only auditors see the audit log; everyone else gets a 403 page, and the refusal is itself audited."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from plugin.db import Database
from tests.audit_view.support import AUDITOR, CLINICIAN, PHARMACIST, add, records

PAGES = ("/audit/", "/audit/patients/p1", "/audit/export/csv", "/audit/export/fhir?patient=p1")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("who", "user"), [("clinician", CLINICIAN), ("pharmacist", PHARMACIST)])
def test_clinicians_and_pharmacists_are_refused_and_audited(
    client: FlaskClient, db: Database, request: pytest.FixtureRequest, who: str, user: str, page: str
) -> None:
    add(db, 0, "dose-change.propose", verdict="pass")
    handle = request.getfixturevalue(who)
    response = client.get(f"/l/{handle}{page}")
    assert response.status_code == 403
    assert "auditors only" in response.get_data(as_text=True)
    assert "dose-change.propose" not in response.get_data(as_text=True)
    refused = records(db, "action.refused")
    assert len(refused) == 1
    assert refused[0]["actor"] == user and refused[0]["actor_role"] == who
    assert refused[0]["detail"]["reason"] == "the audit log is open to auditors only"
    assert not records(db, "audit.view") and not records(db, "audit.export")


def test_an_auditor_gets_in_and_each_view_is_recorded(
    client: FlaskClient, db: Database, auditor: str
) -> None:
    assert client.get(f"/l/{auditor}/audit/").status_code == 200
    assert client.get(f"/l/{auditor}/audit/patients/p1").status_code == 200
    views = records(db, "audit.view")
    assert [(v["actor"], v["actor_role"], v["detail"]["view"]) for v in views] == [
        (AUDITOR, "auditor", "search"),
        (AUDITOR, "auditor", "timeline"),
    ]
    assert views[1]["patient_id"] == "p1"  # the patient looked at
    assert not records(db, "action.refused")


def test_an_unknown_handle_is_not_a_launch(client: FlaskClient, db: Database) -> None:
    response = client.get("/l/not-a-handle/audit/")
    assert response.status_code == 401
    assert records(db) == []


def test_the_page_is_accessible_by_structure(client: FlaskClient, db: Database, auditor: str) -> None:
    add(db, 0, "check.run", verdict="warn")
    html = client.get(f"/l/{auditor}/audit/").get_data(as_text=True)
    for field in ("patient", "actor", "date_from", "date_to", "verdict", "overridden"):
        assert f'<label for="{field}"' in html and f'id="{field}"' in html
    assert "<caption>" in html and '<th scope="col">Action</th>' in html
    assert "<legend>Find records</legend>" in html
    assert 'role="status"' in html  # the chain badge is announced
