"""Fault injection: failing requests and writes, a write that hangs after it was stored, latency, outages."""

from __future__ import annotations

import time
from typing import Any

from flask.testing import FlaskClient

from .conftest import bearer, token_for

NOTE = {
    "resourceType": "DocumentReference",
    "status": "current",
    "subject": {"reference": "Patient/tp-1"},
    "identifier": [{"system": "urn:itb:check", "value": "fault-1"}],
    "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
}


def _stored(client: FlaskClient, headers: dict[str, str]) -> int:
    """How many notes with the test identifier exist."""
    response = client.get("/full/fhir/DocumentReference?identifier=urn:itb:check|fault-1", headers=headers)
    return int(response.json["total"])


def test_next_requests_fail_with_503_from_config(make_app: Any) -> None:
    client = make_app(fail_next_requests=2).test_client()
    headers = bearer(token_for(client))
    codes = [client.get("/full/fhir/Patient/tp-1", headers=headers).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_failed_write_stores_nothing(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    assert client.post("/_sandbox/faults", json={"fail_next_writes": 1}).status_code == 200
    failed = client.post("/full/fhir/DocumentReference", json=NOTE, headers=headers)
    assert failed.status_code == 500 and failed.json["resourceType"] == "OperationOutcome"
    assert _stored(client, headers) == 0
    assert client.post("/full/fhir/DocumentReference", json=NOTE, headers=headers).status_code == 201


def test_write_that_times_out_was_stored_first(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    client.post("/_sandbox/faults", json={"timeout_next_write": True, "hang_seconds": 0.3})
    started = time.monotonic()
    response = client.post(
        "/full/fhir/DocumentReference",
        json=NOTE,
        headers={**headers, "If-None-Exist": "identifier=urn:itb:check|fault-1"},
    )
    assert time.monotonic() - started >= 0.3 and response.status_code == 201
    retry = client.post(
        "/full/fhir/DocumentReference",
        json=NOTE,
        headers={**headers, "If-None-Exist": "identifier=urn:itb:check|fault-1"},
    )
    assert retry.status_code == 200 and _stored(client, headers) == 1


def test_latency_and_offline_tenant(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    client.post("/_sandbox/faults", json={"latency_ms": 100, "offline_tenants": ["epic-like"]})
    started = time.monotonic()
    assert client.get("/full/fhir/Patient/tp-1", headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.1
    down = client.get("/epic-like/fhir/metadata")
    assert down.status_code == 503 and down.headers["Retry-After"]
    state = client.post("/_sandbox/faults", json={"reset": True}).json
    assert state["latency_ms"] == 0 and state["offline_tenants"] == []


def test_faults_endpoint_is_off_unless_allowed_and_rejects_unknown_settings(
    make_app: Any, client: FlaskClient
) -> None:
    assert client.post("/_sandbox/faults", json={"explode": 1}).status_code == 400
    closed = make_app(allow_faults=False).test_client()
    assert closed.post("/_sandbox/faults", json={"fail_next_writes": 1}).status_code == 404
