"""Fixtures for the contract tests: ``fhir_server`` is a real HAPI FHIR server and the sandbox EHR's store.

HAPI's base URL comes from ``ITB_TEST_FHIR_BASE`` (``scripts/test.sh`` starts one); without it the HAPI
half skips. The sandbox is started here on a free port, with no seed: both servers get the sandbox
patients the same way, one transaction per patient (dates shifted to today like the sandbox's seeding).
The ``$validate`` summary per resource type is printed at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from contract.support import (
    PATIENT_IDS,
    VALIDATE_TALLY,
    FhirServer,
    sandbox_user_token,
    shifted_bundle,
    users_bundle,
)
from smart_launch.fhir_client import FhirClient
from smart_launch.sandbox import SandboxConfig, create_sandbox_app, serve_in_thread

SERVERS = ("hapi", "sandbox")


def _hapi() -> Iterator[FhirServer]:
    """Yield the HAPI server named by ITB_TEST_FHIR_BASE (no auth), or skip."""
    base = os.environ.get("ITB_TEST_FHIR_BASE", "").rstrip("/")
    if not base:
        pytest.skip("ITB_TEST_FHIR_BASE is not set (scripts/test.sh or scripts/hapi/start.sh starts HAPI)")
    metadata = requests.get(f"{base}/metadata", headers={"Accept": "application/fhir+json"}, timeout=30)
    assert metadata.status_code == 200, f"HAPI at {base} answered {metadata.status_code} to /metadata"
    client = FhirClient(base, None, max_retries=1)
    try:
        yield FhirServer("hapi", base, None, client)
    finally:
        client.close()


def _sandbox() -> Iterator[FhirServer]:
    """Start the sandbox EHR unseeded on a free port; yield its 'full' tenant with a user-level token."""
    config = SandboxConfig(seed=False, token_lifetime_seconds=6 * 3600)
    handle = serve_in_thread(create_sandbox_app(config))
    try:
        token = sandbox_user_token(handle.url)
        base = f"{handle.url}/full/fhir"
        client = FhirClient(base, lambda: token, max_retries=1)
        try:
            yield FhirServer("sandbox", base, token, client)
        finally:
            client.close()
    finally:
        handle.shutdown()


@pytest.fixture(scope="session")
def hapi_server() -> Iterator[FhirServer]:
    """Yield the HAPI server (skips without ITB_TEST_FHIR_BASE)."""
    yield from _hapi()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[FhirServer]:
    """Yield the sandbox store, started for this session."""
    yield from _sandbox()


@pytest.fixture(scope="session", params=SERVERS)
def fhir_server(request: pytest.FixtureRequest) -> FhirServer:
    """Return (name, base_url, token or None, FhirClient) for HAPI and for the sandbox store."""
    server: FhirServer = request.getfixturevalue(f"{request.param}_server")
    return server


_LOADED: set[str] = set()


def _load(server: FhirServer) -> FhirServer:
    """Load the sandbox users and every sandbox patient into the server, once per session."""
    if server.name in _LOADED:
        return server
    answer = server.client.transaction(users_bundle())
    assert all(e["response"]["status"].startswith(("200", "201")) for e in answer["entry"])
    for patient_id in PATIENT_IDS:
        answer = server.client.transaction(shifted_bundle(patient_id))
        statuses = {e["response"]["status"].split()[0] for e in answer["entry"]}
        assert statuses <= {"200", "201"}, (server.name, patient_id, statuses)
    _LOADED.add(server.name)
    return server


@pytest.fixture(scope="session")
def loaded_server(fhir_server: FhirServer) -> FhirServer:
    """Return the server under contract with the sandbox users and patients loaded."""
    return _load(fhir_server)


@pytest.fixture(scope="session")
def loaded_hapi(hapi_server: FhirServer) -> FhirServer:
    """Return HAPI alone (for $validate, which the sandbox lacks) with the patients loaded."""
    return _load(hapi_server)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the ``$validate`` summary per resource type, so the CI log shows it without ``-s``."""
    lines = VALIDATE_TALLY.lines()
    if lines:
        terminalreporter.write_sep("=", "FHIR $validate against HAPI")
        for line in lines:
            terminalreporter.write_line(line)
