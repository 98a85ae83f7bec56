"""Seeding from the manifest (date shift, tenants, users) and the launch page."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smart_launch.sandbox import SandboxConfig, create_sandbox_app
from smart_launch.sandbox.config import DEFAULT_SEED_DIR

from .conftest import ANCHOR, CLIENTS, ROOT, Clock, authorize, bearer, exchange, pkce_pair, redirect_params

USER_ALL = "launch openid fhirUser user/*.cruds"


def _user_headers(client: FlaskClient, tenant: str = "full") -> dict[str, str]:
    """A user-level token via the launch page's redirect."""
    launch = client.get(
        "/_sandbox/launch", query_string={"tenant": tenant, "patient": "tp-1", "user": "clinician-1"}
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(launch.headers["Location"]).query).items()}
    verifier, challenge = pkce_pair()
    code = redirect_params(
        authorize(client, tenant=tenant, launch=params["launch"], challenge=challenge, scope=USER_ALL)
    )["code"]
    return bearer(exchange(client, code, verifier, tenant=tenant, client_id="itb-public").json)


def test_launch_page_lists_patients_users_and_launch_buttons(client: FlaskClient) -> None:
    page = client.get("/").data.decode()
    for fragment in (
        'id="launch-tp-1"',
        'data-patient-id="tp-2"',
        "Tina Tester",
        "Otto Other",
        "Test patient on intrathecal baclofen 400 ug/d",
        'for="user-pharmacist-1"',
        "Tom Becker, PharmD",
        "<h1>",
        'lang="en"',
        f"{ROOT}/full/fhir",
    ):
        assert fragment in page
    epic = client.get("/?tenant=epic-like").data.decode()
    assert 'id="launch-tp-1"' in epic and "launch-tp-2" not in epic


def test_launch_button_redirects_to_app_with_iss_and_launch(client: FlaskClient) -> None:
    response = client.get(
        "/_sandbox/launch",
        query_string={"tenant": "full", "patient": "tp-1", "user": "pharmacist-1", "embedded": "1"},
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://127.0.0.1:5000/launch"
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["iss"] == f"{ROOT}/full/fhir"
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(client, launch=params["launch"], challenge=challenge))["code"]
    token = exchange(client, code, verifier, client_id="itb-public").json
    assert token["patient"] == "tp-1" and token["need_patient_banner"] is False
    assert client.get("/_sandbox/launch", query_string={"patient": "nobody"}).status_code == 400
    assert client.get("/launch", query_string={"patient": "tp-1"}).status_code == 302  # short alias


def test_patients_json_lists_names_ages_and_summaries(client: FlaskClient) -> None:
    data = client.get("/_sandbox/patients").json
    rows = {p["id"]: p for p in data["patients"]}
    assert rows["tp-1"]["name"] == "Tina Tester" and rows["tp-1"]["age"] == 46
    assert rows["tp-2"]["summary"] == "Second test patient"
    assert {u["id"] for u in data["users"]} == {"clinician-1", "pharmacist-1", "auditor-1"}
    assert [p["id"] for p in client.get("/_sandbox/patients?tenant=epic-like").json["patients"]] == ["tp-1"]


def test_users_are_practitioners_and_the_pharmacist_has_a_role(client: FlaskClient) -> None:
    headers = _user_headers(client)
    for user in ("clinician-1", "pharmacist-1", "auditor-1"):
        assert client.get(f"/full/fhir/Practitioner/{user}", headers=headers).status_code == 200
    roles = client.get("/full/fhir/PractitionerRole?practitioner=pharmacist-1", headers=headers).json
    assert roles["entry"][0]["resource"]["code"][0]["coding"][0]["code"] == "46255001"


def test_seed_dates_are_shifted_to_today_and_ages_are_kept(make_app: Any, clock: Clock) -> None:
    clock.now = ANCHOR + timedelta(days=400)
    app: Flask = make_app()
    client = app.test_client()
    headers = _user_headers(client)
    observation = client.get("/full/fhir/Observation/tp-1-mas-a", headers=headers).json
    assert observation["effectiveDateTime"] == "2027-12-06"  # 2026-11-01 + 400 days
    period = client.get("/full/fhir/Observation/tp-1-mas-c", headers=headers).json["effectivePeriod"]
    assert period == {"start": "2028-01-02T08:00:00Z", "end": "2028-01-04T08:00:00Z"}
    patient = client.get("/full/fhir/Patient/tp-1", headers=headers).json
    assert patient["birthDate"] == "1981-07-20"
    ages = {p["id"]: p["age"] for p in client.get("/_sandbox/patients").json["patients"]}
    assert ages == {"tp-1": 46, "tp-2": 8}  # as on the anchor day


def test_epic_like_seed_drops_medication_statements_only(client: FlaskClient) -> None:
    headers = _user_headers(client, tenant="epic-like")
    assert client.get("/epic-like/fhir/MedicationRequest?patient=tp-1", headers=headers).json["total"] == 2
    assert client.get("/epic-like/fhir/Observation?patient=tp-1", headers=headers).json["total"] == 4


def test_a_seed_file_that_is_not_a_transaction_stops_the_start(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "patients").mkdir()
    (tmp_path / "patients" / "bad.json").write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection"})
    )
    with pytest.raises(RuntimeError, match="bad.json"):
        create_sandbox_app(SandboxConfig(seed_dir=tmp_path, clients_file=CLIENTS, clock=clock))


def test_repository_seed_loads_when_present() -> None:
    if not list((DEFAULT_SEED_DIR / "patients").glob("*.json")):
        pytest.skip("config/sandbox/patients has no bundles yet")
    app = create_sandbox_app(SandboxConfig())
    patients = app.test_client().get("/_sandbox/patients").json["patients"]
    assert patients and all(p["name"] for p in patients)
