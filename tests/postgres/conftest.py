"""Fixtures for the PostgreSQL tests: a fresh database per session, and the app on it.

``ITB_TEST_DATABASE_URL`` (``scripts/test.sh`` exports it) names a server and a role that may create
databases; without it every test here skips. The session creates ``itb_pg_<random>``, the app's
migrations run into it when the first app is created, and the database is dropped at the end. Tests
share it, so ``app`` empties every table but the append-only ``audit_log`` after each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, make_url, text

from plugin.app import create_app
from plugin.db import Database

# Tables never emptied between tests: the append-only audit log (TRUNCATE is refused) and Alembic's.
KEPT_TABLES = frozenset({"audit_log", "alembic_version"})


def _admin_url() -> str:
    """Return ITB_TEST_DATABASE_URL, or skip."""
    url = os.environ.get("ITB_TEST_DATABASE_URL", "")
    if not url:
        pytest.skip(
            "ITB_TEST_DATABASE_URL is not set (scripts/test.sh or scripts/postgres/start.sh starts one)"
        )
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Create a uniquely named database for this session; yield its URL; drop it at the end."""
    admin_url = _admin_url()
    name = f"itb_pg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _empty_app_tables(db: Database) -> None:
    """Delete every row of the app's tables except the append-only audit log."""
    with db.engine.begin() as connection:
        tables = sorted(
            set(
                connection.scalars(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            )
            - KEPT_TABLES
        )
        if tables:
            connection.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))


@pytest.fixture
def app(tmp_path: Path, registry_entries: list[dict[str, Any]], pg_url: str) -> Iterator[Flask]:
    """Create the app on the session's PostgreSQL database (migrations run on first use)."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "EHR_REGISTRY": registry_entries,
            "DATABASE_URL": pg_url,
        },
        instance_path=str(tmp_path / "instance"),
    )
    db: Database = app.extensions["itb.db"]  # kept: a test may swap in another (e.g. a dead one)
    assert db.is_postgres
    yield app
    _empty_app_tables(db)
    db.dispose()
