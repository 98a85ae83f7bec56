"""Helpers for tests that also run on PostgreSQL: a throwaway database per session, emptied between tests.

``ITB_TEST_DATABASE_URL`` (``scripts/test.sh`` exports it) names a server and a role that may create
databases; without it the PostgreSQL variants skip. ``fresh_database`` creates ``itb_pg_<random>`` and
drops it at the end. Tests share it, so ``empty_app_tables`` empties every table after each test but
the append-only ``audit_log`` (its triggers refuse TRUNCATE) and Alembic's ``alembic_version``: a test
that reads the audit log must count only its own rows.

Imported as ``tests.pg_support`` by the conftest files of the suites that use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, make_url, text

from plugin.app import create_app
from plugin.db import Database

ENV_VAR = "ITB_TEST_DATABASE_URL"
SKIP_REASON = f"{ENV_VAR} is not set (scripts/test.sh or scripts/postgres/start.sh starts one)"
# Tables never emptied between tests: the append-only audit log (TRUNCATE is refused) and Alembic's.
KEPT_TABLES = frozenset({"audit_log", "alembic_version"})
# pytest.param for a fixture parametrized over both backends: ids ``sqlite`` and ``postgresql``.
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))


def admin_url() -> str:
    """Return ITB_TEST_DATABASE_URL, or skip the test."""
    url = os.environ.get(ENV_VAR, "")
    if not url:
        pytest.skip(SKIP_REASON)
    return url


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create a uniquely named database on the test server; yield its URL; drop it at the end (or skip)."""
    base_url = admin_url()
    name = f"itb_pg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def empty_app_tables(db: Database) -> None:
    """Delete every row of the app's tables except the append-only audit log (and Alembic's version).

    A connection a test left idle in a transaction would block TRUNCATE for good: fail after 10 s.
    """
    with db.engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
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


@contextmanager
def app_on(
    request: pytest.FixtureRequest, tmp_path: Path, config: dict[str, Any], pg_url_fixture: str = "pg_url"
) -> Iterator[Flask]:
    """Yield the app with ``config`` on the backend of ``request.param`` (a ``BACKENDS`` parameter).

    On PostgreSQL the database is the one the ``pg_url_fixture`` fixture yields, emptied afterwards.
    """
    config = dict(config)
    if request.param == "postgresql":
        config["DATABASE_URL"] = request.getfixturevalue(pg_url_fixture)
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    db: Database = app.extensions["itb.db"]
    assert db.is_postgres == (request.param == "postgresql")
    try:
        yield app
    finally:
        if db.is_postgres:
            empty_app_tables(db)
        db.dispose()
