"""Fixtures for the PostgreSQL tests: a fresh database per session, and the app on it (tests/pg_support.py).

``ITB_TEST_DATABASE_URL`` (``scripts/test.sh`` exports it) names a server and a role that may create
databases; without it every test here skips. The session creates ``itb_pg_<random>``, the app's
migrations run into it when the first app is created, and the database is dropped at the end. Tests
share it, so ``app`` empties every table but the append-only ``audit_log`` after each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from plugin.app import create_app
from plugin.db import Database
from tests.pg_support import empty_app_tables, fresh_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Create a uniquely named database for this session; yield its URL; drop it at the end."""
    with fresh_database() as url:
        yield url


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
    empty_app_tables(db)
    db.dispose()
