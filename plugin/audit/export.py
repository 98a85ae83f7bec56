"""Export audit records as CSV, NDJSON or a FHIR Bundle of AuditEvents, and read a CSV export back.

CSV has a header row of the column names (``models.EXPORT_FIELDS``); an empty cell is null; lists and the
detail object are canonical JSON text; times are UTC ISO 8601 with microseconds; floats are JSON numbers.
A text cell (every cell but ``seq``, ``recorded_at`` and the floats) that starts with ``= + - @``, their
fullwidth forms, TAB, CR or ``'`` gets one ``'`` prefixed, so that a spreadsheet shows it as text instead of
running it as a formula (CSV injection); ``import_csv`` removes that one quote again.
That makes the CSV lossless: ``import_csv`` returns exactly ``models.record_as_dict`` of every record,
so the hashes can be recomputed from an export.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from typing import IO, Any, Literal

from sqlalchemy import select

from plugin.audit.fhir import write_bundle
from plugin.audit.models import (
    AUDIT_TABLE,
    EXPORT_FIELDS,
    FLOAT_FIELDS,
    JSON_LIST_FIELDS,
    JSON_OBJECT_FIELDS,
    canonical_json,
    format_instant,
    record_as_dict,
    record_as_json,
)
from plugin.db import Database

ExportFormat = Literal["csv", "ndjson", "fhir"]
FORMATS: tuple[str, ...] = ("csv", "ndjson", "fhir")
NULLABLE_TEXT_FIELDS = (
    "patient_id",
    "iss",
    "verdict",
    "override_reason_code",
    "override_reason_text",
    "request_id",
)
# Cells that spreadsheets (Excel, LibreOffice, Google Sheets) may run as a formula or macro start with one
# of these (OWASP "CSV Injection"); "'" is included so that the escape stays reversible.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20", "'")
FORMULA_ESCAPE = "'"


def iter_records(
    db: Database,
    *,
    patient_id: str | None = None,
    since: date | None = None,
    iss_in: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield matching records in seq order as typed dicts (``record_as_dict``), streamed in batches.

    ``iss_in`` keeps only the records of those EHRs (the auditor's view); None keeps every record.
    """
    table = AUDIT_TABLE
    query = select(table).order_by(table.c.seq)
    if iss_in is not None:
        query = query.where(table.c.iss.in_(list(iss_in)))
    if patient_id is not None:
        query = query.where(table.c.patient_id == patient_id)
    if since is not None:
        query = query.where(table.c.recorded_at >= datetime.combine(since, time.min, UTC))
    with db.engine.connect() as connection:
        for row in connection.execution_options(yield_per=1000).execute(query).mappings():
            yield record_as_dict(dict(row))


def _escape_formula(text: str) -> str:
    """Return a text cell with one ``'`` prefixed if a spreadsheet could take it for a formula."""
    return FORMULA_ESCAPE + text if text.startswith(FORMULA_TRIGGERS) else text


def _unescape_formula(cell: str) -> str:
    """Return a text cell without the one ``'`` that ``_escape_formula`` may have prefixed."""
    return cell.removeprefix(FORMULA_ESCAPE)


def _csv_cell(name: str, value: Any) -> str:
    """Return one CSV cell: empty for null, canonical JSON for lists/objects/floats, ISO for times.

    Text cells (JSON included) are escaped against formula injection; ``seq``, floats and times need not be.
    """
    if value is None:
        return ""
    if name == "recorded_at":
        return format_instant(value)
    if name in FLOAT_FIELDS:
        return json.dumps(float(value))
    if name in JSON_LIST_FIELDS or name in JSON_OBJECT_FIELDS:
        return _escape_formula(canonical_json(value))
    return _escape_formula(str(value))


def write_csv(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Write a header row and one row per record; return the number of records."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    count = 0
    for record in records:
        writer.writerow([_csv_cell(name, record[name]) for name in EXPORT_FIELDS])
        count += 1
    return count


def write_ndjson(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Write one canonical JSON object per line; return the number of records."""
    count = 0
    for record in records:
        out.write(canonical_json(record_as_json(record)) + "\n")
        count += 1
    return count


def export_records(
    db: Database,
    *,
    patient_id: str | None = None,
    since: date | None = None,
    fmt: ExportFormat,
    out: IO[str],
    iss_in: Sequence[str] | None = None,
) -> int:
    """Write the records of ``patient_id`` (all if None) recorded on or after ``since`` (UTC) to ``out``
    (only those of the EHRs in ``iss_in`` when given)."""
    records = iter_records(db, patient_id=patient_id, since=since, iss_in=iss_in)
    if fmt == "csv":
        return write_csv(records, out)
    if fmt == "ndjson":
        return write_ndjson(records, out)
    if fmt == "fhir":
        return write_bundle(records, out)
    raise ValueError(f"unknown export format {fmt!r}")


def _parse_cell(name: str, cell: str) -> Any:
    """Return the typed value of one CSV cell (the inverse of ``_csv_cell``)."""
    if name == "seq":
        return int(cell)
    if name == "recorded_at":
        parsed = datetime.fromisoformat(cell)
        if parsed.tzinfo is None:
            raise ValueError("recorded_at has no UTC offset")
        return parsed.astimezone(UTC)
    if name in FLOAT_FIELDS:
        return float(cell) if cell else None
    text = _unescape_formula(cell)
    if name in JSON_LIST_FIELDS or name in JSON_OBJECT_FIELDS:
        return json.loads(text)
    if name in NULLABLE_TEXT_FIELDS:
        return text or None
    return text


def import_csv(text: str) -> list[dict[str, Any]]:
    """Read a CSV export back into typed record dicts; raise ValueError on a foreign header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != EXPORT_FIELDS:
        raise ValueError("not an ITB audit CSV export: unexpected header row")
    records = []
    for number, cells in enumerate(reader, start=1):
        if len(cells) != len(EXPORT_FIELDS):
            raise ValueError(f"record {number}: {len(cells)} cells, expected {len(EXPORT_FIELDS)}")
        pairs = zip(EXPORT_FIELDS, cells, strict=True)
        records.append({name: _parse_cell(name, cell) for name, cell in pairs})
    return records
