"""The auditor's search: filters by patient, user, dates, verdict and override; newest first; paged."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from plugin.db import Database
from plugin.web.auditor_query import PAGE_SIZE
from tests.audit.helpers import tamper
from tests.audit_view.support import PHARMACIST, add, add_dose_change


def seqs(html: str) -> list[int]:
    """Return the seq of every result row, in page order."""
    return [int(seq) for seq in re.findall(r'<tr data-seq="(\d+)"', html)]


def actions(html: str) -> list[str]:
    """Return the action of every result row, in page order."""
    return re.findall(r'<tr data-seq="\d+" data-action="([^"]+)"', html)


def search(client: FlaskClient, handle: str, **args: str) -> str:
    """Return the search page's HTML for ``args`` (asserting 200)."""
    response = client.get(f"/l/{handle}/audit/", query_string=args)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True)


def test_results_are_newest_first(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(db, 0, "c1")
    html = search(client, auditor)
    assert seqs(html) == [4, 3, 2, 1]
    assert actions(html) == ["audit.view", "writeback.filed", "dose-change.propose", "check.run"]


def test_filter_by_patient_and_user(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(db, 0, "c1", patient_id="p1", verified_by=PHARMACIST)
    add_dose_change(db, 60, "c2", patient_id="p2")
    assert set(actions(search(client, auditor, patient="p2"))) <= {
        "check.run",
        "dose-change.propose",
        "writeback.filed",
        "audit.view",
    }
    html = search(client, auditor, patient="p1", actor=PHARMACIST)
    assert actions(html) == ["verification.verify"]
    assert "1 matching record," in html


def test_filter_by_date_range(client: FlaskClient, db: Database, auditor: str) -> None:
    add(db, 0, "check.run", verdict="pass")  # 2026-11-20
    add(db, 60 * 24, "check.run", verdict="warn")  # 2026-11-21
    add(db, 60 * 48, "check.run", verdict="block")  # 2026-11-22
    html = search(client, auditor, date_from="2026-11-21", date_to="2026-11-21")
    assert seqs(html) == [2]
    assert seqs(search(client, auditor, date_to="2026-11-20")) == [1]


def test_filter_by_verdict_and_override(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(db, 0, "c1", verdict="warn", override="clinical-judgement")
    add_dose_change(db, 60, "c2", verdict="pass")
    assert set(actions(search(client, auditor, verdict="warn"))) == {
        "check.run",
        "dose-change.propose",
        "dose-change.override",
    }
    html = search(client, auditor, overridden="yes")
    assert actions(html) == ["dose-change.override"]
    assert "clinical-judgement" in html and "spasms wake the patient" in html
    assert "dose-change.override" not in actions(search(client, auditor, overridden="no"))


def test_results_are_paged(client: FlaskClient, db: Database, auditor: str) -> None:
    for minute in range(PAGE_SIZE + 5):
        add(db, minute, "check.run", verdict="pass")
    first = search(client, auditor, verdict="pass")
    assert len(seqs(first)) == PAGE_SIZE and seqs(first)[0] == PAGE_SIZE + 5
    assert "page 1 of 2" in first
    next_link = re.search(r'id="page-next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "verdict=pass" in next_link  # the filters ride along
    second = client.get(next_link).get_data(as_text=True)
    assert seqs(second) == [5, 4, 3, 2, 1]


def test_a_bad_filter_says_which_and_is_a_400(client: FlaskClient, db: Database, auditor: str) -> None:
    response = client.get(f"/l/{auditor}/audit/", query_string={"date_from": "20/11/2026"})
    assert response.status_code == 400
    assert "From: a date like 2026-11-20." in response.get_data(as_text=True)
    response = client.get(f"/l/{auditor}/audit/", query_string={"patient": "p1' OR 1=1"})
    assert response.status_code == 400


def test_the_chain_badge_says_intact_or_broken(client: FlaskClient, db: Database, auditor: str) -> None:
    add_dose_change(db, 0, "c1")
    intact = search(client, auditor)
    assert 'data-intact="true"' in intact and "Audit chain intact" in intact
    tamper(db, "UPDATE audit_log SET dose_after_ug_per_day = 4800 WHERE seq = 2")
    broken = search(client, auditor)
    assert 'data-intact="false"' in broken
    assert "seq 2: contents do not match the stored hash" in broken
