"""Fixtures for the audit tests: an empty audit table on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.helpers import create_audit_table, postgres_schema_url
from plugin.db import Database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """Return a file SQLite database with an empty, trigger-protected audit_log."""
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    create_audit_table(db)
    yield db
    db.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """Return a PostgreSQL URL scoped to a fresh schema; skip without ITB_TEST_DATABASE_URL."""
    if not os.environ.get("ITB_TEST_DATABASE_URL"):
        pytest.skip("ITB_TEST_DATABASE_URL is not set (scripts/postgres/start.sh starts a server)")
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """Return a PostgreSQL database (own schema) with an empty, trigger-protected audit_log."""
    db = Database(pg_url)
    create_audit_table(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """Return the audit database on each backend (PostgreSQL skipped when not configured)."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    db: Database = request.getfixturevalue(name)
    return db
