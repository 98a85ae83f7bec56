"""The auditor's downloads: CSV, NDJSON and a FHIR Bundle, streamed with patient/since filters; audited."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from plugin.audit.export import import_csv
from plugin.audit.models import compute_hash
from plugin.db import Database
from tests.audit_view.support import AUDITOR, add, add_dose_change, records


@pytest.fixture
def filled(db: Database) -> Database:
    """Two patients' dose changes on two days."""
    add_dose_change(db, 0, "c1", patient_id="p1")  # 2026-11-20
    add_dose_change(db, 60 * 24, "c2", patient_id="p1")  # 2026-11-21
    add_dose_change(db, 60 * 24, "c3", patient_id="p2")
    return db


def test_csv_download_holds_the_patients_records_and_verifies(
    client: FlaskClient, filled: Database, auditor: str
) -> None:
    response = client.get(f"/l/{auditor}/audit/export/csv", query_string={"patient": "p1"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="itb-audit-p1-')
    rows = import_csv(response.get_data(as_text=True))
    assert len(rows) == 6 and {row["patient_id"] for row in rows} == {"p1"}
    assert all(compute_hash(row) == row["hash"] for row in rows)  # lossless: hashes recompute


def test_ndjson_download_honours_since(client: FlaskClient, filled: Database, auditor: str) -> None:
    response = client.get(f"/l/{auditor}/audit/export/ndjson", query_string={"since": "2026-11-21"})
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert {line["related"][0] for line in lines} == {"DoseChange/c2", "DoseChange/c3"}
    assert all(line["recorded_at"] >= "2026-11-21" for line in lines)


def test_fhir_download_is_a_bundle_of_audit_events(
    client: FlaskClient, filled: Database, auditor: str
) -> None:
    response = client.get(f"/l/{auditor}/audit/export/fhir", query_string={"patient": "p2"})
    assert response.mimetype == "application/fhir+json"
    bundle = json.loads(response.get_data(as_text=True))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert len(bundle["entry"]) == 3
    assert {entry["resource"]["resourceType"] for entry in bundle["entry"]} == {"AuditEvent"}


def test_each_download_is_recorded_with_its_count(
    client: FlaskClient, filled: Database, auditor: str
) -> None:
    client.get(
        f"/l/{auditor}/audit/export/csv", query_string={"patient": "p1", "since": "2026-11-21"}
    ).get_data()
    exports = records(filled, "audit.export")
    assert len(exports) == 1
    export = exports[0]
    assert (export["actor"], export["actor_role"], export["patient_id"]) == (AUDITOR, "auditor", "p1")
    assert export["detail"] == {
        "format": "csv",
        "patient": "p1",
        "since": "2026-11-21",
        "via": "auditor-view",
        "records": 3,
        "complete": True,
    }


def test_a_large_export_streams_every_record(client: FlaskClient, db: Database, auditor: str) -> None:
    for minute in range(150):  # about 300 KB: several 64 KB chunks
        add(db, minute, "check.run", verdict="pass", detail={"note": "x" * 2000})
    response = client.get(f"/l/{auditor}/audit/export/ndjson")
    assert response.is_streamed
    chunks = list(response.response)
    assert len(chunks) >= 4
    assert len(b"".join(chunks).decode().splitlines()) == 150
    assert records(db, "audit.export")[0]["detail"]["records"] == 150


def test_the_search_page_links_the_exports_with_its_filters(
    client: FlaskClient, filled: Database, auditor: str
) -> None:
    html = client.get(
        f"/l/{auditor}/audit/", query_string={"patient": "p1", "date_from": "2026-11-21"}
    ).get_data(as_text=True)
    for fmt in ("csv", "ndjson", "fhir"):
        assert f'href="/l/{auditor}/audit/export/{fmt}?patient=p1&amp;since=2026-11-21"' in html


def test_an_unknown_format_is_not_found(client: FlaskClient, filled: Database, auditor: str) -> None:
    assert client.get(f"/l/{auditor}/audit/export/xlsx").status_code == 404
    assert not records(filled, "audit.export")


def test_a_download_abandoned_midway_is_recorded_as_incomplete(
    client: FlaskClient, db: Database, auditor: str
) -> None:
    # Far more than the stream's queue holds (8 chunks of 64 KB), so the export cannot finish before the
    # browser goes away; with less it could, and the test would race.
    for minute in range(500):
        add(db, minute, "check.run", verdict="pass", detail={"note": "x" * 3000})
    response = client.get(f"/l/{auditor}/audit/export/ndjson", buffered=False)
    next(iter(response.response))  # the first chunk arrives, then the browser goes away
    response.close()
    export = records(db, "audit.export")[0]
    assert export["detail"]["complete"] is False and export["detail"]["records"] is None
