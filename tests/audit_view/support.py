"""Rows for the auditor's-view tests: launches with handles (any role) and audit records at set times."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from plugin.audit.log import AuditEntry, record
from plugin.audit.models import AUDIT_TABLE, record_as_dict
from plugin.db import Database
from plugin.launches.crypto import sha256_hex
from plugin.launches.models import Launch
from tests.conftest import SANDBOX_ISS

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CLINICIAN = "Practitioner/clinician-1"
PHARMACIST = "Practitioner/pharmacist-1"
AUDITOR = "Practitioner/auditor-1"


def make_launch(app: Flask, *, role: str, fhir_user: str, patient_id: str = "p1") -> tuple[Launch, str]:
    """Store a live launch with ``role`` and return it with its opaque handle."""
    handle = secrets.token_urlsafe(16)
    now = datetime.now(UTC)
    launch = Launch(
        id=str(uuid.uuid4()),
        handle_hash=sha256_hex(handle),
        iss=SANDBOX_ISS,
        client_id="itb-test",
        patient_id=patient_id,
        fhir_user=fhir_user,
        role=role,
        scope="launch patient/*.rs",
        tokens_enc=app.extensions["itb.cipher"].seal({"access_token": "AT", "expires_at": now.isoformat()}),
        access_expires_at=now + timedelta(hours=1),
        created_at=now,
        expires_at=now + timedelta(hours=8),
    )
    with app.extensions["itb.db"].session() as session:
        session.add(launch)
    return launch, handle


def add(db: Database, minutes: int, action: str, **fields: Any) -> None:
    """Append one audit record ``minutes`` after START (clinician-1 on patient p1 unless told otherwise)."""
    values: dict[str, Any] = {
        "actor": CLINICIAN,
        "actor_role": "clinician",
        "patient_id": "p1",
        "iss": SANDBOX_ISS,
    }
    values.update(fields)
    record(db, AuditEntry(action=action, **values), now=START + timedelta(minutes=minutes))


def add_dose_change(
    db: Database,
    minutes: int,
    change_id: str,
    *,
    patient_id: str = "p1",
    before: float = 400.0,
    after: float = 480.0,
    verdict: str = "pass",
    override: str | None = None,
    verified_by: str | None = None,
) -> None:
    """Record a whole dose change as the app does: check, proposal, optional override and verification."""
    related = [f"DoseChange/{change_id}"]
    common: dict[str, Any] = {
        "patient_id": patient_id,
        "dose_before_ug_per_day": before,
        "dose_after_ug_per_day": after,
        "verdict": verdict,
        "related": related,
    }
    findings = ["dose-above-typical"] if verdict == "warn" else []
    add(db, minutes, "check.run", finding_codes=findings, **common)
    add(db, minutes, "dose-change.propose", finding_codes=findings, **common)
    if override:
        add(
            db,
            minutes,
            "dose-change.override",
            override_reason_code=override,
            override_reason_text="spasms wake the patient",
            **common,
        )
    add(db, minutes, "writeback.filed", patient_id=patient_id, related=[*related, "DocumentReference/7"])
    if verified_by:
        add(
            db,
            minutes + 30,
            "verification.verify",
            actor=verified_by,
            actor_role="pharmacist",
            patient_id=patient_id,
            related=related,
        )


def records(db: Database, action: str | None = None) -> list[dict[str, Any]]:
    """Return every audit record (of ``action``), oldest first."""
    query = select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.seq)
    if action:
        query = query.where(AUDIT_TABLE.c.action == action)
    with db.engine.connect() as connection:
        return [record_as_dict(dict(row)) for row in connection.execute(query).mappings()]
