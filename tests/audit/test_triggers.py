"""The append-only triggers: UPDATE, DELETE (and TRUNCATE on PostgreSQL) of audit_log are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from audit.helpers import create_audit_table, fill
from plugin.audit.models import AUDIT_TABLE
from plugin.audit.verify import verify_chain
from plugin.db import Database


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET verdict = 'pass' WHERE seq = 2",
        "UPDATE audit_log SET hash = hash",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
    ],
)
def test_update_and_delete_are_refused(any_db: Database, statement: str) -> None:
    fill(any_db, 5)
    with pytest.raises(DBAPIError, match="append-only"), any_db.engine.begin() as connection:
        connection.exec_driver_sql(statement)
    assert verify_chain(any_db).ok and verify_chain(any_db).count == 5


@pytest.mark.postgres
def test_truncate_is_refused_on_postgres(pg_db: Database) -> None:
    fill(pg_db, 3)
    with pytest.raises(DBAPIError, match="append-only"), pg_db.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE audit_log")
    with pg_db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AUDIT_TABLE)) == 3


def test_installing_the_triggers_twice_is_harmless(any_db: Database) -> None:
    create_audit_table(any_db)
    fill(any_db, 2)
    with pytest.raises(DBAPIError, match="append-only"), any_db.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_log")
