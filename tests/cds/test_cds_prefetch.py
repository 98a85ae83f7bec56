"""Prefetch: complete, missing (fetched through fhirServer), null, OperationOutcome, paged, and 412."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from flask.testing import FlaskClient

from .support import FHIR_SERVER, hook_body, order, post, sandbox_prefetch

OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}


def _searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _resources(prefetch: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in prefetch[key]["entry"]]


def _call(
    client: FlaskClient, sign: Callable[..., str], prefetch: dict[str, Any], *, fhir: bool = False
) -> Any:
    return post(
        client, hook_body("sci-adult", [order("sci-adult", 600)], prefetch=prefetch, fhir=fhir), sign()
    )


@responses.activate
def test_complete_prefetch_needs_no_fhir_call(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    response = _call(cds_client, sign, sandbox_prefetch("sci-adult"), fhir=True)
    assert response.json["cards"][0]["indicator"] == "critical"
    assert len(responses.calls) == 0
    assert "Not checked" not in response.json["cards"][0]["detail"]


@responses.activate
def test_missing_key_is_fetched_through_fhir_server_with_the_token(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    full = sandbox_prefetch("sci-adult")
    prefetch = {k: v for k, v in full.items() if k != "medicationStatements"}
    responses.get(
        f"{FHIR_SERVER}/MedicationStatement", json=_searchset(_resources(full, "medicationStatements"))
    )
    response = _call(cds_client, sign, prefetch, fhir=True)
    (card,) = response.json["cards"]
    assert card["indicator"] == "critical" and "400 → 600" in card["summary"]
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == "Bearer some-opaque-fhir-access-token"
    query = parse_qs(urlsplit(call.request.url).query)
    assert query["patient"] == ["sci-adult"] and query["_include"] == ["MedicationStatement:medication"]


@responses.activate
def test_missing_patient_read_is_fetched_as_a_search(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    full = sandbox_prefetch("sci-adult")
    prefetch = {k: v for k, v in full.items() if k != "patient"}
    responses.get(f"{FHIR_SERVER}/Patient", json=_searchset([full["patient"]]))
    assert _call(cds_client, sign, prefetch, fhir=True).status_code == 200
    assert parse_qs(urlsplit(responses.calls[0].request.url).query) == {"_id": ["sci-adult"]}


@responses.activate
def test_null_means_no_data_and_is_not_fetched(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    prefetch = {**sandbox_prefetch("sci-adult"), "vitals": None, "procedures": None}
    response = _call(cds_client, sign, prefetch, fhir=True)
    assert response.status_code == 200
    assert len(responses.calls) == 0


@responses.activate
def test_operation_outcome_is_fetched_again(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    full = sandbox_prefetch("sci-adult")
    prefetch = {**full, "medicationRequests": OUTCOME}
    responses.get(f"{FHIR_SERVER}/MedicationRequest", json=_searchset(_resources(full, "medicationRequests")))
    assert _call(cds_client, sign, prefetch, fhir=True).status_code == 200
    assert len(responses.calls) == 1


@responses.activate
def test_paged_bundle_is_read_in_full_through_fhir_server(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    full = sandbox_prefetch("sci-adult")
    scores = _resources(full, "scores")
    prefetch = {**full, "scores": _searchset(scores[:5], f"{FHIR_SERVER}/Observation?page=2")}
    page2 = f"{FHIR_SERVER}/Observation?page=2"
    score_codes = "http://itb-dose-check.org/CodeSystem/spasticity|"
    codes = ",".join(score_codes + c for c in ("mas", "psfs-frequency", "psfs-severity", "spasticity-nrs"))
    first_query = {"patient": "sci-adult", "code": codes, "_sort": "-date", "_count": "200"}
    matcher = responses.matchers.query_param_matcher(first_query)
    responses.get(f"{FHIR_SERVER}/Observation", json=_searchset(scores[:5], page2), match=[matcher])
    responses.get(page2, json=_searchset(scores[5:]))
    response = _call(cds_client, sign, prefetch, fhir=True)
    assert response.status_code == 200
    assert len(responses.calls) == 2
    assert "Not checked" not in response.json["cards"][0]["detail"]


def test_paged_bundle_without_fhir_server_uses_the_first_page_and_says_so(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    full = sandbox_prefetch("sci-adult")
    prefetch = {**full, "scores": _searchset(_resources(full, "scores"), f"{FHIR_SERVER}/Observation?page=2")}
    (card,) = _call(cds_client, sign, prefetch).json["cards"]
    assert "only the first page of spasticity scores" in card["detail"]
    assert "data incomplete" in card["summary"]


def test_missing_optional_key_without_fhir_server_is_named_on_the_card(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "vitals"}
    (card,) = _call(cds_client, sign, prefetch).json["cards"]
    assert "vital signs could not be read (not sent by the EHR)" in card["detail"]


def test_missing_orders_without_fhir_server_is_412(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "medicationRequests"}
    response = _call(cds_client, sign, prefetch)
    assert response.status_code == 412
    assert response.json["error"] == "precondition_failed"
    assert "medication orders" in response.json["error_description"]


def test_no_prefetch_at_all_and_no_fhir_server_is_412(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    body = hook_body("sci-adult", [order("sci-adult", 600)], prefetch={})
    assert post(cds_client, body, sign()).status_code == 412


@responses.activate
def test_fhir_server_of_another_host_is_never_called(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "medicationRequests"}
    body = hook_body("sci-adult", [order("sci-adult", 600)], prefetch=prefetch, fhir=True)
    body["fhirServer"] = "https://attacker.example/fhir"
    assert post(cds_client, body, sign()).status_code == 412
    assert len(responses.calls) == 0


@responses.activate
def test_failed_fetch_of_the_orders_is_412(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "medicationRequests"}
    responses.get(f"{FHIR_SERVER}/MedicationRequest", status=403, json=OUTCOME)
    assert _call(cds_client, sign, prefetch, fhir=True).status_code == 412


@responses.activate
def test_failed_fetch_of_an_optional_key_is_a_named_gap(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "deviceUse"}
    responses.get(f"{FHIR_SERVER}/DeviceUseStatement", status=404, json=OUTCOME)
    (card,) = _call(cds_client, sign, prefetch, fhir=True).json["cards"]
    assert "device use could not be read (the FHIR server answered" in card["detail"]
