"""A patient's dose-change timeline: who proposed, the check, any override, and who verified."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from plugin.db import Database
from tests.audit_view.support import CLINICIAN, PHARMACIST, add_dose_change


def sections(html: str) -> list[str]:
    """Return the HTML of each dose-change section, in page order."""
    return re.findall(r'<section class="panel dose-change".*?</section>', html, flags=re.S)


def test_the_timeline_tells_each_change_newest_first(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(
        db,
        0,
        "c-old",
        before=400,
        after=480,
        verdict="warn",
        override="clinical-judgement",
        verified_by=PHARMACIST,
    )
    add_dose_change(db, 120, "c-new", before=480, after=500, verdict="pass")
    add_dose_change(db, 60, "c-other", patient_id="p2")
    response = client.get(f"/l/{auditor}/audit/patients/p1")
    assert response.status_code == 200
    newest, oldest = sections(response.get_data(as_text=True))
    assert 'data-change="c-new"' in newest and 'data-change="c-old"' in oldest
    assert "400 ug/d &rarr; 480 ug/d" in oldest
    assert f'<dd class="proposed-by">{CLINICIAN} (clinician)</dd>' in oldest
    assert "<code>dose-above-typical</code>" in oldest
    assert "<code>clinical-judgement</code>: spasms wake the patient" in oldest
    assert re.search(
        rf'class="verified-by">Verified by {PHARMACIST} \(pharmacist\) at 2026-11-20 10:30', oldest
    )
    assert 'class="verified-by">not verified<' in newest
    events = re.findall(r'<tr data-action="([^"]+)"', oldest)
    assert events == [
        "check.run",
        "dose-change.propose",
        "dose-change.override",
        "writeback.filed",
        "verification.verify",
    ]
    assert "c-other" not in response.get_data(as_text=True)


def test_a_patient_without_changes_says_so(client: FlaskClient, db: Database, auditor: str) -> None:
    html = client.get(f"/l/{auditor}/audit/patients/nobody").get_data(as_text=True)
    assert 'id="no-changes"' in html


def test_search_rows_link_to_the_patients_timeline(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(db, 0, "c1")
    html = client.get(f"/l/{auditor}/audit/").get_data(as_text=True)
    assert f'href="/l/{auditor}/audit/patients/p1"' in html
