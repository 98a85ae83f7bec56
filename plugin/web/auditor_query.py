"""What the auditor's pages ask of the audit log: filtered, paged searches and a patient's timeline.

Reads only (the chain is append-only); every row comes back as ``models.record_as_dict`` (typed values).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select

from plugin.audit.log import VERDICTS
from plugin.audit.models import AUDIT_TABLE, record_as_dict
from plugin.db import Database

PAGE_SIZE = 50
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TIMELINE_ACTIONS = (
    "check.run",
    "dose-change.propose",
    "dose-change.override",
    "writeback.filed",
    "writeback.queued",
    "writeback.refused",
    "verification.verify",
    "verification.reject",
    "verification.undo",
)


class FilterError(ValueError):
    """A filter value cannot be used; the message says which and why, in plain words."""


@dataclass(frozen=True)
class AuditFilters:
    """The auditor's search: every field optional; ``overridden`` is "yes", "no" or None (either)."""

    patient: str | None = None
    actor: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    verdict: str | None = None
    overridden: str | None = None
    page: int = 1
    # The EHRs whose records the auditor may see (set by the view from the launch, never from the URL).
    iss_in: tuple[str, ...] | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> AuditFilters:
        """Read the filters from a query string; raise FilterError on a value that cannot be used."""
        patient = (args.get("patient") or "").strip() or None
        if patient is not None and not _FHIR_ID.match(patient):
            raise FilterError("Patient: give the patient's FHIR id (letters, digits, '-' and '.').")
        actor = (args.get("actor") or "").strip()[:300] or None
        verdict = args.get("verdict") or None
        if verdict is not None and verdict not in VERDICTS:
            raise FilterError("Verdict: choose pass, warn, block or cannot-check.")
        overridden = args.get("overridden") or None
        if overridden not in (None, "yes", "no"):
            raise FilterError("Overridden: choose yes, no or either.")
        date_from, date_to = _date(args, "date_from", "From"), _date(args, "date_to", "To")
        if date_from and date_to and date_to < date_from:
            raise FilterError("Dates: 'To' is before 'From'.")
        try:
            page = max(1, int(args.get("page") or 1))
        except ValueError:
            raise FilterError("Page: not a number.") from None
        return cls(patient, actor, date_from, date_to, verdict, overridden, page)

    def where(self) -> list[ColumnElement[bool]]:
        """Return the SQL conditions of these filters."""
        table = AUDIT_TABLE
        conditions: list[ColumnElement[bool]] = []
        if self.iss_in is not None:
            conditions.append(table.c.iss.in_(self.iss_in))
        if self.patient:
            conditions.append(table.c.patient_id == self.patient)
        if self.actor:
            conditions.append(table.c.actor == self.actor)
        if self.date_from:
            conditions.append(table.c.recorded_at >= datetime.combine(self.date_from, time.min, UTC))
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), time.min, UTC)
            conditions.append(table.c.recorded_at < end)
        if self.verdict:
            conditions.append(table.c.verdict == self.verdict)
        if self.overridden == "yes":
            conditions.append(table.c.override_reason_code.is_not(None))
        elif self.overridden == "no":
            conditions.append(table.c.override_reason_code.is_(None))
        return conditions

    def query_args(self, **changes: Any) -> dict[str, str]:
        """Return these filters (with ``changes``) as query arguments, empty ones left out."""
        values = replace(self, **changes)
        pairs = {
            "patient": values.patient,
            "actor": values.actor,
            "date_from": values.date_from.isoformat() if values.date_from else None,
            "date_to": values.date_to.isoformat() if values.date_to else None,
            "verdict": values.verdict,
            "overridden": values.overridden,
            "page": str(values.page) if values.page > 1 else None,
        }
        return {name: value for name, value in pairs.items() if value}

    def summary(self) -> dict[str, str]:
        """Return the filters for the audit.view record's detail (no page number)."""
        return self.query_args(page=1)


def _date(args: Mapping[str, str], name: str, label: str) -> date | None:
    """Return a YYYY-MM-DD query argument as a date (None when empty)."""
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{label}: a date like 2026-11-20.") from None


@dataclass(frozen=True)
class ResultPage:
    """One page of matching records, newest first, and where it sits among all matches."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def search(db: Database, filters: AuditFilters) -> ResultPage:
    """Return the page of records matching ``filters``, newest (highest seq) first."""
    table = AUDIT_TABLE
    conditions = filters.where()
    with db.engine.connect() as connection:
        total = int(
            connection.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
        )
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(filters.page, pages)
        query = (
            select(table)
            .where(*conditions)
            .order_by(table.c.seq.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
        rows = [record_as_dict(dict(row)) for row in connection.execute(query).mappings()]
    return ResultPage(rows, total, page, pages)


@dataclass
class DoseChangeStory:
    """Everything the audit log says about one dose change, oldest first."""

    change_id: str | None
    events: list[dict[str, Any]] = field(default_factory=list)

    def first(self, *actions: str) -> dict[str, Any] | None:
        """Return the earliest event with one of ``actions``."""
        return next((event for event in self.events if event["action"] in actions), None)

    def last(self, *actions: str) -> dict[str, Any] | None:
        """Return the latest event with one of ``actions``."""
        return next((event for event in reversed(self.events) if event["action"] in actions), None)


def _change_id(row: dict[str, Any]) -> str | None:
    """Return the DoseChange id a record is about, from its ``related`` references."""
    return next((ref.split("/", 1)[1] for ref in row["related"] if ref.startswith("DoseChange/")), None)


def timeline(db: Database, patient_id: str, iss_in: tuple[str, ...]) -> list[DoseChangeStory]:
    """Return the patient's dose changes at these EHRs (newest first), each with its audit events."""
    table = AUDIT_TABLE
    query = (
        select(table)
        .where(
            table.c.patient_id == patient_id,
            table.c.action.in_(TIMELINE_ACTIONS),
            table.c.iss.in_(iss_in),
        )
        .order_by(table.c.seq)
    )
    stories: dict[str | None, DoseChangeStory] = {}
    with db.engine.connect() as connection:
        for row in connection.execution_options(yield_per=500).execute(query).mappings():
            record = record_as_dict(dict(row))
            key = _change_id(record)
            stories.setdefault(key, DoseChangeStory(key)).events.append(record)
    return sorted(stories.values(), key=lambda story: story.events[0]["seq"], reverse=True)
