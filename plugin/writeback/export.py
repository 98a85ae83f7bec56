"""Export a submission from the app database, including rows the EHR could not store (held)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.writeback.models import OutboxItem
from plugin.writeback.resources import placeholder
from plugin.writeback.update import payload_of, with_appended


def submission_bundle(session: Session, submission_id: str) -> dict[str, Any]:
    """Return a collection Bundle of every resource of a submission (an update as the resource it changes)."""
    rows = session.scalars(
        select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
    ).all()
    if not rows:
        raise LookupError("no such submission")
    entries = []
    for row in rows:
        resource, write_id, server_id = row.resource, row.id, row.server_id
        if row.is_update:
            # An update is exported as the resource it changes (as the app queued it) with the element
            # appended: an export of a held update then still shows the pharmacist's mitigation.
            target = session.get(OutboxItem, row.target_id) if row.target_id else None
            if target is None:
                continue
            element, value = payload_of(resource)
            resource = with_appended(target.resource, element, value)
            write_id, server_id = target.id, target.server_id
        if server_id:
            resource["id"] = server_id
        entry: dict[str, Any] = {"fullUrl": placeholder(write_id), "resource": resource}
        if server_id:
            entry["fullUrl"] = f"{row.iss.rstrip('/')}/{row.resource_type}/{server_id}"
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": rows[0].updated_at.isoformat(),
        "entry": entries,
    }
