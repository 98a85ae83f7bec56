"""REST behaviour the app relies on, proven on HAPI and on the sandbox store alike.

Paging through ``next`` links, date prefixes on dateTime and Period values, ``_include`` of a
MedicationRequest's Medication, conditional create, version conflicts, referential integrity and the
error statuses the client maps to its typed errors. Each test writes its own resources under fresh
ids and identifiers, so a HAPI server reused across runs never sees a leftover match.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from contract.support import FhirServer, shifted_bundle
from smart_launch.fhir_client import FhirConflict, FhirError, FhirNotFound

pytestmark = pytest.mark.fhir_server
SYSTEM = "urn:itb-contract-test"
OBSERVATION_DAYS = (
    "2026-01-03",
    "2026-01-05",
    "2026-01-07",
    "2026-01-09",
    "2026-01-11",
    "2026-01-13",
    "2026-01-15",
)


def _patient_with_observations(server: FhirServer) -> str:
    """Create a fresh patient with one Observation per day of OBSERVATION_DAYS (noon UTC); return its id."""
    patient_id = f"contract-{uuid.uuid4().hex[:12]}"
    entries: list[dict[str, Any]] = [
        {
            "resource": {"resourceType": "Patient", "id": patient_id, "name": [{"family": "Contract"}]},
            "request": {"method": "PUT", "url": f"Patient/{patient_id}"},
        }
    ]
    for index, day in enumerate(OBSERVATION_DAYS):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"{patient_id}-obs-{index}",
                    "status": "final",
                    "code": {"coding": [{"system": SYSTEM, "code": "probe"}]},
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "effectiveDateTime": f"{day}T12:00:00Z",
                    "valueQuantity": {"value": index},
                },
                "request": {"method": "PUT", "url": f"Observation/{patient_id}-obs-{index}"},
            }
        )
    # One Observation over a Period (Jan 20 to Jan 25) to check ranges against the prefixes too.
    entries.append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": f"{patient_id}-obs-period",
                "status": "final",
                "code": {"coding": [{"system": SYSTEM, "code": "probe"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectivePeriod": {"start": "2026-01-20T08:00:00Z", "end": "2026-01-25T08:00:00Z"},
            },
            "request": {"method": "PUT", "url": f"Observation/{patient_id}-obs-period"},
        }
    )
    server.client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return patient_id


@pytest.fixture(scope="module")
def probe_patient(fhir_server: FhirServer) -> str:
    """Return the id of a fresh patient with eight Observations (seven days and one Period)."""
    return _patient_with_observations(fhir_server)


def test_paging_follows_next_links_to_every_result(fhir_server: FhirServer, probe_patient: str) -> None:
    raw = requests.get(
        f"{fhir_server.base_url}/Observation",
        params={"patient": probe_patient, "_count": "2"},
        headers=fhir_server.headers(),
        timeout=30,
    )
    assert raw.status_code == 200
    first = raw.json()
    assert first["type"] == "searchset" and len(first["entry"]) == 2
    assert any(link["relation"] == "next" for link in first["link"])

    found = fhir_server.client.search("Observation", {"patient": probe_patient, "_count": "2"})
    ids = [r["id"] for r in found]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert set(ids) == {f"{probe_patient}-obs-{i}" for i in range(7)} | {f"{probe_patient}-obs-period"}


def test_a_search_that_needs_more_pages_than_allowed_raises(
    fhir_server: FhirServer, probe_patient: str
) -> None:
    with pytest.raises(FhirError, match="more than 2 pages"):
        fhir_server.client.search("Observation", {"patient": probe_patient, "_count": "2"}, max_pages=2)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["ge2026-01-07"], {2, 3, 4, 5, 6, "period"}),
        (["le2026-01-07"], {0, 1, 2}),
        (["ge2026-01-05", "le2026-01-11"], {1, 2, 3, 4}),
        (["gt2026-01-13"], {6, "period"}),
        (["lt2026-01-05"], {0}),
        (["ge2026-01-22", "le2026-01-23"], {"period"}),  # inside the Period: the ranges overlap
        (["ge2026-01-26"], set()),
        (["2026-01-09"], {3}),
        (["ge2026-01-09T12:00:00Z", "le2026-01-09T12:00:00Z"], {3}),
    ],
)
def test_date_prefixes_compare_ranges(
    fhir_server: FhirServer, probe_patient: str, dates: list[str], expected: set[Any]
) -> None:
    params = [("patient", probe_patient), *(("date", value) for value in dates)]
    found = {r["id"].rsplit("-", 1)[-1] for r in fhir_server.client.search("Observation", params)}
    assert found == {str(e) for e in expected}


def test_sort_by_date_descending(fhir_server: FhirServer, probe_patient: str) -> None:
    found = fhir_server.client.search(
        "Observation", [("patient", probe_patient), ("date", "le2026-01-16"), ("_sort", "-date")]
    )
    assert [r["id"].rsplit("-", 1)[-1] for r in found] == ["6", "5", "4", "3", "2", "1", "0"]


def test_token_search_with_system_and_code_lists(fhir_server: FhirServer, probe_patient: str) -> None:
    both = fhir_server.client.search(
        "Observation", {"patient": probe_patient, "code": f"http://loinc.org|8310-5,{SYSTEM}|probe"}
    )
    assert len(both) == 8
    assert (
        fhir_server.client.search("Observation", {"patient": probe_patient, "code": "http://loinc.org|probe"})
        == []
    )


def test_include_returns_the_medication_of_each_request(loaded_server: FhirServer) -> None:
    bundle = shifted_bundle("sci-adult")
    requests_ = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    referenced = {
        r["medicationReference"]["reference"].split("/")[-1] for r in requests_ if "medicationReference" in r
    }
    assert referenced, "the scenario has a MedicationRequest with a medicationReference"

    raw = requests.get(
        f"{loaded_server.base_url}/MedicationRequest",
        params={"patient": "sci-adult", "_include": "MedicationRequest:medication"},
        headers=loaded_server.headers(),
        timeout=30,
    ).json()
    modes: dict[str, set[str]] = {}
    for entry in raw["entry"]:
        modes.setdefault(entry["search"]["mode"], set()).add(
            f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        )
    assert modes["match"] == {f"MedicationRequest/{r['id']}" for r in requests_}
    assert modes["include"] == {f"Medication/{m}" for m in referenced}


def test_conditional_create_makes_one_resource(fhir_server: FhirServer, probe_patient: str) -> None:
    value = str(uuid.uuid4())
    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": "final",
        "code": {"text": "conditional"},
        "subject": {"reference": f"Patient/{probe_patient}"},
    }
    condition = f"identifier={SYSTEM}|{value}"
    first = fhir_server.client.create(resource, if_none_exist=condition)
    second = fhir_server.client.create(resource, if_none_exist=condition)
    assert (first.status, second.status) == (201, 200)
    assert first.resource_id and first.resource_id == second.resource_id
    found = fhir_server.client.search("Observation", {"identifier": f"{SYSTEM}|{value}"})
    assert [r["id"] for r in found] == [first.resource_id]


def test_a_stale_if_match_is_a_conflict(fhir_server: FhirServer, probe_patient: str) -> None:
    created = fhir_server.client.create(
        {
            "resourceType": "Observation",
            "status": "preliminary",
            "code": {"text": "versioned"},
            "subject": {"reference": f"Patient/{probe_patient}"},
        }
    )
    assert created.etag == 'W/"1"' and created.resource is not None
    current = dict(created.resource, status="final")
    updated = fhir_server.client.update(current, if_match='W/"1"')
    assert updated.status == 200 and updated.etag == 'W/"2"'
    with pytest.raises(FhirConflict) as raised:
        fhir_server.client.update(dict(current, status="amended"), if_match='W/"1"')
    assert raised.value.status == 409
    assert fhir_server.client.read("Observation", str(created.resource_id))["status"] == "final"


def test_read_of_an_unknown_id_is_not_found(fhir_server: FhirServer) -> None:
    with pytest.raises(FhirNotFound):
        fhir_server.client.read("Observation", f"missing-{uuid.uuid4().hex[:8]}")


def test_an_unknown_search_parameter_is_refused(fhir_server: FhirServer) -> None:
    with pytest.raises(FhirError) as raised:
        fhir_server.client.search("Observation", {"no-such-parameter": "x"})
    assert raised.value.status == 400


def test_a_reference_to_a_missing_resource_is_refused(fhir_server: FhirServer) -> None:
    with pytest.raises(FhirError) as raised:
        fhir_server.client.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "orphan"},
                "subject": {"reference": f"Patient/missing-{uuid.uuid4().hex[:8]}"},
            }
        )
    assert raised.value.status == 400


def test_a_transaction_with_a_missing_reference_stores_nothing(fhir_server: FhirServer) -> None:
    patient_id = f"contract-{uuid.uuid4().hex[:12]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": patient_id},
                "request": {"method": "PUT", "url": f"Patient/{patient_id}"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"{patient_id}-o",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "hasMember": [{"reference": f"Observation/missing-{patient_id}"}],
                },
                "request": {"method": "PUT", "url": f"Observation/{patient_id}-o"},
            },
        ],
    }
    with pytest.raises(FhirError) as raised:
        fhir_server.client.transaction(bundle)
    assert raised.value.status == 400
    with pytest.raises(FhirNotFound):
        fhir_server.client.read("Patient", patient_id)


def test_an_unknown_status_code_is_refused(fhir_server: FhirServer, probe_patient: str) -> None:
    with pytest.raises(FhirError) as raised:
        fhir_server.client.create(
            {
                "resourceType": "Observation",
                "status": "not-a-status",
                "code": {"text": "bad"},
                "subject": {"reference": f"Patient/{probe_patient}"},
            }
        )
    assert raised.value.status == 400


def _first_page(server: FhirServer, params: dict[str, str]) -> dict[str, Any]:
    """Return the first page of a raw Observation search."""
    response = requests.get(
        f"{server.base_url}/Observation", params=params, headers=server.headers(), timeout=30
    )
    assert response.status_code == 200, response.text[:300]
    return dict(response.json())


def _next_url(bundle: dict[str, Any]) -> str | None:
    """Return the bundle's next link, if any."""
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)


def test_a_paged_search_names_its_total_only_when_asked(fhir_server: FhirServer) -> None:
    # The loader relies on this: with a total, every remaining offset page is asked for at once. Without
    # _total, HAPI loads matches in batches (the first of 13) and names the total only once it has them
    # all, which depends on timing: tests/sandbox/test_search.py pins the sandbox's copy of that.
    patient_id = f"contract-{uuid.uuid4().hex[:12]}"
    entries: list[dict[str, Any]] = [
        {
            "resource": {"resourceType": "Patient", "id": patient_id},
            "request": {"method": "PUT", "url": f"Patient/{patient_id}"},
        }
    ]
    entries += [
        {
            "resource": {
                "resourceType": "Observation", "status": "final", "code": {"coding": [{"system": SYSTEM, "code": "many"}]},
                "subject": {"reference": f"Patient/{patient_id}"}, "effectiveDateTime": f"2026-02-{day:02d}T08:00:00Z",
            },
            "request": {"method": "POST", "url": "Observation"},
        }
        for day in range(1, 21)
    ]  # fmt: skip
    fhir_server.client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})

    counted = _first_page(fhir_server, {"patient": patient_id, "_count": "3", "_total": "accurate"})
    pages = [counted]
    while (url := _next_url(pages[-1])) is not None:
        pages.append(requests.get(url, headers=fhir_server.headers(), timeout=30).json())
    assert [page.get("total") for page in pages] == [20] * 7
    assert sum(len(page.get("entry", [])) for page in pages) == 20


def test_a_search_that_fits_on_one_page_names_its_total(fhir_server: FhirServer, probe_patient: str) -> None:
    # Whether HAPI names the total of a small paged search depends on its loading (batches of 13); only
    # the one-page case and _total=accurate are relied on, and asserted.
    single = _first_page(fhir_server, {"patient": probe_patient, "_count": "100"})
    # Other tests of the module add Observations to the probe patient: count what came back.
    assert _next_url(single) is None and single["total"] == len(single["entry"]) >= 8
