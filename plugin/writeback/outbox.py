"""The outbox API for the rest of the app: queue a submission, ask what became of it, retry, adopt.

``enqueue_submission`` is the only way a note reaches the EHR: it stores every resource first (or
nothing, when any is invalid), and ``sender.run_once`` files them later, so nothing submitted is lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from plugin.db import utcnow
from plugin.writeback.capability import can_create, can_update
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.models import OutboxItem, OutboxOperation, OutboxStatus
from plugin.writeback.resources import PLACEHOLDER_PREFIX, relative_reference, validate_resource, write_id_of
from plugin.writeback.update import Append, checked_append

S = OutboxStatus
NEEDS_LAUNCH_MESSAGE = "the EHR session expired; will be filed after the next launch"


def _references(value: Any) -> Iterator[str]:
    """Yield every ``reference`` string anywhere in a resource."""
    if isinstance(value, Mapping):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield ref
        for child in value.values():
            yield from _references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _references(child)


def placeholder_ids(resource: Mapping[str, Any]) -> list[str]:
    """Return the write ids this resource refers to through ``urn:uuid:`` placeholders."""
    ids = [r[len(PLACEHOLDER_PREFIX) :] for r in _references(resource) if r.startswith(PLACEHOLDER_PREFIX)]
    return list(dict.fromkeys(ids))


def patient_reference_of(resource: Mapping[str, Any]) -> str | None:
    """Return the resource's subject/patient/for reference, or None when it has none."""
    for key in ("subject", "patient", "for"):
        element = resource.get(key)
        if isinstance(element, Mapping) and isinstance(element.get("reference"), str):
            return str(element["reference"])
    return None


def is_about_patient(resource: Mapping[str, Any], patient_id: str, iss: str) -> bool:
    """Whether the resource's patient reference is ``Patient/{patient_id}`` (or none is given)."""
    reference = patient_reference_of(resource)
    return reference is None or relative_reference(reference, iss) == f"Patient/{patient_id}"


def strip_references(value: Any, write_ids: Collection[str]) -> Any:
    """Return a copy without list entries that refer to the given placeholders."""
    targets = {PLACEHOLDER_PREFIX + i for i in write_ids}
    if isinstance(value, Mapping):
        out = {k: strip_references(v, write_ids) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != []}
    if isinstance(value, list):
        kept = [v for v in value if not (isinstance(v, Mapping) and v.get("reference") in targets)]
        return [strip_references(v, write_ids) for v in kept]
    return value


def enqueue_submission(
    session: Session,
    *,
    launch_id: str,
    iss: str,
    patient_id: str,
    resources: list[dict[str, Any]],
    capabilities: Mapping[str, Any],
    author_ref: str | None = None,
    app_only_types: Collection[str] = (),
    updates: Sequence[Append] = (),
    now: datetime | None = None,
) -> str:
    """Store one row per resource (pending, or held when the EHR cannot create its type); return the id.

    ``updates`` append an element to resources filed by earlier submissions (one ``update`` row each,
    after the resources): pending, or held when the EHR cannot update the type or the target is held.
    Every resource and update is validated with R4B and checked first; any problem raises
    WriteBackInputError and nothing is written. Queuing the same rows again returns the first
    submission's id.
    """
    now = now or utcnow()
    checked = [validate_resource(r) for r in resources]
    write_ids = [write_id_of(r) for r in checked]
    if not (checked or updates) or any(i is None for i in write_ids):
        raise WriteBackInputError("every resource needs the app's write identifier")
    ids = [str(i) for i in write_ids]
    every_id = [*ids, *(u.write_id for u in updates)]
    if len(set(every_id)) != len(every_id):
        raise WriteBackInputError("two resources share one write identifier")
    for resource in checked:
        if not is_about_patient(resource, patient_id, iss):
            raise WriteBackInputError(
                f"a {resource['resourceType']} is about another patient than the launch"
            )
        unknown = set(placeholder_ids(resource)) - set(ids)
        if unknown:
            raise WriteBackInputError(
                f"a {resource['resourceType']} refers to a resource not in the submission"
            )
    existing = session.scalars(select(OutboxItem).where(OutboxItem.id.in_(every_id))).all()
    if existing:
        same_rows = {row.id for row in existing} == set(every_id)
        if same_rows and len({row.submission_id for row in existing}) == 1:
            return existing[0].submission_id
        raise WriteBackInputError("some of these resources were already queued in another submission")
    targets = [_update_target(session, append, iss=iss, patient_id=patient_id) for append in updates]

    held = {
        i
        for i, r in zip(ids, checked, strict=True)
        if r["resourceType"] in app_only_types or not can_create(capabilities, r["resourceType"])
    }
    payloads = dict(zip(ids, checked, strict=True))
    changed = True
    while changed:  # holding one row may leave another with nothing the EHR could resolve
        changed = False
        for write_id in ids:
            if write_id in held or not set(placeholder_ids(payloads[write_id])) & held:
                continue
            # The EHR never sees a held resource, so a reference to it could not resolve there: drop it.
            try:
                payloads[write_id] = validate_resource(strip_references(payloads[write_id], held))
            except WriteBackInputError:
                held.add(write_id)
                changed = True

    submission_id = str(uuid.uuid4())
    for seq, write_id in enumerate(ids):
        is_held = write_id in held
        resource = checked[seq] if is_held else payloads[write_id]
        deps = [] if is_held else placeholder_ids(resource)
        session.add(
            OutboxItem(
                id=write_id,
                submission_id=submission_id,
                seq=seq,
                launch_id=launch_id,
                iss=iss,
                patient_id=patient_id,
                author_ref=relative_reference(author_ref, iss) if author_ref else None,
                resource_type=resource["resourceType"],
                payload=json.dumps(resource, separators=(",", ":")),
                status=(S.HELD if is_held else S.PENDING).value,
                attempts=0,
                # Rows that refer to others wait until those have server ids (the sender arms them).
                next_attempt_at=None if is_held or deps else now,
                depends_on=json.dumps(deps) if deps else None,
                created_at=now,
                updated_at=now,
            )
        )
    for offset, (append, (target, value)) in enumerate(zip(updates, targets, strict=True)):
        is_held = (
            target.status == S.HELD
            or target.resource_type in app_only_types
            or not can_update(capabilities, target.resource_type)
        )
        session.add(
            OutboxItem(
                id=append.write_id,
                submission_id=submission_id,
                seq=len(ids) + offset,
                launch_id=launch_id,
                iss=iss,
                patient_id=patient_id,
                author_ref=relative_reference(author_ref, iss) if author_ref else None,
                resource_type=target.resource_type,
                payload=json.dumps(
                    {"resourceType": target.resource_type, append.element: [value]}, separators=(",", ":")
                ),
                status=(S.HELD if is_held else S.PENDING).value,
                attempts=0,
                # Due at once: the sender waits until the target is filed (it re-checks, and filing the
                # target arms it). Not parked: the target may be filed before this transaction commits.
                next_attempt_at=None if is_held else now,
                operation=OutboxOperation.UPDATE.value,
                target_id=target.id,
                created_at=now,
                updated_at=now,
            )
        )
    session.flush()
    return submission_id


def _update_target(
    session: Session, append: Append, *, iss: str, patient_id: str
) -> tuple[OutboxItem, dict[str, Any]]:
    """Return the create row an update appends to, and the checked value to append."""
    target = session.get(OutboxItem, append.target_id)
    if target is None or target.is_update:
        raise WriteBackInputError("an update refers to a resource the app did not queue")
    if target.iss != iss or target.patient_id != patient_id:
        raise WriteBackInputError(f"an update of a {target.resource_type} is about another patient or EHR")
    return target, checked_append(target.resource, append)


def retry(session: Session, item_id: str, *, now: datetime | None = None) -> OutboxItem:
    """Send a failed row again (a user's explicit choice after fixing the cause)."""
    now = now or utcnow()
    item = session.get(OutboxItem, item_id)
    if item is None:
        raise LookupError("no such outbox item")
    if item.status != S.FAILED:
        raise WriteBackInputError(f"only failed items can be retried (this one is {item.status})")
    item.status = S.SENT.value if item.server_id else S.PENDING.value
    # attempts restart at 0: the user asked for this send, so a server that cannot search by
    # identifier gets a plain create instead of failing on the lookup again.
    item.attempts = 0
    item.last_error = None
    item.next_attempt_at = now
    item.updated_at = now
    session.flush()
    return item


def adopt_after_launch(
    session: Session,
    *,
    launch_id: str,
    iss: str,
    patient_id: str,
    fhir_user: str | None,
    now: datetime | None = None,
) -> int:
    """Move this user's unfiled rows for this patient to a new launch and make them due; return how many."""
    if not fhir_user:
        return 0
    now = now or utcnow()
    mine = (
        OutboxItem.iss == iss,
        OutboxItem.patient_id == patient_id,
        OutboxItem.author_ref == relative_reference(fhir_user, iss),
        OutboxItem.launch_id != launch_id,
        OutboxItem.status.in_([S.PENDING.value, S.SENT.value]),
    )
    # Rows parked behind a dependency (next_attempt_at NULL, no launch problem) stay parked.
    session.execute(
        update(OutboxItem)
        .where(*mine, OutboxItem.next_attempt_at.is_not(None) | OutboxItem.needs_launch.is_(True))
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(OutboxItem)
        .where(*mine)
        .values(launch_id=launch_id, needs_launch=False, last_error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """What became of one resource of a submission, in words for the user."""

    id: str
    resource_type: str
    status: str
    server_id: str | None
    attempts: int
    last_error: str | None
    dropped_fields: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class SubmissionStatus:
    """The truth about one submission: ``state`` is filed, pending, failed or held; ``message`` says it."""

    submission_id: str
    state: str
    message: str
    items: tuple[ItemStatus, ...]


def _kept(held: Collection[OutboxItem]) -> str:
    """Return why rows are kept in the app: the types the EHR cannot store, or cannot update."""
    stored = sorted({r.resource_type for r in held if not r.is_update})
    updated = sorted({r.resource_type for r in held if r.is_update})
    cannot = [
        f"{verb} {', '.join(types)}" for verb, types in (("store", stored), ("update", updated)) if types
    ]
    return f"kept in ITB Dose Check (this EHR cannot {' or '.join(cannot)})"


def _describe(item: OutboxItem) -> str:
    """Return one line about one row."""
    if item.status == S.HELD:
        return _kept([item])
    if item.status == S.FAILED:
        return f"the EHR refused: {item.last_error or 'no reason given'}"
    if item.status in (S.SENT, S.CONFIRMED):
        if item.is_update:
            element = next((k for k in item.resource if k != "resourceType"), "element")
            text = f"{element} added to {item.resource_type}/{item.server_id}"
        else:
            text = f"filed as {item.resource_type}/{item.server_id}"
        if item.dropped:
            text += f"; the EHR did not keep: {', '.join(item.dropped)}"
        return text
    if item.needs_launch:
        return f"saved, {NEEDS_LAUNCH_MESSAGE}"
    if item.next_attempt_at is None:
        return "saved, waits for the resources it refers to"
    if item.is_update:
        return f"saved, will be added to the {item.resource_type} once it is filed and the EHR answers"
    return "saved, will be filed when the EHR answers"


def submission_status(session: Session, submission_id: str) -> SubmissionStatus:
    """Return what became of a submission: filed, saved for later, refused, or kept in the app only."""
    rows = session.scalars(
        select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
    ).all()
    if not rows:
        raise LookupError("no such submission")
    items = tuple(
        ItemStatus(
            r.id,
            r.resource_type,
            r.status,
            r.server_id,
            r.attempts,
            r.last_error,
            tuple(r.dropped),
            _describe(r),
        )
        for r in rows
    )
    failed = [r for r in rows if r.status == S.FAILED]
    waiting = [r for r in rows if r.status in (S.PENDING, S.SENDING)]
    held = [r for r in rows if r.status == S.HELD]
    if failed:
        state, message = "failed", f"the EHR refused: {failed[0].last_error or 'no reason given'}"
    elif waiting:
        state = "pending"
        message = (
            f"saved, {NEEDS_LAUNCH_MESSAGE}"
            if any(r.needs_launch for r in waiting)
            else "saved, will be filed when the EHR answers"
        )
    elif len(held) == len(rows):
        state, message = "held", _kept(held)
    else:
        state, message = "filed", "filed"
        if held:
            message += f"; {_kept(held)}"
    return SubmissionStatus(submission_id, state, message, items)


def __getattr__(name: str) -> Any:
    """Offer ``run_once``/``RunReport`` here too (they live in ``sender``, which imports this module)."""
    if name in ("run_once", "RunReport"):
        from plugin.writeback import sender

        return getattr(sender, name)
    raise AttributeError(name)
