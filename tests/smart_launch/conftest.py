"""Shared fixtures for the smart_launch tests: a fixed clock, an EHR's smart-configuration, test keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from smart_launch_support import ISS, smart_configuration_document

from smart_launch import fhir_client, id_token
from smart_launch.discovery import SmartConfiguration, parse_configuration
from smart_launch.keys import KeySet


@pytest.fixture
def now() -> datetime:
    """Return the fixed moment the tests run at."""
    return datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def config() -> SmartConfiguration:
    """Return the EHR's parsed smart-configuration."""
    return parse_configuration(ISS, smart_configuration_document())


@pytest.fixture(scope="session")
def es384_keys() -> KeySet:
    """Return an ES384 KeySet generated for this test run."""
    return KeySet.generate("ES384")


@pytest.fixture(scope="session")
def rs384_keys() -> KeySet:
    """Return an RS384 KeySet generated for this test run."""
    return KeySet.generate("RS384")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Start every test with empty CapabilityStatement and JWKS caches."""
    fhir_client.clear_capabilities_cache()
    id_token.clear_jwks_cache()
    yield
    fhir_client.clear_capabilities_cache()
    id_token.clear_jwks_cache()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the FHIR client's retry waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(fhir_client, "_sleep", waits.append)
    return waits
