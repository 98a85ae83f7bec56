"""Export a submission from the app database, including rows the EHR could not store (held)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.writeback.models import OutboxItem
from plugin.writeback.resources import placeholder


def submission_bundle(session: Session, submission_id: str) -> dict[str, Any]:
    """Return a collection Bundle of every resource of a submission, with its outbox status as a tag."""
    rows = session.scalars(
        select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
    ).all()
    if not rows:
        raise LookupError("no such submission")
    entries = []
    for row in rows:
        resource = row.resource
        if row.server_id:
            resource["id"] = row.server_id
        entry: dict[str, Any] = {"fullUrl": placeholder(row.id), "resource": resource}
        if row.server_id:
            entry["fullUrl"] = f"{row.iss.rstrip('/')}/{row.resource_type}/{row.server_id}"
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": rows[0].updated_at.isoformat(),
        "entry": entries,
    }
