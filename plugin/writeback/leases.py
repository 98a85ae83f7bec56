"""Row-level outbox operations for the sender: find due rows, lease one, record its outcome.

A row is leased with a compare-and-set UPDATE (``lease_until < now``), which works the same on SQLite
and PostgreSQL, so several runner processes never send one row at the same time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from plugin.db import Database
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.outbox import placeholder_ids
from plugin.writeback.resources import PLACEHOLDER_PREFIX

S = OutboxStatus
LEASE = timedelta(minutes=2)


def due_ids(db: Database, now: datetime, batch: int, *, submission_id: str | None = None) -> list[str]:
    """Return ids of rows that are due and not leased, oldest first (of one submission when given)."""
    query = select(OutboxItem.id).where(
        OutboxItem.status.in_([S.PENDING.value, S.SENDING.value, S.SENT.value]),
        OutboxItem.next_attempt_at <= now,
        or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now),
    )
    if submission_id is not None:
        query = query.where(OutboxItem.submission_id == submission_id)
    with db.session() as session:
        return list(session.scalars(query.order_by(OutboxItem.created_at, OutboxItem.seq).limit(batch)))


def claim(db: Database, item_id: str, *, owner: str, now: datetime) -> OutboxItem | None:
    """Lease one row with a compare-and-set UPDATE; return it, or None when another runner has it."""
    # A fresh transaction that starts with the UPDATE: on SQLite (WAL) a read first would pin an old
    # snapshot and the upgrade to a write could fail; on PostgreSQL the WHERE is re-checked under lock.
    with db.session() as session:
        claimed = session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.id == item_id,
                OutboxItem.status.in_([S.PENDING.value, S.SENDING.value, S.SENT.value]),
                OutboxItem.next_attempt_at <= now,
                or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + LEASE, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
    with db.session() as session:
        return session.get(OutboxItem, item_id)


def finish(
    db: Database, item: OutboxItem, *, owner: str, now: datetime, keep_lease: bool = False, **values: Any
) -> None:
    """Write a row's new state (only if this runner still holds it) and release the lease unless kept."""
    lease = {"lease_until": now + LEASE} if keep_lease else {"lease_owner": None, "lease_until": None}
    with db.session() as session:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id, OutboxItem.lease_owner == owner)
            .values({**lease, "updated_at": now, **values})
            .execution_options(synchronize_session=False)
        )
        if values.get("status") == S.SENT.value:
            arm_dependents(session, item, now)


def arm_dependents(session: Session, item: OutboxItem, now: datetime) -> None:
    """Make rows waiting for this one due now: rows of its submission that refer to it, and update rows
    (of any submission) that append to the resource it files."""
    waiting = session.scalars(
        select(OutboxItem).where(
            or_(OutboxItem.submission_id == item.submission_id, OutboxItem.target_id == item.id),
            OutboxItem.status == S.PENDING.value,
            # Waiting rows have no time yet, or a recheck time later than now (see sender).
            or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at > now),
            OutboxItem.needs_launch.is_(False),
        )
    ).all()
    for row in waiting:
        if item.id in row.dependencies or row.target_id == item.id:
            row.next_attempt_at = now


def resolved_payload(db: Database, item: OutboxItem) -> dict[str, Any] | None:
    """Return the payload with placeholders replaced by server references, or None if one is unknown."""
    payload = item.payload
    deps = placeholder_ids(item.resource)
    if not deps:
        return item.resource
    with db.session() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.id.in_(deps))).all()
    known = {
        r.id: f"{r.resource_type}/{r.server_id}"
        for r in rows
        if r.server_id and r.status in (S.SENT.value, S.CONFIRMED.value)
    }
    if set(deps) - set(known):
        return None
    for write_id, reference in known.items():
        payload = payload.replace(json.dumps(PLACEHOLDER_PREFIX + write_id), json.dumps(reference))
    resolved: dict[str, Any] = json.loads(payload)
    return resolved
