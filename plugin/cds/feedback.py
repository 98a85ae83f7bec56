"""CDS Hooks feedback (standards.md §2.7): what the clinician did with each card, tied to the card issued.

Decisions: every item must name a card this service issued *to the same client* (``iss``); if any does
not, nothing is recorded and the answer is 404, so a client learns about a wrong uuid instead of losing
the record silently. The same report sent twice (same card, outcome and timestamp) is recorded once,
because the spec lets clients resend. ``overridden`` needs an ``overrideReason``; the reason must be one
of the card's offered Codings when it is in our code system (other systems are kept as sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from plugin.cds.audit_hook import AuditHook
from plugin.cds.models import IssuedCard
from plugin.cds.service import CdsRequestError, refuse_nul
from plugin.db import Database
from plugin.domain.loader.fhir import parse_datetime
from plugin.writeback.codes import OVERRIDE_REASON_SYSTEM, override_reasons

OUTCOMES = frozenset({"accepted", "overridden"})
MAX_ITEMS = 50


def parse_feedback(body: Any) -> list[dict[str, Any]]:
    """Validate a feedback body and return its items in a normalised form; raise a 400 otherwise."""
    if not isinstance(body, Mapping) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise CdsRequestError(400, "feedback must be a non-empty list")
    if len(body["feedback"]) > MAX_ITEMS:
        raise CdsRequestError(400, f"at most {MAX_ITEMS} feedback items per call")
    known_reasons = {reason.code for reason in override_reasons()}
    items = []
    for position, raw in enumerate(body["feedback"], start=1):
        where = f"feedback[{position}]"
        if not isinstance(raw, Mapping):
            raise CdsRequestError(400, f"{where} must be an object")
        card, outcome = raw.get("card"), raw.get("outcome")
        if not isinstance(card, str) or not card or len(card) > 36:
            raise CdsRequestError(400, f"{where}.card must be the card's uuid")
        if outcome not in OUTCOMES:
            raise CdsRequestError(400, f"{where}.outcome must be accepted or overridden")
        moment = parse_datetime(raw.get("outcomeTimestamp"))
        if moment is None:
            raise CdsRequestError(400, f"{where}.outcomeTimestamp must be an ISO 8601 instant with a zone")
        item: dict[str, Any] = {"card": card, "outcome": outcome, "outcomeTimestamp": moment.isoformat()}
        accepted = raw.get("acceptedSuggestions") or []
        if not isinstance(accepted, list) or not all(
            isinstance(a, Mapping) and isinstance(a.get("id"), str) for a in accepted
        ):
            raise CdsRequestError(400, f"{where}.acceptedSuggestions must be a list of {{id}}")
        item["acceptedSuggestions"] = [str(a["id"])[:100] for a in accepted]
        override = raw.get("overrideReason")
        if outcome == "overridden":
            item.update(_override(override, where, known_reasons))
        _refuse_nul_in(item, where)
        items.append(item)
    return items


def _refuse_nul_in(value: Any, where: str) -> None:
    """Raise a 400 when any string of a parsed feedback item holds a NUL character (they are stored)."""
    if isinstance(value, str):
        refuse_nul(value, where)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            _refuse_nul_in(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for inner in value:
            _refuse_nul_in(inner, where)


def _override(override: Any, where: str, known: set[str]) -> dict[str, Any]:
    """Validate an overrideReason: a Coding (ours must be a listed code) and an optional comment."""
    if override is None:
        return {}
    if not isinstance(override, Mapping):
        raise CdsRequestError(400, f"{where}.overrideReason must be an object")
    reason, comment = override.get("reason"), override.get("userComment")
    parsed: dict[str, Any] = {}
    if reason is not None:
        if not isinstance(reason, Mapping) or not isinstance(reason.get("code"), str):
            raise CdsRequestError(400, f"{where}.overrideReason.reason must be a Coding")
        if reason.get("system") == OVERRIDE_REASON_SYSTEM and reason["code"] not in known:
            raise CdsRequestError(400, f"{where}.overrideReason.reason is not one of the offered reasons")
        display = reason.get("display")
        parsed["reason"] = {
            "system": str(reason.get("system") or ""),
            "code": reason["code"][:100],
            "display": str(display)[:200] if isinstance(display, str) else None,
        }
    if comment is not None:
        if not isinstance(comment, str):
            raise CdsRequestError(400, f"{where}.overrideReason.userComment must be a string")
        parsed["userComment"] = comment[:1000]
    return parsed


def record_feedback(
    db: Database,
    audit: AuditHook,
    items: list[dict[str, Any]],
    client_iss: str,
    service_ids: frozenset[str],
    now: datetime,
) -> int:
    """Record each item against its card; return how many were new. Raise a 404 for an unknown card."""
    uuids = {item["card"] for item in items}
    with db.session() as session:
        cards = {
            card.uuid: _row(card)
            for card in session.scalars(select(IssuedCard).where(IssuedCard.uuid.in_(uuids)))
            if card.client_iss == client_iss and card.service_id in service_ids
        }
    if uuids - cards.keys():
        raise CdsRequestError(404, "feedback names a card this service did not issue to this client")
    recorded = 0
    for item in items:
        card = cards[item["card"]]
        stamp = datetime.fromisoformat(item["outcomeTimestamp"])
        if card["feedback_outcome"] == item["outcome"] and card["feedback_at"] == stamp:
            continue  # the same report again: already recorded
        # The audit write takes the chain lock in its own transaction, so it must not run inside ours.
        audit.feedback(card, item)
        with db.engine.begin() as connection:
            connection.execute(
                update(IssuedCard)
                .where(IssuedCard.uuid == card["uuid"])
                .values(feedback_outcome=item["outcome"], feedback_at=stamp)
            )
        card["feedback_outcome"], card["feedback_at"] = item["outcome"], stamp
        recorded += 1
    return recorded


def _row(card: IssuedCard) -> dict[str, Any]:
    """Return a card row as the dict the audit hook reads."""
    return {column.name: getattr(card, column.name) for column in IssuedCard.__table__.columns}
