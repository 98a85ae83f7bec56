"""The app's schema on PostgreSQL: every migration runs, the head is current, audit_log is append-only."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from plugin.audit.log import AuditEntry, record
from plugin.audit.verify import verify_chain
from plugin.db import Base
from plugin.migrations_runner import is_current, upgrade

pytestmark = pytest.mark.postgres


def test_create_app_runs_every_migration(app: Flask, pg_url: str) -> None:
    assert is_current(pg_url)
    db = app.extensions["itb.db"]
    tables = set(inspect(db.engine).get_table_names())
    import plugin.models_index  # noqa: F401  (every model on Base.metadata, as Alembic sees them)

    assert set(Base.metadata.tables) <= tables
    upgrade(pg_url)  # a second upgrade is a no-op
    assert is_current(pg_url)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET verdict = 'pass'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_audit_log_refuses_changes(app: Flask, statement: str) -> None:
    db = app.extensions["itb.db"]
    record(
        db,
        AuditEntry(
            actor="Practitioner/clinician-1",
            actor_role="clinician",
            action="check.run",
            patient_id="sci-adult",
            verdict="warn",
        ),
    )
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as connection:
        connection.exec_driver_sql(statement)
    assert verify_chain(db).ok
