"""Rows built directly for the verification tests: launches with handles, dose changes, outbox rows."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from plugin.audit.models import AuditRecord
from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import chart_from_bundle
from plugin.launches.crypto import sha256_hex
from plugin.launches.models import Launch
from plugin.verification.models import DoseChangeInputs
from plugin.verification.review import Review
from plugin.writeback.models import OutboxItem
from plugin.writeback.resources import WRITE_IDENTIFIER_SYSTEM
from tests.conftest import SANDBOX_ISS

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PRESCRIBER = "Practitioner/clinician-1"
PHARMACIST = "Practitioner/pharmacist-1"
OTHER_PHARMACIST = "Practitioner/pharmacist-2"
SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "dose-ug-per-day.json"
SUMMARY = {
    "concentration_ug_per_ml": 2000.0,
    "reservoir_volume_ml": 20.0,
    "volume_remaining_ml": 12.0,
    "alarm_volume_ml": 2.0,
    "low_reservoir_alarm_date": "2026-12-10T10:00:00+00:00",
    "next_refill_date": "2026-12-20",
}


def scenario_chart(now: datetime = NOW) -> Chart:
    """Return the chart of tests/scenarios/dose-ug-per-day.json (Patient/p1, 400 ug/d)."""
    return chart_from_bundle(json.loads(SCENARIO.read_text()), codes=load_code_sets(), now=now)


def make_launch(
    app: Flask,
    *,
    patient_id: str = "p1",
    fhir_user: str | None = PHARMACIST,
    role: str = "pharmacist",
    iss: str = SANDBOX_ISS,
) -> tuple[Launch, str]:
    """Store a live launch and return it with its opaque handle."""
    handle = secrets.token_urlsafe(16)
    launch = Launch(
        id=str(uuid.uuid4()),
        handle_hash=sha256_hex(handle),
        iss=iss,
        client_id="itb-test",
        patient_id=patient_id,
        fhir_user=fhir_user,
        role=role,
        scope="launch patient/*.rs",
        tokens_enc=app.extensions["itb.cipher"].seal({"access_token": "AT", "expires_at": NOW.isoformat()}),
        access_expires_at=datetime.now(UTC) + timedelta(hours=1),
        created_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(hours=8),
    )
    with app.extensions["itb.db"].session() as session:
        session.add(launch)
    return launch, handle


def check_json(
    verdict: str = "pass",
    patient_id: str = "p1",
    findings: list[dict[str, Any]] | None = None,
    current: float = 400.0,
    proposed: float = 440.0,
) -> dict[str, Any]:
    """Return a CONTRACT §3 check result."""
    return {
        "verdict": verdict,
        "patient": f"Patient/{patient_id}",
        "evaluated_at": NOW.isoformat(),
        "current_dose": {"value": current, "unit": "ug/d", "source": "MedicationStatement/itb-dose"},
        "proposed_dose": {"value": proposed, "unit": "ug/d"},
        "change_percent": (proposed / current - 1) * 100,
        "origin": "spinal",
        "phase": "maintenance",
        "rules_version": "test",
        "findings": findings if findings is not None else [],
    }


def change_record(
    *,
    patient_id: str = "p1",
    verdict: str = "pass",
    prescriber: str | None = PRESCRIBER,
    submitted_at: datetime = NOW,
    status: str = "proposed",
    iss: str = SANDBOX_ISS,
    findings: list[dict[str, Any]] | None = None,
    submission_id: str | None = None,
) -> DoseChangeRecord:
    """Return a new (unsaved) dose change, version 1."""
    result = check_json(verdict, patient_id, findings)
    return DoseChangeRecord(
        id=str(uuid.uuid4()),
        launch_id=str(uuid.uuid4()),
        iss=iss,
        patient_id=patient_id,
        prescriber=prescriber,
        submitted_at=submitted_at,
        current_dose_ug_per_day=400.0,
        proposed_dose_ug_per_day=440.0,
        verdict=verdict,
        finding_codes=json.dumps([f["code"] for f in result["findings"]]),
        check_json=json.dumps(result),
        note_text="INTRATHECAL BACLOFEN DOSE CHANGE\nNew dose: 440 mcg/day",
        outbox_submission_id=submission_id or str(uuid.uuid4()),
        status=status,
        version=1,
        attested=False,
    )


def make_change(
    db: Database,
    *,
    patient_id: str = "p1",
    verdict: str = "pass",
    prescriber: str | None = PRESCRIBER,
    submitted_at: datetime = NOW,
    status: str = "proposed",
    iss: str = SANDBOX_ISS,
    findings: list[dict[str, Any]] | None = None,
    note_server_id: str | None = "note-1",
    outbox_submission_id: str | None = None,
) -> DoseChangeRecord:
    """Store a dose change with its clinician-note outbox rows (DocumentReference, one DetectedIssue), or
    for a clinician's submission already queued (``outbox_submission_id``, no rows added)."""
    record = change_record(
        patient_id=patient_id,
        verdict=verdict,
        prescriber=prescriber,
        submitted_at=submitted_at,
        status=status,
        iss=iss,
        findings=findings,
        submission_id=outbox_submission_id,
    )
    change_id, submission_id = record.id, record.outbox_submission_id
    note_id, issue_id = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        ("DocumentReference", note_id, note_server_id, {"status": "current"}),
        ("DetectedIssue", issue_id, "issue-1", {"status": "final", "code": {"text": "dose-above-typical"}}),
    ]
    with db.session() as session:
        session.add(record)
        session.add(DoseChangeInputs(dose_change_id=change_id, chart_summary_json=json.dumps(SUMMARY)))
        for seq, (kind, write_id, server_id, body) in enumerate([] if outbox_submission_id else rows):
            payload = {
                "resourceType": kind,
                "identifier": [{"system": WRITE_IDENTIFIER_SYSTEM, "value": write_id}],
                **body,
            }
            session.add(
                OutboxItem(
                    id=write_id,
                    submission_id=submission_id,
                    seq=seq,
                    launch_id=record.launch_id,
                    iss=iss,
                    patient_id=patient_id,
                    resource_type=kind,
                    payload=json.dumps(payload),
                    status="confirmed" if server_id else "pending",
                    server_id=server_id,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    return record


def stored_review(record: DoseChangeRecord, rerun: dict[str, Any] | None = None) -> Review:
    """Return a review without a chart (as from another patient's launch) or with a given re-run."""
    from plugin.domain.rules_config import load_rules
    from plugin.verification.compare import calculate, diff_checks

    submitted = json.loads(record.check_json)
    calc = calculate(
        record.current_dose_ug_per_day,
        record.proposed_dose_ug_per_day,
        SUMMARY,
        record.submitted_at,
        load_rules(),
    )
    diff = diff_checks(submitted, rerun) if rerun else None
    return Review(submitted, rerun, diff, calc, None, None if rerun else "not re-run")


def audit_seq(db: Database) -> int:
    """Return the seq of the newest audit record (0 when there is none): the mark to count from.

    On PostgreSQL the append-only audit log keeps earlier tests' records, so a test reads only what
    follows its own mark."""
    with db.session() as session:
        return int(session.scalar(select(func.max(AuditRecord.seq))) or 0)


def audit_actions(db: Database, after: int) -> list[tuple[str, dict[str, Any]]]:
    """Return (action, detail) of every audit record written after seq ``after``, oldest first."""
    with db.session() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.seq > after).order_by(AuditRecord.seq)
        ).all()
        return [(r.action, json.loads(r.detail)) for r in rows]
