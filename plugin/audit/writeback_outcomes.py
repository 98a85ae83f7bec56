"""Audit what the outbox runner finally made of a submission the clinician's request could not file.

The request audits its own first attempt (``writeback.filed`` or ``writeback.queued``, plugin.web.notes).
A submission it left queued (the EHR was down, slow, or the launch had expired) is settled later by the
outbox runner or ``itb outbox run``: this module records that outcome, ``writeback.filed`` or
``writeback.refused``, as ``system:outbox``, once per submission. The check for an earlier record and the
append share one chain transaction, so two runners settling the same submission write it once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from plugin.audit.log import AuditEntry, append_entries, chain_transaction, mirror_to_logger
from plugin.audit.models import AUDIT_TABLE
from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.verification.models import VerificationAction
from plugin.writeback.outbox import submission_status

log = logging.getLogger(__name__)
ACTIONS = {"filed": "writeback.filed", "failed": "writeback.refused"}


def _marker(submission_id: str) -> str:
    """Return the ``related`` entry that ties an audit record to an outbox submission."""
    return f"outbox-submission:{submission_id}"


def _entry(db: Database, submission_id: str) -> AuditEntry | None:
    """Return the audit entry of a settled submission, or None while it is still being filed."""
    with db.session() as session:
        status = submission_status(session, submission_id)
        action = ACTIONS.get(status.state)
        if action is None:
            return None  # still pending, or kept in the app only: nothing reached an end at the EHR
        filed = [f"{item.resource_type}/{item.server_id}" for item in status.items if item.server_id]
        change = session.scalar(
            select(DoseChangeRecord).where(DoseChangeRecord.outbox_submission_id == submission_id)
        )
        verification = None
        if change is None:
            verification = session.scalar(
                select(VerificationAction).where(VerificationAction.outbox_submission_id == submission_id)
            )
            if verification is not None:
                change = session.get(DoseChangeRecord, verification.dose_change_id)
        if change is None:
            return None  # not a dose change's submission
        return AuditEntry(
            actor="system:outbox",
            actor_role="system",
            action=action,
            patient_id=change.patient_id,
            iss=change.iss,
            dose_before_ug_per_day=change.current_dose_ug_per_day,
            dose_after_ug_per_day=change.proposed_dose_ug_per_day,
            related=[f"DoseChange/{change.id}", _marker(submission_id), *filed],
            detail={
                "filing": status.state,
                "message": status.message[:300],
                "note": "verification" if verification is not None else "dose change",
            },
        )


def audit_settled(db: Database, submission_ids: Iterable[str], now: datetime) -> int:
    """Record the outcome of each settled submission not recorded before; return how many were written."""
    written = 0
    for submission_id in sorted(set(submission_ids)):
        entry = _entry(db, submission_id)
        if entry is None:
            continue
        marker = _marker(submission_id)
        with chain_transaction(db) as connection:
            # Under the chain lock: a second runner settling the same submission sees this record.
            seen = connection.execute(
                select(AUDIT_TABLE.c.seq)
                .where(AUDIT_TABLE.c.action == entry.action, AUDIT_TABLE.c.related.contains(marker))
                .limit(1)
            ).first()
            rows = [] if seen is not None else append_entries(connection, [entry], now=now)
        for values in rows:
            mirror_to_logger(values)
        written += len(rows)
    return written
