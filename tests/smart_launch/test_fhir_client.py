"""Specification of the FHIR REST client: auth, retries, paging, parallel searches, typed errors."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from smart_launch.fhir_client import (
    FhirAuthError,
    FhirClient,
    FhirConflict,
    FhirError,
    FhirNotFound,
    Search,
    WriteResult,
)

BASE = "https://ehr.example.org/fhir/r4"


def _bundle(*ids: str, next_url: str | None = None, resource_type: str = "Observation") -> dict[str, Any]:
    """Return a searchset page holding resources with ``ids`` and an optional next link."""
    links = [{"relation": "self", "url": f"{BASE}/{resource_type}"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {"resource": {"resourceType": resource_type, "id": i}, "search": {"mode": "match"}} for i in ids
        ],
    }


def _outcome(diagnostics: str) -> dict[str, Any]:
    """Return an OperationOutcome with one error issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": diagnostics}],
    }


@pytest.fixture
def client() -> FhirClient:
    """Return a client with a fixed token."""
    return FhirClient(BASE, lambda: "AT-1")


@responses.activate
def test_read_sends_the_bearer_token_and_accepts_fhir_json(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/123", json={"resourceType": "Patient", "id": "123"})
    assert client.read("Patient", "123")["id"] == "123"
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == "Bearer AT-1"
    assert headers["Accept"] == "application/fhir+json"


def test_read_refuses_ids_that_would_change_the_path(client: FhirClient) -> None:
    with pytest.raises(ValueError):
        client.read("Patient", "../Observation")
    with pytest.raises(ValueError):
        client.read("patient?x=1", "1")


@responses.activate
def test_a_401_refreshes_once_and_retries_with_the_new_token() -> None:
    refreshed: list[str] = []

    def refresh() -> str:
        refreshed.append("yes")
        return "AT-2"

    responses.get(
        f"{BASE}/Patient/1", status=401, match=[matchers.header_matcher({"Authorization": "Bearer AT-1"})]
    )
    responses.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        match=[matchers.header_matcher({"Authorization": "Bearer AT-2"})],
    )
    client = FhirClient(BASE, lambda: "AT-1", on_unauthorized=refresh)
    assert client.read("Patient", "1")["id"] == "1"
    assert refreshed == ["yes"]


@responses.activate
def test_a_second_401_is_an_auth_error() -> None:
    responses.get(f"{BASE}/Patient/1", status=401)
    calls: list[int] = []
    client = FhirClient(BASE, lambda: "AT-1", on_unauthorized=lambda: calls.append(1) or "AT-2")
    with pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "1")
    assert caught.value.status == 401 and calls == [1]
    assert len(responses.calls) == 2


@responses.activate
def test_a_401_without_a_new_token_is_an_auth_error_without_retry() -> None:
    responses.get(f"{BASE}/Patient/1", status=401)
    client = FhirClient(BASE, lambda: "AT-1", on_unauthorized=lambda: None)
    with pytest.raises(FhirAuthError):
        client.read("Patient", "1")
    assert len(responses.calls) == 1


@responses.activate
def test_a_403_is_an_auth_error_with_the_outcome_message(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/1", status=403, json=_outcome("Insufficient scope"))
    with pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "1")
    assert caught.value.safe_message == "HTTP 403: Insufficient scope"
    assert caught.value.outcome is not None


@responses.activate
def test_search_follows_next_links_over_three_pages(client: FhirClient) -> None:
    responses.get(
        f"{BASE}/Observation",
        json=_bundle("1", "2", next_url=f"{BASE}?_getpages=abc&_offset=2"),
        match=[matchers.query_param_matcher({"patient": "123", "code": "mas"})],
    )
    responses.get(f"{BASE}?_getpages=abc&_offset=2", json=_bundle("3", next_url="?_getpages=abc&_offset=4"))
    responses.get(f"{BASE}/?_getpages=abc&_offset=4", json=_bundle("4"))
    found = client.search("Observation", {"patient": "123", "code": "mas"})
    assert [resource["id"] for resource in found] == ["1", "2", "3", "4"]
    assert all(call.request.headers["Authorization"] == "Bearer AT-1" for call in responses.calls)


@responses.activate
def test_search_sends_repeated_parameters(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=_bundle("1"))
    client.search("Observation", [("date", "ge2026-01-01"), ("date", "le2026-02-01")])
    assert responses.calls[0].request.url.endswith("?date=ge2026-01-01&date=le2026-02-01")


@responses.activate
def test_search_keeps_includes_and_skips_outcome_entries(client: FhirClient) -> None:
    page = _bundle("1", resource_type="MedicationRequest")
    page["entry"].append(
        {"resource": {"resourceType": "Medication", "id": "m"}, "search": {"mode": "include"}}
    )
    page["entry"].append({"resource": _outcome("partial"), "search": {"mode": "outcome"}})
    responses.get(f"{BASE}/MedicationRequest", json=page)
    assert [r["resourceType"] for r in client.search("MedicationRequest")] == [
        "MedicationRequest",
        "Medication",
    ]


@responses.activate
def test_a_next_link_to_another_host_is_refused_and_gets_no_token(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=_bundle("1", next_url="https://evil.example.com/fhir?page=2"))
    with pytest.raises(FhirError, match="another server"):
        client.search("Observation")
    assert len(responses.calls) == 1


@responses.activate
def test_a_next_link_to_another_port_or_scheme_is_refused(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=_bundle("1", next_url="http://ehr.example.org/fhir/r4?page=2"))
    responses.get(
        f"{BASE}/Condition", json=_bundle("1", next_url="https://ehr.example.org:8443/fhir/r4?page=2")
    )
    for resource_type in ("Observation", "Condition"):
        with pytest.raises(FhirError, match="another server"):
            client.search(resource_type)


@responses.activate
def test_search_refuses_more_pages_than_allowed(client: FhirClient) -> None:
    responses.get(f"{BASE}/Observation", json=_bundle("1", next_url=f"{BASE}/Observation?page=2"))
    responses.get(f"{BASE}/Observation?page=2", json=_bundle("2", next_url=f"{BASE}/Observation?page=3"))
    with pytest.raises(FhirError, match="more than 2 pages"):
        client.search("Observation", max_pages=2)


@responses.activate
def test_a_503_is_retried_honouring_retry_after(client: FhirClient, sleeps: list[float]) -> None:
    responses.get(f"{BASE}/Patient/1", status=503, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    assert client.read("Patient", "1")["id"] == "1"
    assert sleeps == [7.0, 0.0]  # a date in the past means "now"


@responses.activate
def test_a_huge_retry_after_is_capped(client: FhirClient, sleeps: list[float]) -> None:
    responses.get(f"{BASE}/Patient/1", status=503, headers={"Retry-After": "86400"})
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client.read("Patient", "1")
    assert sleeps == [30.0]


@responses.activate
def test_retries_give_up_after_max_retries_with_growing_backoff(sleeps: list[float]) -> None:
    responses.get(f"{BASE}/Patient/1", status=502)
    with pytest.raises(FhirError) as caught:
        FhirClient(BASE, max_retries=3).read("Patient", "1")
    assert caught.value.status == 502 and caught.value.retryable
    assert len(responses.calls) == 4
    assert len(sleeps) == 3 and 0.25 <= sleeps[0] <= 0.5 and 1.0 <= sleeps[2] <= 2.0


@responses.activate
def test_connection_errors_are_retried_then_reported_as_status_0(
    client: FhirClient, sleeps: list[float]
) -> None:
    responses.get(f"{BASE}/Patient/1", body=requests.ConnectionError("reset"))
    with pytest.raises(FhirError) as caught:
        client.read("Patient", "1")
    assert caught.value.status == 0 and len(sleeps) == 3
    assert "ehr.example.org" not in caught.value.safe_message


@responses.activate
def test_a_create_is_not_retried_on_503(client: FhirClient, sleeps: list[float]) -> None:
    responses.post(f"{BASE}/DocumentReference", status=503)
    with pytest.raises(FhirError) as caught:
        client.create({"resourceType": "DocumentReference"}, if_none_exist="identifier=urn:x|1")
    assert caught.value.status == 503 and len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_create_returns_the_id_from_location(client: FhirClient) -> None:
    responses.post(
        f"{BASE}/DocumentReference",
        status=201,
        body=b"",
        headers={"Location": f"{BASE}/DocumentReference/55/_history/1", "ETag": 'W/"1"'},
        match=[
            matchers.header_matcher(
                {
                    "If-None-Exist": "identifier=urn:x|1",
                    "Content-Type": "application/fhir+json; charset=utf-8",
                }
            )
        ],
    )
    result = client.create(
        {"resourceType": "DocumentReference", "status": "current"}, if_none_exist="identifier=urn:x|1"
    )
    assert result == WriteResult(201, None, "DocumentReference/55/_history/1", 'W/"1"')
    assert result.resource_id == "55"
    assert responses.calls[0].request.body == b'{"resourceType": "DocumentReference", "status": "current"}'


def test_write_result_prefers_the_body_id() -> None:
    assert (
        WriteResult(201, {"resourceType": "Basic", "id": "9"}, "Basic/8/_history/1", None).resource_id == "9"
    )
    assert WriteResult(200, None, None, None).resource_id is None


@responses.activate
def test_update_puts_with_if_match_and_a_stale_version_is_a_conflict(client: FhirClient) -> None:
    responses.put(
        f"{BASE}/Task/7",
        status=412,
        json=_outcome("Version 1 is not current"),
        match=[matchers.header_matcher({"If-Match": 'W/"1"'})],
    )
    with pytest.raises(FhirConflict, match="not current"):
        client.update({"resourceType": "Task", "id": "7"}, if_match='W/"1"')


@responses.activate
def test_not_found_and_gone_are_fhir_not_found(client: FhirClient) -> None:
    responses.get(f"{BASE}/Patient/1", status=404)
    responses.get(f"{BASE}/Patient/2", status=410)
    for resource_id in ("1", "2"):
        with pytest.raises(FhirNotFound):
            client.read("Patient", resource_id)


@responses.activate
def test_safe_message_is_one_line_short_and_drops_url_queries(client: FhirClient) -> None:
    diagnostics = f"Unknown search parameter\n for URL {BASE}/Observation?patient=123&name=Smith " + "x" * 500
    responses.get(f"{BASE}/Observation", status=400, json=_outcome(diagnostics))
    with pytest.raises(FhirError) as caught:
        client.search("Observation", {"patient": "123"})
    message = caught.value.safe_message
    assert "\n" not in message and len(message) <= 300
    assert "123" not in message and "Smith" not in message
    assert message.startswith("HTTP 400: Unknown search parameter for URL")


@responses.activate
def test_search_many_runs_in_parallel_and_reports_errors_per_slot(client: FhirClient) -> None:
    threads: set[str] = set()

    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        import json

        threads.add(threading.current_thread().name)
        return 200, {}, json.dumps(_bundle("c1", resource_type="Condition"))

    responses.add_callback(responses.GET, f"{BASE}/Condition", callback=page)
    responses.get(f"{BASE}/Observation", status=500, json=_outcome("boom"))
    responses.get(f"{BASE}/Device", json=_bundle("d1", resource_type="Device"))
    results = FhirClient(BASE, max_retries=0).search_many(
        [Search("Condition", {"patient": "1"}), Search("Observation"), Search("Device")]
    )
    assert [r["id"] for r in results[0]] == ["c1"]  # type: ignore[index]
    assert isinstance(results[1], FhirError) and results[1].status == 500
    assert [r["id"] for r in results[2]] == ["d1"]  # type: ignore[index]
    assert all(name.startswith("fhir") for name in threads)


@responses.activate
def test_capabilities_are_cached_per_base_url() -> None:
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
    assert FhirClient(BASE).capabilities()["fhirVersion"] == "4.0.1"
    assert FhirClient(BASE + "/").capabilities()["fhirVersion"] == "4.0.1"
    assert len(responses.calls) == 1


@responses.activate
def test_transaction_and_operation_post_to_the_base(client: FhirClient) -> None:
    responses.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response"})
    responses.post(f"{BASE}/DocumentReference/$validate", json=_outcome("ok"))
    responses.get(f"{BASE}/Patient/1/$everything", json=_bundle())
    assert (
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})["type"]
        == "transaction-response"
    )
    assert (
        client.operation("DocumentReference/$validate", {"resourceType": "Parameters"})["resourceType"]
        == "OperationOutcome"
    )
    assert client.operation("Patient/1/$everything")["resourceType"] == "Bundle"
    with pytest.raises(ValueError):
        client.operation("https://evil.example.com/$x")


@responses.activate
def test_the_token_is_never_sent_to_another_origin() -> None:
    client = FhirClient(BASE, lambda: "AT-1")
    headers = client._headers("https://other.example.org/fhir/Patient/1", "AT-1", None, False)
    assert "Authorization" not in headers
    assert client._headers(BASE.upper().replace("HTTPS", "https") + "/x", "AT-1", None, False)[
        "Authorization"
    ]


def test_an_open_server_gets_no_authorization_header() -> None:
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
        FhirClient(BASE).read("Patient", "1")
        assert "Authorization" not in mock.calls[0].request.headers


def test_non_http_base_urls_are_refused() -> None:
    with pytest.raises(ValueError):
        FhirClient("ftp://ehr.example.org/fhir")


def test_close_releases_sessions_and_pool(client: FhirClient) -> None:
    with responses.RequestsMock() as mock:
        mock.get(re.compile(rf"{re.escape(BASE)}/Device.*"), json=_bundle("d", resource_type="Device"))
        client.search_many([Search("Device")])
    client.close()
    assert client._executor is None and client._sessions == []
