"""FHIR search in the sandbox: tokens, references, date prefixes (date/dateTime/Period), paging, _include."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from smart_launch.sandbox.outcome import FhirError
from smart_launch.sandbox.search import parse_date_range

from .conftest import ROOT, bearer, token_for

SPASTICITY = "http://itb-dose-check.org/CodeSystem/spasticity"


@pytest.fixture
def headers(client: FlaskClient) -> dict[str, str]:
    """A user-level token that sees every patient."""
    return bearer(token_for(client, scope="launch openid fhirUser user/*.cruds"))


def _ids(client: FlaskClient, headers: dict[str, str], path: str, **params: str) -> list[str]:
    """Search and return the matched ids in order."""
    response = client.get(path, query_string=params, headers=headers)
    assert response.status_code == 200, response.json
    return [e["resource"]["id"] for e in response.json.get("entry", []) if e["search"]["mode"] == "match"]


def test_patient_and_subject_accept_reference_or_id(client: FlaskClient, headers: dict[str, str]) -> None:
    expected = {"tp-1-mas-a", "tp-1-mas-b", "tp-1-mas-c", "tp-1-temp"}
    for params in (
        {"patient": "tp-1"},
        {"patient": "Patient/tp-1"},
        {"subject": "Patient/tp-1"},
        {"subject": f"{ROOT}/full/fhir/Patient/tp-1"},
    ):
        assert set(_ids(client, headers, "/full/fhir/Observation", **params)) == expected


@pytest.mark.parametrize(
    ("code", "count"),
    [
        (f"{SPASTICITY}|mas", 3),
        ("mas", 3),
        (f"http://loinc.org|8310-5,{SPASTICITY}|mas", 4),
        ("http://loinc.org|mas", 0),
        ("|mas", 0),
    ],
)
def test_code_search(client: FlaskClient, headers: dict[str, str], code: str, count: int) -> None:
    assert len(_ids(client, headers, "/full/fhir/Observation", patient="tp-1", code=code)) == count


def test_status_category_identifier_id_and_clinical_status(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    obs = "/full/fhir/Observation"
    assert len(_ids(client, headers, obs, patient="tp-1", status="final")) == 3
    assert len(_ids(client, headers, obs, patient="tp-1", status="preliminary,final")) == 4
    assert _ids(client, headers, obs, patient="tp-1", category="vital-signs") == ["tp-1-temp"]
    category = "http://terminology.hl7.org/CodeSystem/observation-category|survey"
    assert len(_ids(client, headers, obs, patient="tp-1", category=category)) == 3
    assert _ids(client, headers, obs, _id="tp-1-mas-a") == ["tp-1-mas-a"]
    assert _ids(client, headers, "/full/fhir/Patient", identifier="urn:test:mrn|MRN-1") == ["tp-1"]
    assert _ids(client, headers, "/full/fhir/Condition", patient="tp-1", **{"clinical-status": "active"}) == [
        "tp-1-sci"
    ]
    assert _ids(client, headers, "/full/fhir/MedicationRequest", patient="tp-1", status="active") == [
        "tp-1-mr"
    ]


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["ge2026-11-15"], {"tp-1-mas-b", "tp-1-mas-c", "tp-1-temp"}),
        (["gt2026-11-15"], {"tp-1-mas-c", "tp-1-temp"}),
        (["lt2026-11-15"], {"tp-1-mas-a"}),
        (["le2026-11-15"], {"tp-1-mas-a", "tp-1-mas-b"}),
        (["2026-11-15"], {"tp-1-mas-b"}),
        (["eq2026-11-01"], {"tp-1-mas-a"}),
        (["2026-11-29"], set()),  # a Period that only overlaps the day is not 'equal' to it
        (["ge2026-11-29", "le2026-11-29"], {"tp-1-mas-c"}),  # repeated parameters are AND
        (["2026-11"], {"tp-1-mas-a", "tp-1-mas-b", "tp-1-mas-c", "tp-1-temp"}),
        (["ge2026-11-30T06:00:00+01:00"], {"tp-1-mas-c", "tp-1-temp"}),
        (["lt2026-11-30T05:30:00Z"], {"tp-1-mas-a", "tp-1-mas-b", "tp-1-mas-c"}),
    ],
)
def test_date_prefixes_over_date_datetime_and_period(
    client: FlaskClient, headers: dict[str, str], dates: list[str], expected: set[str]
) -> None:
    query = [("patient", "tp-1"), *(("date", d) for d in dates)]
    response = client.get("/full/fhir/Observation", query_string=query, headers=headers)
    assert {e["resource"]["id"] for e in response.json.get("entry", [])} == expected


def test_sort_by_date(client: FlaskClient, headers: dict[str, str]) -> None:
    newest_first = ["tp-1-temp", "tp-1-mas-c", "tp-1-mas-b", "tp-1-mas-a"]
    assert _ids(client, headers, "/full/fhir/Observation", patient="tp-1", _sort="-date") == newest_first
    assert _ids(client, headers, "/full/fhir/Observation", patient="tp-1", _sort="date") == newest_first[::-1]


def test_count_pages_with_stable_next_links(client: FlaskClient, headers: dict[str, str]) -> None:
    first = client.get("/full/fhir/Observation?patient=tp-1&_count=3&_sort=date", headers=headers).json
    assert first["total"] == 4 and len(first["entry"]) == 3
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert next_url.startswith(f"{ROOT}/full/fhir?")
    new_obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "late"},
        "subject": {"reference": "Patient/tp-1"},
        "effectiveDateTime": "2026-11-02",
    }
    assert client.post("/full/fhir/Observation", json=new_obs, headers=headers).status_code == 201
    parts = urlsplit(next_url)
    second = client.get(f"{parts.path}?{parts.query}", headers=headers).json
    assert second["total"] == 4 and [e["resource"]["id"] for e in second["entry"]] == ["tp-1-temp"]
    assert all(link["relation"] != "next" for link in second["link"])
    gone = client.get("/full/fhir?_getpages=unknown&_getpagesoffset=3", headers=headers)
    assert gone.status_code == 410


def test_include_adds_referenced_medication_once(client: FlaskClient, headers: dict[str, str]) -> None:
    bundle = client.get(
        "/full/fhir/MedicationRequest?patient=tp-1&_include=MedicationRequest:medication", headers=headers
    ).json
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes.count(("MedicationRequest", "match")) == 2
    assert modes.count(("Medication", "include")) == 1
    assert bundle["total"] == 2
    statements = client.get(
        "/full/fhir/MedicationStatement?patient=tp-1&_include=MedicationStatement:medication", headers=headers
    ).json
    assert [e["search"]["mode"] for e in statements["entry"]] == ["match", "include"]


def test_summary_count(client: FlaskClient, headers: dict[str, str]) -> None:
    bundle = client.get("/full/fhir/Observation?patient=tp-1&_summary=count", headers=headers).json
    assert bundle["total"] == 4 and "entry" not in bundle


def test_post_search(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/full/fhir/Observation/_search", data={"patient": "tp-1", "code": "mas"}, headers=headers
    )
    assert response.json["total"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "foo=bar",
        "code:text=mas",
        "_sort=status",
        "date=2026-13-45",
        "date=sa2026-11-01",
        "_count=many",
        "_include=Observation:nothing",
        "_elements=id",
    ],
)
def test_unknown_or_unsupported_parameters_are_400(
    client: FlaskClient, headers: dict[str, str], query: str
) -> None:
    response = client.get(f"/full/fhir/Observation?patient=tp-1&{query}", headers=headers)
    assert response.status_code == 400
    assert response.json["resourceType"] == "OperationOutcome"


def test_count_is_capped_at_1000_like_our_hapi_configuration(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    small = client.get("/full/fhir/Observation?_count=3", headers=headers)
    assert len(small.json["entry"]) == 3
    response = client.get("/full/fhir/Observation?_count=100000", headers=headers)
    assert response.status_code == 200
    assert len(response.json.get("entry", [])) <= 1000
    for link in response.json.get("link", []):
        if link["relation"] == "next":
            assert "_count=1000" in link["url"]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", "2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ("2026-12", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ("2026-11-30", "2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
        ("2026-11-30T10:00:00+02:00", "2026-11-30T08:00:00+00:00", "2026-11-30T08:00:01+00:00"),
        ("2026-11-30T10:00:00.250Z", "2026-11-30T10:00:00.250000+00:00", "2026-11-30T10:00:00.250001+00:00"),
    ],
)
def test_date_precision_becomes_a_range(text: str, start: str, end: str) -> None:
    low, high = parse_date_range(text)
    assert (low.isoformat(), high.isoformat()) == (start, end)


def test_malformed_date_is_a_fhir_error() -> None:
    with pytest.raises(FhirError):
        parse_date_range("30/11/2026")


def test_tag_search_finds_a_provenance_by_its_meta_tag_as_hapi_does(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    """The outbox finds a Provenance (no identifier element in R4) by ``_tag``, which HAPI supports."""
    provenance = {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": "http://itb-dose-check.org/fhir/identifier/write", "code": "w-1"}]},
        "target": [{"reference": "Patient/tp-1"}],
        "recorded": "2026-12-01T10:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/clinician-1"}}],
    }
    created = client.post(f"{ROOT}/full/fhir/Provenance", json=provenance, headers=headers)
    assert created.status_code == 201, created.json
    found = _ids(
        client,
        headers,
        f"{ROOT}/full/fhir/Provenance",
        _tag="http://itb-dose-check.org/fhir/identifier/write|w-1",
    )
    assert found == [created.json["id"]]
    assert (
        _ids(
            client,
            headers,
            f"{ROOT}/full/fhir/Provenance",
            _tag="http://itb-dose-check.org/fhir/identifier/write|w-2",
        )
        == []
    )


def test_a_paged_search_names_its_total_like_hapi(client: FlaskClient, headers: dict[str, str]) -> None:
    # Seen on HAPI 8.8: a paged search of more than 13 matches has no total until asked with
    # _total=accurate (then on every page); a paged search of at most 13 has one.
    for day in range(1, 16):
        new_obs = {
            "resourceType": "Observation", "status": "final", "code": {"text": "many"},
            "subject": {"reference": "Patient/tp-1"}, "effectiveDateTime": f"2026-10-{day:02d}",
        }  # fmt: skip
        assert client.post("/full/fhir/Observation", json=new_obs, headers=headers).status_code == 201
    url = "/full/fhir/Observation?patient=tp-1&_count=5"
    plain = client.get(url, headers=headers).json
    assert "total" not in plain and any(link["relation"] == "next" for link in plain["link"])
    assert "total" not in client.get(url + "&_total=estimated", headers=headers).json
    counted = client.get(url + "&_total=accurate", headers=headers).json
    assert counted["total"] == 19
    next_url = next(link["url"] for link in counted["link"] if link["relation"] == "next")
    parts = urlsplit(next_url)
    assert client.get(f"{parts.path}?{parts.query}", headers=headers).json["total"] == 19
    few = client.get(f"{url}&date=ge2026-10-01&date=le2026-10-05&_count=3", headers=headers).json
    assert few["total"] == 5 and any(link["relation"] == "next" for link in few["link"])
