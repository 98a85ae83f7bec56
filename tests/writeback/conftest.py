"""Fixtures for the write-back tests: a temp database, a fake EHR on ``responses``, a real FhirClient.

``db`` runs each test twice: on a fresh SQLite file (``[sqlite]``) and on the session's PostgreSQL
database migrated to head (``[postgresql]``, skipped without ITB_TEST_DATABASE_URL; see
tests/pg_support.py). PostgreSQL keeps the append-only audit log between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from writeback_support import BASE, FULL_CAPS, FakeEhr

# Every table, not just the outbox's: ``run_round`` audits, reading the dose-change tables (a module
# run alone would otherwise lack them).
from plugin import models_index  # noqa: F401  (registers every model on Base.metadata)
from plugin.db import Base, Database
from plugin.migrations_runner import upgrade
from smart_launch import fhir_client
from smart_launch.fhir_client import FhirClient
from tests.pg_support import BACKENDS, empty_app_tables, fresh_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Create this session's PostgreSQL database, migrated to head; drop it at the end (or skip)."""
    with fresh_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Yield a fresh SQLite file with every table created, or the session's PostgreSQL database with
    its tables emptied after the test (the audit log excepted)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
        Base.metadata.create_all(database.engine)
        yield database
        database.dispose()
        return
    database = Database(request.getfixturevalue("pg_url"))
    try:
        yield database
    finally:
        empty_app_tables(database)
        database.dispose()


@pytest.fixture(autouse=True)
def _no_sleep_no_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never really sleep in the client's retries, and forget cached CapabilityStatements."""
    monkeypatch.setattr(fhir_client, "_sleep", lambda seconds: None)
    fhir_client.clear_capabilities_cache()
    yield
    fhir_client.clear_capabilities_cache()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Yield an active ``responses`` mock; unmatched requests fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def ehr(rsps: responses.RequestsMock) -> FakeEhr:
    """Return a fake EHR that can create every type the app writes, with conditional create."""
    return FakeEhr(rsps, FULL_CAPS)


@pytest.fixture
def client() -> Iterator[FhirClient]:
    """Yield a real FhirClient for the fake EHR."""
    fhir = FhirClient(BASE, lambda: "AT-1", max_retries=1)
    yield fhir
    fhir.close()
