"""The verification queue: what a submission does to older changes, and the pharmacist's ordered list.

A dose change is ``proposed`` when submitted. A newer submission for the same patient at the same EHR
makes every older proposed change ``superseded`` (only the newest proposal can be verified). The
pharmacist sees proposed changes of every patient of their EHR, most severe first, then oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, select, text, update
from sqlalchemy.orm import Session

from plugin.clinician.models import DoseChangeRecord
from plugin.verification.models import DoseChangeInputs, VerificationAction
from plugin.writeback.note import NoteInput

#: Queue order: the change that most needs a second pair of eyes comes first.
SEVERITY_RANK = {"block": 0, "cannot-check": 1, "warn": 2, "pass": 3}
#: First key of the (int, int) advisory lock that serialises one patient's queue on PostgreSQL.
PATIENT_QUEUE_LOCK = 0x17B_0E7E


def _jsonable(value: Any) -> Any:
    """Return dates as ISO strings so a chart summary can be stored as JSON."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def lock_patient_queue(session: Session, iss: str, patient_id: str) -> None:
    """Until this transaction ends, be the only one changing which of this patient's changes is proposed.

    PostgreSQL only. Its transactions run side by side (READ COMMITTED): a transaction never sees a
    change another one inserted but has not committed yet. Two submissions for one patient at the same
    moment then each superseded only the older proposals and both stayed ``proposed``; an undo that
    looked for a newer change while one was being submitted moved the change back to ``proposed`` next
    to it. Under this lock the second transaction waits for the first to commit, and its next statement
    sees the first's change. SQLite needs nothing: it has one writer at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), hashtext(:key))"),
        {"space": PATIENT_QUEUE_LOCK, "key": f"{iss}\n{patient_id}"},
    )


def on_dose_change_submitted(session: Session, record: DoseChangeRecord, note: NoteInput) -> int:
    """Supersede older proposed changes of the same patient and keep the calculator's inputs; return
    how many were superseded."""
    lock_patient_queue(session, record.iss, record.patient_id)
    result = session.execute(
        update(DoseChangeRecord)
        .where(
            DoseChangeRecord.iss == record.iss,
            DoseChangeRecord.patient_id == record.patient_id,
            DoseChangeRecord.status == "proposed",
            DoseChangeRecord.id != record.id,
        )
        .values(status="superseded", version=DoseChangeRecord.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.merge(
        DoseChangeInputs(
            dose_change_id=record.id, chart_summary_json=json.dumps(_jsonable(note.chart_summary))
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def pending_changes(session: Session, iss: str) -> list[DoseChangeRecord]:
    """Return the proposed changes at one EHR: block, cannot-check, warn, pass; oldest first within each."""
    rank = case(SEVERITY_RANK, value=DoseChangeRecord.verdict, else_=len(SEVERITY_RANK))
    rows = session.scalars(
        select(DoseChangeRecord)
        .where(DoseChangeRecord.iss == iss, DoseChangeRecord.status == "proposed")
        .order_by(rank, DoseChangeRecord.submitted_at, DoseChangeRecord.id)
    ).all()
    return list(rows)


def decisions_for(session: Session, change_id: str) -> list[VerificationAction]:
    """Return every verification action on one change, oldest first."""
    return list(
        session.scalars(
            select(VerificationAction)
            .where(VerificationAction.dose_change_id == change_id)
            .order_by(VerificationAction.at, VerificationAction.id)
        ).all()
    )


def recent_decisions(session: Session, iss: str, actor: str, limit: int = 20) -> Sequence[VerificationAction]:
    """Return this pharmacist's latest actions at one EHR, newest first (to reopen or undo them)."""
    return session.scalars(
        select(VerificationAction)
        .where(VerificationAction.iss == iss, VerificationAction.actor == actor)
        .order_by(VerificationAction.at.desc(), VerificationAction.id)
        .limit(limit)
    ).all()


def inputs_for(session: Session, change_id: str) -> dict[str, Any]:
    """Return the chart summary stored at submission (empty when the change predates this table)."""
    row = session.get(DoseChangeInputs, change_id)
    return row.summary if row else {}
