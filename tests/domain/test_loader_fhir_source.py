"""Specification of ``load_chart``: one parallel round of searches chosen from the CapabilityStatement."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from loader_builders import CODES, NOW, PID, PUMP, observation, patient, quantity, rate, request, statement

from plugin.domain.loader import load_chart
from plugin.domain.loader.fhir_source import months_back, plan_searches
from smart_launch.fhir_client import FhirClient, FhirError

_bases = itertools.count()


def capability(*types: str) -> dict[str, Any]:
    """Return a CapabilityStatement offering ``types``."""
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": [{"type": t} for t in types]}],
    }


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    """Return a searchset Bundle page."""
    page: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        page["link"] = [{"relation": "next", "url": next_url}]
    return page


ALL_TYPES = (
    "Patient",
    "MedicationStatement",
    "MedicationRequest",
    "Observation",
    "Condition",
    "Device",
    "DeviceUseStatement",
    "Procedure",
)
EPIC_TYPES = tuple(t for t in ALL_TYPES if t not in ("MedicationStatement",))


class FakeServer:
    """A FHIR server behind ``responses``: answers per resource type, counts requests."""

    def __init__(self, mock: responses.RequestsMock, types: tuple[str, ...]) -> None:
        self.base = f"https://ehr{next(_bases)}.example/fhir"
        self.data: dict[str, list[dict[str, Any]]] = {t: [] for t in ALL_TYPES}
        self.fail: dict[str, int] = {}
        self.queries: list[tuple[str, dict[str, str]]] = []
        self.mock = mock
        mock.add(responses.GET, f"{self.base}/metadata", json=capability(*types))
        for resource_type in ALL_TYPES:
            mock.add_callback(responses.GET, f"{self.base}/{resource_type}", callback=self.answer)

    def answer(self, req: Any) -> tuple[int, dict[str, str], str]:
        """Answer one search from ``data`` (page 2 of a paged search when ``page=2``)."""
        parts = urlsplit(req.url)
        resource_type = parts.path.rsplit("/", 1)[-1]
        query = dict(parse_qsl(parts.query))
        self.queries.append((resource_type, query))
        if resource_type in self.fail:
            status = self.fail[resource_type]
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "not allowed"}],
            }
            return status, {"Content-Type": "application/fhir+json"}, json.dumps(outcome)
        found = [r for r in self.data[resource_type] if _matches(r, query)]
        if resource_type == "MedicationRequest" and len(found) > 1 and query.get("page") != "2":
            page = searchset(found[:1], next_url=f"{self.base}/MedicationRequest?page=2&patient={PID}")
        elif query.get("page") == "2":
            page = searchset(found[1:])
        else:
            page = searchset(found)
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(page)


def _matches(resource: dict[str, Any], query: dict[str, str]) -> bool:
    """Return whether an Observation matches a code or category search (other types always match)."""
    if resource["resourceType"] != "Observation":
        return True
    codings = {f"{c['system']}|{c['code']}" for c in resource["code"].get("coding", [])}
    if "code" in query:
        return bool(codings & set(query["code"].split(",")))
    return query.get("category") == resource.get("category_for_test")


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Return an active responses mock."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def client_for(server: FakeServer) -> FhirClient:
    """Return a FhirClient without retries for the fake server."""
    return FhirClient(server.base, max_retries=0)


def test_one_round_of_searches_loads_the_chart(mock: responses.RequestsMock) -> None:
    server = FakeServer(mock, ALL_TYPES)
    server.data["Patient"] = [patient()]
    server.data["MedicationStatement"] = [statement("s1", rate(400, "ug/d"))]
    server.data["MedicationRequest"] = [request("r1", rate(400, "ug/d"))]
    fill = observation(
        "f", PUMP, "fill-volume", valueQuantity=quantity(20, "mL"), effective="2020-01-01T00:00:00Z"
    )
    server.data["Observation"] = [fill]
    client = client_for(server)
    chart = load_chart(client, PID, codes=CODES, now=NOW)
    client.close()
    assert [r.source for r in chart.dose_records] == ["MedicationStatement/s1"]
    assert chart.pump is not None and chart.pump.fill_volume_ml == 20.0  # old pump value, no date bound
    searched = sorted(t for t, _q in server.queries)
    assert searched == sorted(
        [
            "Patient",
            "MedicationStatement",
            "MedicationRequest",
            *["Observation"] * 6,  # scores, pump, vital signs, exam and survey findings, eGFR
            "Condition",
            "Device",
            "DeviceUseStatement",
            "Procedure",
        ]
    )
    assert len(mock.calls) == 1 + len(server.queries)  # metadata + exactly one request per search


def test_medication_statement_is_not_searched_when_not_offered(mock: responses.RequestsMock) -> None:
    server = FakeServer(mock, EPIC_TYPES)
    server.data["Patient"] = [patient()]
    server.data["MedicationRequest"] = [request("r1", rate(350, "ug/d"))]
    chart = load_chart(client_for(server), PID, codes=CODES, now=NOW)
    assert "MedicationStatement" not in {t for t, _q in server.queries}
    assert chart.dose_records[0].daily_dose_ug == 350.0


def test_paged_searches_follow_next_links(mock: responses.RequestsMock) -> None:
    server = FakeServer(mock, EPIC_TYPES)
    server.data["Patient"] = [patient()]
    server.data["MedicationRequest"] = [
        request("r1", rate(300, "ug/d"), status="completed", start="2026-01-01T00:00:00Z"),
        request("r2", rate(330, "ug/d")),
    ]
    chart = load_chart(client_for(server), PID, codes=CODES, now=NOW)
    assert [c.to_daily_dose_ug for c in chart.dose_history] == [300.0, 330.0]
    assert [t for t, _q in server.queries].count("MedicationRequest") == 2


def test_failed_optional_search_is_a_data_gap(mock: responses.RequestsMock) -> None:
    server = FakeServer(mock, ALL_TYPES)
    server.data["Patient"] = [patient()]
    server.fail["Condition"] = 403
    chart = load_chart(client_for(server), PID, codes=CODES, now=NOW)
    assert any(gap.startswith("conditions could not be read") for gap in chart.data_gaps)


@pytest.mark.parametrize("failing", ["Patient", "MedicationRequest", "MedicationStatement"])
def test_failed_patient_or_medication_search_raises(mock: responses.RequestsMock, failing: str) -> None:
    server = FakeServer(mock, ALL_TYPES)
    server.data["Patient"] = [patient()]
    server.fail[failing] = 403
    with pytest.raises(FhirError):
        load_chart(client_for(server), PID, codes=CODES, now=NOW)


def test_unreadable_capabilities_still_try_statements_but_only_as_a_gap(mock: responses.RequestsMock) -> None:
    server = FakeServer(mock, ALL_TYPES)
    mock.replace(
        responses.GET, f"{server.base}/metadata", status=500, json={"resourceType": "OperationOutcome"}
    )
    server.data["Patient"] = [patient()]
    server.fail["MedicationStatement"] = 400
    chart = load_chart(client_for(server), PID, codes=CODES, now=NOW)
    assert any("medication statements" in gap for gap in chart.data_gaps)


def test_search_windows_are_measured_back_from_now() -> None:
    slots = plan_searches(PID, CODES, NOW, frozenset(ALL_TYPES))
    params = [dict(slot.search.params) for slot in slots]
    dates = sorted(p["date"] for p in params if "date" in p)
    assert dates == ["ge2024-12-01", "ge2024-12-01", "ge2026-11-24", "ge2026-11-24", "ge2026-11-24"]
    pump_search = next(p for p in params if "code" in p and "pump" in p["code"])
    assert "date" not in pump_search
    assert all(slot.search.max_pages > 1 for slot in slots if slot.search.resource_type != "Patient")


def test_months_back_clamps_to_the_end_of_the_month() -> None:
    assert months_back(NOW.replace(month=3, day=31), 1).day == 28
    assert months_back(NOW, 24).date().isoformat() == "2024-12-01"


def test_scores_are_searched_by_their_codes_and_signs_in_every_finding_category() -> None:
    # The loader knows scores by coding only and signs by text only: a score filed under "exam", or a
    # sign filed as an exam or survey finding, must still be fetched from a live EHR.
    slots = plan_searches(PID, CODES, NOW, frozenset(ALL_TYPES))
    params = [dict(slot.search.params) for slot in slots if slot.search.resource_type == "Observation"]
    score_search = next(p for p in params if "spasticity|mas" in p.get("code", ""))
    assert "category" not in score_search and score_search["date"] == "ge2024-12-01"
    recent = {p["category"] for p in params if p.get("date") == "ge2026-11-24" and "category" in p}
    assert recent == {"vital-signs", "exam", "survey"}
