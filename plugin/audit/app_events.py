"""The app's audit events: one function per thing that happened, called from the views and services.

Each builds an ``AuditEntry`` from the launch (who, role, patient, EHR) and appends it to the chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypedDict, Unpack

from flask import g, has_request_context

from plugin.audit.log import AuditEntry, record
from plugin.db import get_db
from plugin.domain.result import CheckResult
from plugin.launches.models import Launch


def request_id() -> str:
    """Return this request's id (one per request, shared by all its audit rows)."""
    if not has_request_context():
        return str(uuid.uuid4())
    if not getattr(g, "request_id", None):
        g.request_id = str(uuid.uuid4())
    return str(g.request_id)


def _actor(launch: Launch) -> tuple[str, str]:
    role = launch.role if launch.role in ("clinician", "pharmacist", "auditor") else "clinician"
    return launch.fhir_user or f"unknown-user@{launch.client_id}", role


def entry(
    launch: Launch,
    action: str,
    *,
    result: CheckResult | None = None,
    related: Sequence[str] = (),
    override_code: str | None = None,
    override_text: str | None = None,
    detail: dict[str, object] | None = None,
    dose_before: float | None = None,
    dose_after: float | None = None,
) -> AuditEntry:
    """Return one audit entry about ``launch``'s patient (``audit`` appends it at once)."""
    actor, role = _actor(launch)
    if result is not None:
        dose_before = result.current_daily_dose_ug if dose_before is None else dose_before
        dose_after = result.proposed_daily_dose_ug if dose_after is None else dose_after
    return AuditEntry(
        actor=actor,
        actor_role=role,
        action=action,
        patient_id=launch.patient_id,
        iss=launch.iss,
        dose_before_ug_per_day=dose_before,
        dose_after_ug_per_day=dose_after,
        verdict=result.verdict.value if result else None,
        finding_codes=tuple(f.code for f in result.findings) if result else (),
        override_reason_code=override_code,
        override_reason_text=override_text,
        related=tuple(related),
        request_id=request_id(),
        detail=detail or {},
    )


class EntryFields(TypedDict, total=False):
    """``entry``'s optional keyword arguments, for the functions that pass them on."""

    result: CheckResult | None
    related: Sequence[str]
    override_code: str | None
    override_text: str | None
    detail: dict[str, object] | None
    dose_before: float | None
    dose_after: float | None


def audit(launch: Launch, action: str, **fields: Unpack[EntryFields]) -> None:
    """Append one audit record about ``launch``'s patient, in its own transaction."""
    record(get_db(), entry(launch, action, **fields))
