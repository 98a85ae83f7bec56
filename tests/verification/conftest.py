"""The verification tests run twice: on SQLite (``[sqlite]``) and on PostgreSQL (``[postgresql]``).

``app`` overrides tests/conftest.py's: the same app, on a fresh SQLite file or on this session's
PostgreSQL database (skipped without ITB_TEST_DATABASE_URL; see tests/pg_support.py). The app's
migrations create the PostgreSQL schema once per session; every table but the append-only audit log is
emptied after each test, so tests that read the audit log count only their own records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from plugin.db import Database
from plugin.migrations_runner import upgrade
from tests.pg_support import BACKENDS, app_on, empty_app_tables, fresh_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Create this session's PostgreSQL database, migrated to head; drop it at the end (or skip)."""
    with fresh_database() as url:
        upgrade(url)  # here, not by the first app: tests on a bare Database need the schema too
        yield url


@pytest.fixture(params=BACKENDS)
def app(
    request: pytest.FixtureRequest, tmp_path: Path, registry_entries: list[dict[str, Any]]
) -> Iterator[Flask]:
    """Create the app with keys in a temporary instance folder, on SQLite or on PostgreSQL."""
    config = {"TESTING": True, "SECRET_KEY": "test-secret-key", "EHR_REGISTRY": registry_entries}
    with app_on(request, tmp_path, config) as app:
        yield app


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """Yield a bare Database on this session's PostgreSQL database, emptied after the test (or skip)."""
    db = Database(pg_url)
    try:
        yield db
    finally:
        empty_app_tables(db)
        db.dispose()
