"""Exports: CSV re-imports to the same records, NDJSON parses, the FHIR Bundle validates with R4B."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from audit.helpers import START, fill
from plugin.audit.export import export_records, import_csv
from plugin.audit.log import AuditEntry, record
from plugin.audit.models import AUDIT_TABLE, compute_hash, record_as_dict, record_as_json
from plugin.db import Database


def stored_records(db: Database) -> list[dict[str, Any]]:
    """Return every stored record as typed dicts in seq order."""
    with db.engine.connect() as connection:
        rows = connection.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.seq)).mappings().all()
    return [record_as_dict(dict(row)) for row in rows]


def export(db: Database, fmt: str, **filters: Any) -> tuple[int, str]:
    """Return (count, text) of an export."""
    out = io.StringIO()
    count = export_records(db, fmt=fmt, out=out, **filters)  # type: ignore[arg-type]
    return count, out.getvalue()


@pytest.fixture
def filled(any_db: Database) -> Database:
    """Return a database with 20 varied records and two awkward ones (quotes, newlines, refusals)."""
    fill(any_db, 20)
    record(
        any_db,
        AuditEntry(
            actor="cds-client:https://ehr.example.org/fhir",
            actor_role="cds",
            action="writeback.refused",
            patient_id="456",
            iss="https://ehr.example.org/fhir",
            override_reason_code="other",
            override_reason_text='Line one, with "quotes"\nline two; ünïcödé',
            detail={"reason": "403 from EHR", "nested": {"list": [1, 2.5, None, True]}},
        ),
        now=START + timedelta(days=2),
    )
    record(
        any_db,
        AuditEntry(actor="system", actor_role="system", action="audit.view"),
        now=START + timedelta(days=3),
    )
    return any_db


def test_csv_reimports_to_the_same_records(filled: Database) -> None:
    count, text = export(filled, "csv")
    assert count == 22
    imported = import_csv(text)
    assert imported == stored_records(filled)
    assert all(compute_hash(row) == row["hash"] for row in imported)  # the chain survives the export


def test_csv_filters_by_patient_and_since(filled: Database) -> None:
    count, text = export(filled, "csv", patient_id="456")
    assert count == 1 and import_csv(text)[0]["action"] == "writeback.refused"
    count, text = export(filled, "csv", since=(START + timedelta(days=2)).date())
    assert count == 2 and [row["seq"] for row in import_csv(text)] == [21, 22]
    count, text = export(filled, "csv", since=date(2030, 1, 1))
    assert count == 0 and import_csv(text) == []


def test_import_csv_refuses_a_foreign_file() -> None:
    with pytest.raises(ValueError, match="header"):
        import_csv("a,b\n1,2\n")


def test_ndjson_has_one_parseable_record_per_line(filled: Database) -> None:
    count, text = export(filled, "ndjson")
    lines = text.splitlines()
    assert count == len(lines) == 22
    parsed = [json.loads(line) for line in lines]
    assert parsed == [record_as_json(row) for row in stored_records(filled)]
    assert parsed[0]["recorded_at"] == "2026-11-20T10:00:00.000000+00:00"


def test_fhir_bundle_validates_with_r4b_and_has_one_audit_event_per_record(filled: Database) -> None:
    count, text = export(filled, "fhir")
    bundle = Bundle.model_validate(json.loads(text))
    assert bundle.type == "collection" and bundle.entry is not None
    assert count == len(bundle.entry) == 22
    records = stored_records(filled)
    for entry, stored in zip(bundle.entry, records, strict=True):
        assert entry.resource is not None
        event = AuditEvent.model_validate(entry.resource.model_dump())
        details = {d.type: d.valueString for e in event.entity or [] for d in e.detail or []}
        assert details["hash"] == stored["hash"] and details["seq"] == str(stored["seq"])
        assert event.id == stored["id"]


def test_audit_event_follows_balp_shapes(filled: Database) -> None:
    _, text = export(filled, "fhir")
    events = [entry["resource"] for entry in json.loads(text)["entry"]]
    read = events[0]  # launch.read-record
    assert read["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110110",
        "display": "Patient Record",
    }
    assert read["subtype"][0]["code"] == "read" and read["action"] == "R" and read["outcome"] == "0"
    assert read["agent"][0]["who"] == {"reference": "Practitioner/pr-1"} and read["agent"][0]["requestor"]
    assert read["source"]["observer"]["display"] == "ITB Dose Check"
    patient = read["entity"][0]
    assert patient["what"] == {"reference": "Patient/123"} and patient["role"]["code"] == "1"
    assert {e["subtype"][0]["code"] for e in events[:5]} == {"read", "operation", "create", "update"}
    verified = events[4]  # verification.verify
    assert verified["action"] == "U"
    details = {d["type"]: d["valueString"] for d in verified["entity"][-1]["detail"]}
    assert details["dose_after_ug_per_day"] == "404.0" and details["verdict"] == "pass"
    refused = events[20]
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "403 from EHR"
    assert refused["agent"][0]["who"] == {"display": "cds-client:https://ehr.example.org/fhir"}


def test_empty_fhir_export_is_a_valid_bundle(any_db: Database) -> None:
    count, text = export(any_db, "fhir")
    assert count == 0 and Bundle.model_validate(json.loads(text)).entry is None
