"""Fixtures for the write-back tests: a temp database, a fake EHR on ``responses``, a real FhirClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from writeback_support import BASE, FULL_CAPS, FakeEhr

from plugin.db import Base, Database
from plugin.writeback import models  # noqa: F401  (registers OutboxItem on Base.metadata)
from smart_launch import fhir_client
from smart_launch.fhir_client import FhirClient


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """Yield a fresh SQLite database file with every table created."""
    database = Database(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    Base.metadata.create_all(database.engine)
    yield database
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
