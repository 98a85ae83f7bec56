"""Discovery and CORS: what an EHR sees before it calls the service."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

DISCOVERY_URL = "http://localhost/cds-services"


def test_discovery_lists_order_sign_as_itb_dose_check_and_order_select_service(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    response = cds_client.get("/cds-services", headers={"Authorization": f"Bearer {sign(DISCOVERY_URL)}"})
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json["services"]}
    assert services["itb-dose-check"]["hook"] == "order-sign"
    assert services["itb-dose-check-select"]["hook"] == "order-select"
    for service in services.values():
        assert service["title"] and service["description"] and service["usageRequirements"]
        prefetch = service["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert prefetch["medicationRequests"].startswith("MedicationRequest?patient={{context.patientId}}")
        assert "_include=MedicationRequest:medication" in prefetch["medicationRequests"]
        assert "http://itb-dose-check.org/CodeSystem/pump|fill-volume" in prefetch["pump"]
        assert "http://loinc.org|33914-3" in prefetch["egfr"]
        assert {
            "scores",
            "vitals",
            "conditions",
            "devices",
            "deviceUse",
            "procedures",
            "medicationStatements",
        } <= set(prefetch)


def test_discovery_is_open_to_any_origin(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    headers = {"Origin": "https://sandbox.cds-hooks.org", "Authorization": f"Bearer {sign(DISCOVERY_URL)}"}
    response = cds_client.get("/cds-services", headers=headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_discovery_needs_the_clients_jwt_for_its_own_url(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    assert cds_client.get("/cds-services").status_code == 401
    wrong_aud = sign("http://localhost/cds-services/itb-dose-check")
    response = cds_client.get("/cds-services", headers={"Authorization": f"Bearer {wrong_aud}"})
    assert response.status_code == 401 and "services" not in (response.json or {})


def test_preflight_on_the_service_allows_a_configured_origin(cds_client: FlaskClient) -> None:
    response = cds_client.options(
        "/cds-services/itb-dose-check",
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert "Origin" in response.headers["Vary"]


def test_preflight_from_an_unknown_origin_gets_no_allow_origin(cds_client: FlaskClient) -> None:
    response = cds_client.options(
        "/cds-services/itb-dose-check/feedback",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_header_is_on_the_post_response_too(cds_client: FlaskClient) -> None:
    response = cds_client.post("/cds-services/itb-dose-check", headers={"Origin": "https://ehr.example.org"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
