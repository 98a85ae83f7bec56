"""Verify, reject and undo: who may, the compare-and-set that lets exactly one pharmacist act, and the
verification note queued in the same transaction.

Rules (issue 8):
* only a launch whose role is ``pharmacist`` (the EHR registry's fhirUser -> role mapping) may act;
* the prescriber never verifies their own change (separation of duties);
* a decision is taken from a launch in the change's patient's chart (the launch's EHR token is
  patient-scoped: it can neither re-read that patient's chart nor write the note otherwise);
* ``UPDATE dose_changes ... WHERE id = ? AND version = ? AND status = ?``: of two pharmacists acting on
  the version they saw, one wins and the other gets ``VerificationConflict``;
* undo: only the pharmacist who decided, with a reason; the change goes back to ``proposed`` (or to
  ``superseded`` when a newer change for the patient was submitted meanwhile).

Every decision also appends a mitigation (``MITIGATION_CODES``) to each DetectedIssue of the clinician's
submission: one outbox ``update`` row per DetectedIssue, in the same submission as the pharmacist's note.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from plugin.clinician.models import DoseChangeRecord
from plugin.launches.models import Launch
from plugin.verification.models import VerificationAction
from plugin.verification.note import (
    ClinicianNote,
    VerificationNoteInput,
    build_verification_resources,
    render_verification_note,
)
from plugin.verification.queue import decisions_for, lock_patient_queue
from plugin.verification.review import OTHER_CHART, Review
from plugin.writeback.codes import MITIGATION_SYSTEM
from plugin.writeback.models import OutboxItem
from plugin.writeback.note import format_when
from plugin.writeback.outbox import enqueue_submission
from plugin.writeback.resources import WriteBackSettings, WriteContext, new_write_id, relative_reference
from plugin.writeback.update import Append

STATUS_AFTER = {"verify": "verified", "reject": "rejected"}
MITIGATION_CODES = {
    "verify": "pharmacist-verified",
    "reject": "pharmacist-rejected",
    "undo": "verification-withdrawn",
}
MITIGATION_DISPLAYS = {
    "verify": "Pharmacist verified the dose change",
    "reject": "Pharmacist rejected the dose change",
    "undo": "Pharmacist withdrew the verification decision",
}
WITHDRAWN = {"verified": "verification", "rejected": "rejection"}


class VerificationRefused(Exception):
    """This person may not take this action here; the message says why, in plain words."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class VerificationConflict(Exception):
    """Someone else acted on the change first (or it changed since it was opened)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Decision:
    """A pharmacist's request: which change, at which version, what to do, and why."""

    change_id: str
    expected_version: int
    action: str  # verify | reject | undo
    reason: str = ""
    comment: str = ""


def same_user(a: str | None, b: str | None, iss: str) -> bool:
    """Whether two fhirUser references (relative or absolute) name the same person."""
    return bool(a and b) and relative_reference(str(a), iss) == relative_reference(str(b), iss)


def require_pharmacist(launch: Launch) -> None:
    """Refuse anyone whose launch role is not pharmacist."""
    if launch.role != "pharmacist":
        raise VerificationRefused("Only a pharmacist can see the verification queue and verify dose changes.")


def last_decision(session: Session, change_id: str) -> VerificationAction | None:
    """Return the latest verify or reject on a change (the one an undo would withdraw)."""
    decided = [a for a in decisions_for(session, change_id) if a.action in STATUS_AFTER]
    return decided[-1] if decided else None


def check_allowed(session: Session, launch: Launch, record: DoseChangeRecord, decision: Decision) -> None:
    """Raise VerificationRefused when this launch may not take this decision on this change."""
    require_pharmacist(launch)
    if decision.action not in (*STATUS_AFTER, "undo"):
        raise VerificationRefused(f"Unknown action {decision.action!r}.", status=400)
    # Separation of duties needs both people named: with either unknown, "not the same person" cannot
    # be shown, so the change cannot be verified independently here.
    if not launch.fhir_user:
        raise VerificationRefused(
            "The EHR did not say who you are (no fhirUser in this launch), so an independent verification "
            "cannot be recorded: relaunch from the EHR with your own account."
        )
    if not record.prescriber:
        raise VerificationRefused(
            "The prescriber of this dose change is not known (the EHR did not name the user who filed it), "
            "so it cannot be verified independently here: verify it in the EHR."
        )
    if same_user(record.prescriber, launch.fhir_user, record.iss):
        raise VerificationRefused(
            "You prescribed this dose change, so you cannot verify, reject or undo it yourself: another "
            "pharmacist must do it (separation of duties)."
        )
    if str(launch.patient_id) != record.patient_id:
        raise VerificationRefused(OTHER_CHART)
    if decision.action in ("reject", "undo") and not decision.reason.strip():
        word = "rejecting" if decision.action == "reject" else "undoing a decision"
        raise VerificationRefused(f"Give a reason for {word}.", status=422)
    if decision.action == "undo":
        previous = last_decision(session, record.id)
        if record.status not in STATUS_AFTER.values() or previous is None:
            raise VerificationConflict("This change has no verification to undo: reload the page.")
        if not same_user(previous.actor, launch.fhir_user, record.iss):
            raise VerificationRefused(
                f"Only the pharmacist who decided ({previous.actor}) can undo this {record.status} decision."
            )


def compare_and_set(
    session: Session, change_id: str, version: int, status_before: str, status_after: str
) -> bool:
    """Move a change from ``status_before`` to ``status_after`` unless someone touched it; True if moved."""
    result = session.execute(
        update(DoseChangeRecord)
        .where(
            DoseChangeRecord.id == change_id,
            DoseChangeRecord.version == version,
            DoseChangeRecord.status == status_before,
        )
        .values(status=status_after, version=DoseChangeRecord.version + 1)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def explain_conflict(session: Session, change_id: str) -> str:
    """Say why a compare-and-set lost: who acted first, or that the change was superseded or edited."""
    current = session.execute(select(DoseChangeRecord).where(DoseChangeRecord.id == change_id)).scalar_one()
    session.refresh(current)
    previous = last_decision(session, change_id)
    if current.status in STATUS_AFTER.values() and previous is not None:
        return (
            f"This change was already {current.status} by {previous.actor} at {format_when(previous.at)}. "
            "Your decision was not recorded and nothing was filed."
        )
    if current.status == "superseded":
        return "This change was superseded by a newer dose change for the same patient. Nothing was filed."
    return (
        "This change was modified since you opened it. Reload the page and decide again. Nothing was filed."
    )


def _status_after(session: Session, record: DoseChangeRecord, action: str) -> str:
    """Return where the change goes: verified/rejected, or back to proposed (superseded if a newer exists)."""
    if action in STATUS_AFTER:
        return STATUS_AFTER[action]
    newer = session.scalars(
        select(DoseChangeRecord.id).where(
            DoseChangeRecord.iss == record.iss,
            DoseChangeRecord.patient_id == record.patient_id,
            DoseChangeRecord.submitted_at > record.submitted_at,
        )
    ).first()
    return "superseded" if newer else "proposed"


def clinician_outbox(
    session: Session, record: DoseChangeRecord
) -> tuple[ClinicianNote | None, list[OutboxItem]]:
    """Return the clinician's note (write id, server id) and the DetectedIssue rows of the submission."""
    rows = session.scalars(
        select(OutboxItem)
        .where(OutboxItem.submission_id == record.outbox_submission_id)
        .order_by(OutboxItem.seq)
    ).all()
    created = [r for r in rows if not r.is_update]
    notes = [r for r in created if r.resource_type == "DocumentReference"]
    note = ClinicianNote(notes[0].id, notes[0].server_id) if notes else None
    return note, [r for r in created if r.resource_type == "DetectedIssue"]


def pharmacist_mitigation(
    action: str, *, context: WriteContext, status_before: str, reason: str, comment: str
) -> dict[str, Any]:
    """Return the DetectedIssue.mitigation a decision appends: coded action, text, date and author."""
    if action == "verify":
        text = MITIGATION_DISPLAYS[action] + (f": {comment}" if comment else "")
    elif action == "reject":
        text = f"{MITIGATION_DISPLAYS[action]}: {reason}"
    else:
        text = f"Pharmacist withdrew the {WITHDRAWN.get(status_before, 'decision')}: {reason}"
    mitigation: dict[str, Any] = {
        "action": {
            "coding": [
                {
                    "system": MITIGATION_SYSTEM,
                    "code": MITIGATION_CODES[action],
                    "display": MITIGATION_DISPLAYS[action],
                }
            ],
            "text": text,
        },
        "date": context.now.isoformat(),
    }
    if context.author_reference:
        mitigation["author"] = {"reference": context.author_reference}
    return mitigation


def mitigations(
    issues: list[OutboxItem], updates: list[Append], action: str, actor: str, now: datetime
) -> list[dict[str, Any]]:
    """Return the mitigation each DetectedIssue of the submission receives, and the outbox row that
    appends it in the EHR (recorded in the app database)."""
    update_of = {u.target_id: u.write_id for u in updates}
    return [
        {
            "detected_issue": f"DetectedIssue/{row.server_id}" if row.server_id else None,
            "write_id": row.id,
            "update_id": update_of.get(row.id),
            "code": ((row.resource.get("code") or {}).get("text")),
            "action": MITIGATION_CODES[action],
            "author": actor,
            "date": now.isoformat(),
        }
        for row in issues
    ]


def decide(
    session: Session,
    *,
    launch: Launch,
    decision: Decision,
    review: Review,
    capabilities: Mapping[str, Any],
    settings: WriteBackSettings,
    now: datetime,
) -> VerificationAction:
    """Apply a verify, reject or undo and queue its note (VerificationRefused, VerificationConflict)."""
    # PostgreSQL cannot store a NUL character in a text column (SQLite can): a reason or comment with
    # one (pasted, or a crafted form) failed the whole decision with a server error. It means nothing.
    decision = replace(
        decision, reason=decision.reason.replace("\x00", ""), comment=decision.comment.replace("\x00", "")
    )
    record = session.get(DoseChangeRecord, decision.change_id)
    if record is None or record.iss != launch.iss:
        raise LookupError("no such dose change")
    check_allowed(session, launch, record, decision)
    status_before = "proposed" if decision.action in STATUS_AFTER else record.status
    if decision.action == "undo":
        # An undo decides between proposed and superseded from the newer changes it can see: wait for a
        # submission of this patient still in progress (PostgreSQL, see lock_patient_queue).
        lock_patient_queue(session, record.iss, record.patient_id)
    status_after = _status_after(session, record, decision.action)
    if not compare_and_set(session, record.id, decision.expected_version, status_before, status_after):
        raise VerificationConflict(explain_conflict(session, record.id))
    clinician_note, issues = clinician_outbox(session, record)
    actor = str(launch.fhir_user)
    rendered = render_verification_note(
        VerificationNoteInput(
            action=decision.action,
            pharmacist=actor,
            patient=f"Patient/{record.patient_id}",
            decided_at=now,
            change_id=record.id,
            prescriber=record.prescriber,
            submitted_at=record.submitted_at,
            submitted_check=review.submitted,
            rerun_check=review.rerun,
            diff=review.diff,
            calculation=review.calculation,
            reason=decision.reason.strip() or None,
            comment=decision.comment.strip() or None,
            clinician_note=clinician_note,
        ),
        templates_dir=settings.templates_dir,
    )
    context = WriteContext(launch.iss, record.patient_id, launch.fhir_user, launch.encounter_id, now)
    resources = build_verification_resources(
        rendered, action=decision.action, clinician_note=clinician_note, context=context, settings=settings
    )
    mitigation = pharmacist_mitigation(
        decision.action,
        context=context,
        status_before=status_before,
        reason=decision.reason.strip(),
        comment=decision.comment.strip(),
    )
    updates = [Append(new_write_id(), row.id, "mitigation", mitigation) for row in issues]
    submission_id = enqueue_submission(
        session,
        launch_id=launch.id,
        iss=launch.iss,
        patient_id=record.patient_id,
        resources=resources,
        capabilities=capabilities,
        author_ref=launch.fhir_user,
        updates=updates,
        now=now,
    )
    action = VerificationAction(
        id=str(uuid.uuid4()),
        dose_change_id=record.id,
        action=decision.action,
        actor=actor,
        launch_id=launch.id,
        iss=launch.iss,
        patient_id=record.patient_id,
        at=now,
        status_before=status_before,
        status_after=status_after,
        reason=decision.reason.strip() or None,
        comment=decision.comment.strip() or None,
        rerun_json=json.dumps(review.rerun) if review.rerun is not None else None,
        mitigation_json=json.dumps(mitigations(issues, updates, decision.action, actor, now)),
        note_text=rendered.text,
        outbox_submission_id=submission_id,
    )
    session.add(action)
    session.flush()
    return action
