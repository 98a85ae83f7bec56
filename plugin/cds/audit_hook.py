"""The CDS service's link to the audit log: issued cards (``cds.card``) and feedback (``cds.feedback``).

Injectable: the app keeps one ``AuditHook`` in ``app.extensions["itb.cds.audit"]``; tests pass a
``sink`` to see what would be recorded. Without a sink it writes to ``plugin.audit.log``.

Issued cards are audited in the same transaction as the card rows and the caller's jti (ADR 0002): the
service opens that transaction with ``plugin.audit.log.chain_transaction`` (the chain lock) and calls
``append_cards``, so one commit stores the jti, the cards and their audit records, or nothing. An entry
that cannot be built (a bug) is logged without PHI and left out: the card still goes out (the EHR is
waiting at signing) and its row in ``cds_cards`` remains as the record. Feedback is recorded with
``plugin.audit.log.record`` in its own transaction and failures propagate, because a feedback call
exists only to be recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from plugin.audit.log import AuditEntry, append_entries, mirror_to_logger, record
from plugin.db import Database

log = logging.getLogger(__name__)

Sink = Callable[[Mapping[str, Any]], None]


class AuditHook:
    """Turn CDS events into audit entries and hand them to the audit log (or a test sink)."""

    def __init__(self, db: Database, sink: Sink | None = None, *, audit_cards: bool = True) -> None:
        self._db = db
        self._sink = sink
        self._audit_cards = audit_cards

    @property
    def cards_in_transaction(self) -> bool:
        """Whether issued cards are appended to the chain inside the service's transaction."""
        return self._audit_cards and self._sink is None

    def append_cards(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append a ``cds.card`` record per card row on ``connection``, which must hold the chain lock.

        Returns the stored values, for ``cards_committed`` to mirror once the transaction has committed.
        """
        if not self.cards_in_transaction:
            return []
        entries = []
        for row in rows:
            try:
                entries.append(AuditEntry(**self._card_fields(row)))
            except (TypeError, ValueError):  # a bug: the safety card must still go out
                log.exception("audit of an issued CDS card failed", extra={"event": "cds.audit_fail"})
        return append_entries(connection, entries) if entries else []

    def cards_committed(
        self, rows: Sequence[Mapping[str, Any]], written: Sequence[Mapping[str, Any]]
    ) -> None:
        """After the commit: mirror the stored records to the ``itb.audit`` logger, or feed the test sink."""
        if self._sink is not None:
            if self._audit_cards:
                for row in rows:
                    self._sink(self._card_fields(row))
            return
        for values in written:
            mirror_to_logger(values)

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
        record(self._db, AuditEntry(**fields))
