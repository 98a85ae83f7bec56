"""The append-only ``audit_log`` table and the canonical form its hash chain is computed over.

Each row stores ``prev_hash`` (the previous row's ``hash``; 64 zeros for the first row) and ``hash``, the
hex SHA-256 of the canonical JSON of every other column. The canonical JSON is
``json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` over a
dict keyed by column name where:

- ``recorded_at`` is ``datetime.isoformat(timespec="microseconds")`` in UTC (``...T10:00:00.000000+00:00``);
- ``dose_*_ug_per_day`` are JSON numbers from ``float`` (so 400 and 400.0 hash alike) or null;
- ``finding_codes`` and ``related`` are JSON arrays, ``detail`` a JSON object (stored as JSON text, parsed
  before hashing so the text's whitespace does not matter);
- every other column is its string (or integer ``seq``) value, or null.

Editing any column, deleting a row or reordering rows therefore breaks either a row's own hash or the link
to its predecessor, which ``plugin.audit.verify`` finds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Double, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db import Base, UTCDateTime

GENESIS_HASH = "0" * 64

# Column order of exports; also the exact set of fields the hash covers (``hash`` itself excluded).
EXPORT_FIELDS: tuple[str, ...] = (
    "seq",
    "id",
    "recorded_at",
    "actor",
    "actor_role",
    "patient_id",
    "iss",
    "action",
    "dose_before_ug_per_day",
    "dose_after_ug_per_day",
    "verdict",
    "finding_codes",
    "override_reason_code",
    "override_reason_text",
    "related",
    "request_id",
    "detail",
    "prev_hash",
    "hash",
)
HASHED_FIELDS: tuple[str, ...] = tuple(name for name in EXPORT_FIELDS if name != "hash")
JSON_LIST_FIELDS = ("finding_codes", "related")
JSON_OBJECT_FIELDS = ("detail",)
FLOAT_FIELDS = ("dose_before_ug_per_day", "dose_after_ug_per_day")


class AuditRecord(Base):
    """One audit event: who did what to which patient's dose, chained to the record before it."""

    __tablename__ = "audit_log"

    # The writer assigns seq = last + 1 under the chain lock (it must be known before hashing), so the
    # column has no database sequence and the chain is gapless: a missing number means a deleted row.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    id: Mapped[str] = mapped_column(String(36), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(500))
    actor_role: Mapped[str] = mapped_column(String(20))
    patient_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    iss: Mapped[str | None] = mapped_column(String(500), nullable=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    dose_before_ug_per_day: Mapped[float | None] = mapped_column(Double(), nullable=True)
    dose_after_ug_per_day: Mapped[float | None] = mapped_column(Double(), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(20), nullable=True)
    finding_codes: Mapped[str] = mapped_column(Text, default="[]")  # JSON array of finding codes
    override_reason_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    override_reason_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    related: Mapped[str] = mapped_column(Text, default="[]")  # JSON array of resource references
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON object, small, never tokens
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# The Core table, typed as one (``__table__`` is typed as a FromClause) for insert() and select().
AUDIT_TABLE = cast(Table, AuditRecord.__table__)


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_instant(value: datetime) -> str:
    """Return an aware datetime as UTC ISO 8601 with microseconds, the chain's only time format."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in the audit chain")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Return the canonical field dict of a row given as column values (JSON columns as text or parsed)."""
    fields: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = row.get(name)
        if name == "recorded_at":
            value = format_instant(value) if isinstance(value, datetime) else value
        elif name in FLOAT_FIELDS:
            value = None if value is None else float(value)
        elif name in JSON_LIST_FIELDS or name in JSON_OBJECT_FIELDS:
            value = json.loads(value) if isinstance(value, str) else value
        fields[name] = value
    return fields


def compute_hash(row: dict[str, Any]) -> str:
    """Return the hex SHA-256 of the canonical JSON of a row's hashed fields (``prev_hash`` included)."""
    return hashlib.sha256(canonical_json(hashed_fields(row)).encode("utf-8")).hexdigest()


def record_columns(record: AuditRecord) -> dict[str, Any]:
    """Return a record's raw column values keyed by column name (JSON columns still as text)."""
    return {name: getattr(record, name) for name in EXPORT_FIELDS}


def record_as_dict(record: AuditRecord | dict[str, Any]) -> dict[str, Any]:
    """Return a record as typed values: aware datetime, floats, parsed lists and detail object."""
    row = record_columns(record) if isinstance(record, AuditRecord) else record
    typed = hashed_fields(row)
    typed["recorded_at"] = row["recorded_at"]
    typed["hash"] = row["hash"]
    return typed


def record_as_json(record: AuditRecord | dict[str, Any]) -> dict[str, Any]:
    """Return a record as a JSON-ready dict (the NDJSON export line)."""
    typed = record_as_dict(record)
    typed["recorded_at"] = format_instant(typed["recorded_at"])
    return typed
