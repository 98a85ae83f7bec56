"""The sandbox's FHIR REST API: tokens and scopes, reads, writes, conditional create, If-Match, Bundles."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from .conftest import ROOT, Clock, bearer, token_for

FHIR = "application/fhir+json"
USER_ALL = "launch openid fhirUser user/*.cruds"


def _note(patient: str = "tp-1", identifier: str | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal DocumentReference, like the app's write-back."""
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
        **extra,
    }
    if identifier:
        resource["identifier"] = [{"system": "urn:itb:check", "value": identifier}]
    return resource


def test_fhir_api_requires_a_bearer_token(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        response = client.get("/full/fhir/Patient/tp-1", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json["resourceType"] == "OperationOutcome"


def test_metadata_needs_no_token_and_describes_the_server(client: FlaskClient) -> None:
    statement = client.get("/full/fhir/metadata").json
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["Observation"]["conditionalCreate"] is True
    assert resources["Observation"]["versioning"] == "versioned"
    assert {"patient", "code", "date", "status", "category"} <= {
        p["name"] for p in resources["Observation"]["searchParam"]
    }
    assert "MedicationStatement" in resources


def test_expired_token_is_refused(client: FlaskClient, clock: Clock) -> None:
    token = token_for(client)
    assert client.get("/full/fhir/Patient/tp-1", headers=bearer(token)).status_code == 200
    clock.advance(3601)
    assert client.get("/full/fhir/Patient/tp-1", headers=bearer(token)).status_code == 401


def test_read_sends_etag_and_meta(client: FlaskClient) -> None:
    response = client.get("/full/fhir/Patient/tp-1", headers=bearer(token_for(client)))
    assert response.status_code == 200 and response.mimetype == FHIR
    assert response.headers["ETag"] == 'W/"1"'
    assert response.json["meta"]["versionId"] == "1" and response.json["meta"]["lastUpdated"]
    missing = client.get("/full/fhir/Patient/nobody", headers=bearer(token_for(client, scope=USER_ALL)))
    assert missing.status_code == 404 and missing.json["resourceType"] == "OperationOutcome"


def test_patient_token_cannot_read_another_patient(client: FlaskClient) -> None:
    headers = bearer(token_for(client, patient="tp-1"))
    assert client.get("/full/fhir/Patient/tp-2", headers=headers).status_code == 403
    assert client.get("/full/fhir/Observation/tp-2-mas", headers=headers).status_code == 403
    assert client.get("/full/fhir/Medication/tp-1-med", headers=headers).status_code == 200


def test_patient_token_search_is_limited_to_its_patient(client: FlaskClient) -> None:
    headers = bearer(token_for(client, patient="tp-1"))
    bundle = client.get("/full/fhir/Observation", headers=headers).json
    assert bundle["total"] == 4
    assert {e["resource"]["subject"]["reference"] for e in bundle["entry"]} == {"Patient/tp-1"}
    other = client.get("/full/fhir/Observation?patient=tp-2", headers=headers).json
    assert other["total"] == 0
    everyone = client.get("/full/fhir/Observation", headers=bearer(token_for(client, scope=USER_ALL))).json
    assert everyone["total"] == 5


def test_scope_limits_types_and_interactions(client: FlaskClient) -> None:
    headers = bearer(token_for(client, scope="launch patient/Observation.rs"))
    assert client.get("/full/fhir/Observation?patient=tp-1", headers=headers).status_code == 200
    assert client.get("/full/fhir/Condition?patient=tp-1", headers=headers).status_code == 403
    response = client.post("/full/fhir/DocumentReference", json=_note(), headers=headers)
    assert response.status_code == 403
    read_only_v1 = bearer(token_for(client, scope="launch patient/*.read"))
    assert client.post("/full/fhir/DocumentReference", json=_note(), headers=read_only_v1).status_code == 403


def test_create_returns_201_location_etag_and_representation(client: FlaskClient) -> None:
    headers = bearer(token_for(client, scope="launch patient/DocumentReference.cr"))
    response = client.post("/full/fhir/DocumentReference", json=_note(), headers=headers)
    assert response.status_code == 201
    created = response.json
    assert response.headers["Location"] == f"{ROOT}/full/fhir/DocumentReference/{created['id']}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    assert client.get(f"/full/fhir/DocumentReference/{created['id']}", headers=headers).json == created
    minimal = client.post(
        "/full/fhir/DocumentReference", json=_note(), headers={**headers, "Prefer": "return=minimal"}
    )
    assert minimal.status_code == 201 and minimal.data == b""


def test_patient_token_cannot_write_for_another_patient(client: FlaskClient) -> None:
    headers = bearer(token_for(client, patient="tp-1"))
    assert client.post("/full/fhir/DocumentReference", json=_note("tp-2"), headers=headers).status_code == 403


def test_conditional_create_twice_makes_one_resource(client: FlaskClient) -> None:
    headers = {**bearer(token_for(client)), "If-None-Exist": "identifier=urn:itb:check|chk-1"}
    first = client.post("/full/fhir/DocumentReference", json=_note(identifier="chk-1"), headers=headers)
    second = client.post("/full/fhir/DocumentReference", json=_note(identifier="chk-1"), headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json["id"] == second.json["id"]
    found = client.get(
        "/full/fhir/DocumentReference?identifier=urn:itb:check|chk-1", headers=bearer(token_for(client))
    )
    assert found.json["total"] == 1


def test_conditional_create_with_several_matches_is_412(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    for _ in range(2):
        client.post("/full/fhir/DocumentReference", json=_note(identifier="dup"), headers=headers)
    response = client.post(
        "/full/fhir/DocumentReference",
        json=_note(identifier="dup"),
        headers={**headers, "If-None-Exist": "identifier=urn:itb:check|dup"},
    )
    assert response.status_code == 412 and response.json["resourceType"] == "OperationOutcome"


def test_update_with_if_match(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    created = client.post("/full/fhir/DocumentReference", json=_note(), headers=headers).json
    changed = {**created, "status": "superseded"}
    stale = client.put(
        f"/full/fhir/DocumentReference/{created['id']}",
        json=changed,
        headers={**headers, "If-Match": 'W/"7"'},
    )
    assert stale.status_code == 409 and stale.json["issue"][0]["code"] == "conflict"
    fresh = client.put(
        f"/full/fhir/DocumentReference/{created['id']}",
        json=changed,
        headers={**headers, "If-Match": 'W/"1"'},
    )
    assert fresh.status_code == 200 and fresh.headers["ETag"] == 'W/"2"'
    assert (
        client.get(f"/full/fhir/DocumentReference/{created['id']}/_history/1", headers=headers).json["status"]
        == "current"
    )


def test_update_can_create_under_client_id(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    response = client.put(
        "/full/fhir/DocumentReference/my-note", json={**_note(), "id": "my-note"}, headers=headers
    )
    assert response.status_code == 201
    mismatch = client.put(
        "/full/fhir/DocumentReference/other", json={**_note(), "id": "my-note"}, headers=headers
    )
    assert mismatch.status_code == 400


def test_invalid_resources_are_400_operation_outcomes(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    for body in (
        _note(madeUpElement=1),
        {**_note(), "status": 12},
        {"no": "type"},
        {"resourceType": "Observation", "status": "final"},
    ):
        response = client.post("/full/fhir/DocumentReference", json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json["resourceType"] == "OperationOutcome"
    wrong_media = client.post(
        "/full/fhir/DocumentReference", data="x", headers={**headers, "Content-Type": "text/plain"}
    )
    assert wrong_media.status_code == 415


def test_transaction_rewrites_urn_uuid_references(client: FlaskClient) -> None:
    headers = bearer(token_for(client))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": _note(identifier="tx-1"),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    "resourceType": "Provenance",
                    "recorded": "2026-12-01T12:00:00Z",
                    "target": [{"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}],
                    "agent": [{"who": {"reference": "Practitioner/clinician-1"}}],
                },
                "request": {"method": "POST", "url": "Provenance"},
            },
            {"request": {"method": "GET", "url": "Patient/tp-1"}},
        ],
    }
    response = client.post("/full/fhir", json=bundle, headers=headers)
    assert response.status_code == 200, response.json
    entries = response.json["entry"]
    assert response.json["type"] == "transaction-response"
    assert [e["response"]["status"] for e in entries] == ["201 Created", "201 Created", "200 OK"]
    note_id = entries[0]["resource"]["id"]
    assert entries[1]["resource"]["target"][0]["reference"] == f"DocumentReference/{note_id}"
    assert entries[0]["response"]["location"] == f"DocumentReference/{note_id}/_history/1"


def test_transaction_is_all_or_nothing(client: FlaskClient) -> None:
    headers = bearer(token_for(client, scope=USER_ALL))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _note(identifier="tx-2"), "request": {"method": "POST", "url": "DocumentReference"}},
            {
                "resource": {**_note(), "id": "x", "bogus": True},
                "request": {"method": "PUT", "url": "DocumentReference/x"},
            },
        ],
    }
    response = client.post("/full/fhir", json=bundle, headers=headers)
    assert response.status_code == 400
    assert client.get("/full/fhir/DocumentReference?identifier=tx-2", headers=headers).json["total"] == 0


def test_batch_reports_each_entry(client: FlaskClient) -> None:
    headers = bearer(token_for(client, scope=USER_ALL))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": _note(identifier="b-1"), "request": {"method": "POST", "url": "DocumentReference"}},
            {"request": {"method": "GET", "url": "Patient/nobody"}},
            {"request": {"method": "GET", "url": "Observation?patient=tp-1&code=mas"}},
        ],
    }
    entries = client.post("/full/fhir", json=bundle, headers=headers).json["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "404", "200"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["resource"]["total"] == 3


def test_epic_like_tenant_has_no_medication_statement(client: FlaskClient) -> None:
    statement = client.get("/epic-like/fhir/metadata").json
    assert "MedicationStatement" not in {r["type"] for r in statement["rest"][0]["resource"]}
    headers = bearer(token_for(client, tenant="epic-like"))
    response = client.get("/epic-like/fhir/MedicationStatement?patient=tp-1", headers=headers)
    assert response.status_code == 404 and response.json["resourceType"] == "OperationOutcome"
    assert client.get("/epic-like/fhir/MedicationStatement/tp-1-ms", headers=headers).status_code == 404
    requests_ = client.get("/epic-like/fhir/MedicationRequest?patient=tp-1", headers=headers).json
    assert requests_["total"] == 2
    full = client.get("/full/fhir/MedicationStatement?patient=tp-1", headers=bearer(token_for(client))).json
    assert full["total"] == 1


def test_unknown_tenant_and_unknown_route_are_operation_outcomes(client: FlaskClient) -> None:
    assert client.get("/nope/fhir/metadata").status_code == 404
    response = client.delete("/full/fhir/Patient/tp-1")
    assert response.status_code == 405 and response.json["resourceType"] == "OperationOutcome"
