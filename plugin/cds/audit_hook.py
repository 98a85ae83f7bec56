"""The CDS service's link to the audit log: issued cards (``cds.card``) and feedback (``cds.feedback``).

Injectable: the app keeps one ``AuditHook`` in ``app.extensions["itb.cds.audit"]``; tests pass a
``sink`` to see what would be recorded. Without a sink it calls ``plugin.audit.log.record`` when that
module is installed. An audit failure is logged (without PHI) and re-raised for feedback, because a
feedback call exists only to be recorded; for an issued card the card still goes out (the EHR is
waiting at signing) and the card row in ``cds_cards`` remains as the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from plugin.db import Database

log = logging.getLogger(__name__)

Sink = Callable[[Mapping[str, Any]], None]


class AuditHook:
    """Turn CDS events into audit entries and hand them to the audit log (or a test sink)."""

    def __init__(self, db: Database, sink: Sink | None = None, *, audit_cards: bool = True) -> None:
        self._db = db
        self._sink = sink
        self._audit_cards = audit_cards

    def card_issued(self, row: Mapping[str, Any]) -> None:
        """Audit one issued card (best effort: the clinician must get the card even if this fails)."""
        if not self._audit_cards:
            return
        try:
            self._write(self._card_fields(row))
        except Exception:  # noqa: BLE001 - any audit failure must not withhold a safety card
            log.exception("audit of an issued CDS card failed", extra={"event": "cds.audit_fail"})

    def feedback(self, row: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        """Audit one feedback item about an issued card (failures propagate: feedback is a record)."""
        fields = self._card_fields(row)
        reason = item.get("reason") or {}
        fields.update(
            action="cds.feedback",
            actor=row.get("user_id") or fields["actor"],
            actor_role="clinician" if row.get("user_id") else "cds",
            override_reason_code=reason.get("code"),
            override_reason_text=item.get("userComment") or reason.get("display"),
        )
        fields["detail"] = {
            **fields["detail"],
            "outcome": item["outcome"],
            "outcome_at": item["outcomeTimestamp"],
            "accepted_suggestions": list(item.get("acceptedSuggestions") or ()),
        }
        self._write(fields)

    @staticmethod
    def _card_fields(row: Mapping[str, Any]) -> dict[str, Any]:
        """Return the audit fields every CDS event about a card shares."""
        codes = [code for code in str(row.get("finding_codes") or "").split() if code]
        return {
            "actor": f"cds-client:{row['client_iss']}",
            "actor_role": "cds",
            "action": "cds.card",
            "patient_id": row.get("patient_id"),
            "iss": row.get("client_iss"),
            "dose_before_ug_per_day": row.get("dose_before_ug_per_day"),
            "dose_after_ug_per_day": row.get("dose_after_ug_per_day"),
            "verdict": row.get("verdict"),
            "finding_codes": codes,
            "related": [f"cds-card:{row['uuid']}"],
            "request_id": row.get("hook_instance"),
            "detail": {
                "hook": row.get("hook"),
                "service": row.get("service_id"),
                "user": row.get("user_id"),
                "suggested_ug_per_day": row.get("suggested_ug_per_day"),
            },
        }

    def _write(self, fields: Mapping[str, Any]) -> None:
        """Record one entry through the sink or ``plugin.audit.log``."""
        if self._sink is not None:
            self._sink(fields)
            return
        try:
            from plugin.audit.log import AuditEntry, record
        except ImportError:
            log.warning(
                "plugin.audit is not installed; CDS event not audited", extra={"event": "cds.no_audit"}
            )
            return
        record(self._db, AuditEntry(**fields))
