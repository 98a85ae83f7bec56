"""Helpers for the audit tests: entries, filled chains, an attacker's tampering, PostgreSQL schemas.

``write_in_process`` lives here (not in a test module) so ``multiprocessing`` spawn children can import it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, make_url

from plugin.audit.ddl import drop_triggers, install_triggers
from plugin.audit.log import AuditEntry, record
from plugin.audit.models import AUDIT_TABLE
from plugin.db import Base, Database

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ACTIONS = ("launch.read-record", "check.run", "dose-change.propose", "writeback.filed", "verification.verify")


def make_entry(index: int, *, patient_id: str = "123", actor: str = "Practitioner/pr-1") -> AuditEntry:
    """Return a varied but realistic audit entry (number ``index``)."""
    action = ACTIONS[index % len(ACTIONS)]
    return AuditEntry(
        actor=actor,
        actor_role="pharmacist" if action.startswith("verification") else "clinician",
        action=action,
        patient_id=patient_id,
        iss="https://ehr.example.org/fhir",
        dose_before_ug_per_day=400.0,
        dose_after_ug_per_day=400.0 + index,
        verdict="warn" if index % 2 else "pass",
        finding_codes=["cns-depressant", "origin-unknown"] if index % 2 else [],
        override_reason_code="clinical-judgement" if index % 3 == 0 else None,
        override_reason_text="Spasms wake the patient; «reviewed» with the team" if index % 3 == 0 else None,
        related=[f"MedicationRequest/mr-{index}", "MedicationStatement/abc"],
        request_id=f"req-{index}",
        detail={"phase": "maintenance", "change_percent": round(index / 4, 2), "index": index},
    )


def fill(db: Database, count: int, **kwargs: str) -> None:
    """Append ``count`` entries, one minute apart from START."""
    for index in range(count):
        record(db, make_entry(index, **kwargs), now=START + timedelta(minutes=index))


def create_audit_table(db: Database) -> None:
    """Create audit_log and its append-only triggers (a no-op where they exist)."""
    Base.metadata.create_all(db.engine, tables=[AUDIT_TABLE])
    with db.engine.begin() as connection:
        install_triggers(connection)


def tamper(db: Database, *statements: str) -> None:
    """Run SQL as an attacker with DDL rights would: drop the append-only triggers, then change rows."""
    with db.engine.begin() as connection:
        drop_triggers(connection)
        for statement in statements:
            connection.exec_driver_sql(statement)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """Yield ITB_TEST_DATABASE_URL scoped to a fresh schema (via search_path), dropped afterwards."""
    base_url = os.environ["ITB_TEST_DATABASE_URL"]
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def write_in_process(url: str, worker: int, count: int) -> None:
    """Append ``count`` entries from a separate process (its own engine and pool)."""
    db = Database(url)
    try:
        for index in range(count):
            record(db, make_entry(index, actor=f"Practitioner/worker-{worker}"))
    finally:
        db.dispose()
