"""An auditor sees the records of the EHR they launched from (and of its CDS clients), no other EHR's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import plugin.cds
from plugin.app import create_app
from plugin.audit.export import import_csv
from plugin.db import Database
from tests.audit_view.support import AUDITOR, SANDBOX_ISS, add, add_dose_change, make_launch

OTHER_EHR = "https://other-hospital.example/fhir"
OUR_CDS_CLIENT = "https://ehr-cds.example"
OTHER_CDS_CLIENT = "https://other-cds.example"
REGISTERED_CDS_ISSUER = "https://hospital-cds.example"


@pytest.fixture
def registry_entries(registry_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sandbox EHR's registry entry, naming a CDS issuer it trusts."""
    return [{**registry_entries[0], "cds_issuers": [REGISTERED_CDS_ISSUER]}]


@pytest.fixture
def app(tmp_path: Path, registry_entries: list[dict[str, Any]]) -> Iterator[Flask]:
    """Create an app whose CDS allow-list has a client for the sandbox EHR and one for another EHR."""
    clients = [
        {"iss": OUR_CDS_CLIENT, "name": "Our EHR", "jwks": {"keys": []}, "fhir_servers": [SANDBOX_ISS]},
        {"iss": OTHER_CDS_CLIENT, "name": "Other EHR", "jwks": {"keys": []}, "fhir_servers": [OTHER_EHR]},
    ]
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "k", "EHR_REGISTRY": registry_entries, "CDS_CLIENTS": clients},
        instance_path=str(tmp_path / "instance"),
    )
    plugin.cds.init_app(app)
    yield app
    app.extensions["itb.db"].dispose()


@pytest.fixture
def mixed(db: Database) -> Database:
    """Patient p1 at our EHR and another p1 (another person) at another EHR, each with a CDS card."""
    add_dose_change(db, 0, "c1", patient_id="p1")
    add(
        db, 5, "dose-change.propose", iss=OTHER_EHR, actor="Practitioner/elsewhere", related=["DoseChange/x9"]
    )
    add(db, 6, "cds.card", iss=OUR_CDS_CLIENT, actor=f"cds-client:{OUR_CDS_CLIENT}", actor_role="cds")
    add(db, 7, "cds.card", iss=OTHER_CDS_CLIENT, actor=f"cds-client:{OTHER_CDS_CLIENT}", actor_role="cds")
    add(db, 8, "cds.feedback", iss=REGISTERED_CDS_ISSUER, actor="Practitioner/clinician-1")
    return db


def test_search_shows_only_our_ehrs_records_and_its_cds_clients(
    client: FlaskClient, mixed: Database, auditor: str
) -> None:
    page = client.get(f"/l/{auditor}/audit/", query_string={"patient": "p1"}).get_data(as_text=True)
    assert OUR_CDS_CLIENT in page
    assert "Practitioner/elsewhere" not in page and OTHER_CDS_CLIENT not in page


def test_the_timeline_leaves_out_the_same_id_at_another_ehr(
    client: FlaskClient, mixed: Database, auditor: str
) -> None:
    page = client.get(f"/l/{auditor}/audit/patients/p1").get_data(as_text=True)
    assert "c1" in page and "x9" not in page and "Practitioner/elsewhere" not in page


def test_exports_hold_only_our_ehrs_records(client: FlaskClient, mixed: Database, auditor: str) -> None:
    rows = import_csv(client.get(f"/l/{auditor}/audit/export/csv").get_data(as_text=True))
    assert {row["iss"] for row in rows} == {SANDBOX_ISS, OUR_CDS_CLIENT, REGISTERED_CDS_ISSUER}


def test_an_auditor_of_the_other_ehr_sees_only_its_records(
    app: Flask, client: FlaskClient, mixed: Database
) -> None:
    launch, handle = make_launch(app, role="auditor", fhir_user=AUDITOR)
    with app.extensions["itb.db"].session() as session:
        stored = session.get(type(launch), launch.id)
        assert stored is not None
        stored.iss = OTHER_EHR
        session.commit()
    rows = import_csv(client.get(f"/l/{handle}/audit/export/csv").get_data(as_text=True))
    assert {row["iss"] for row in rows} == {OTHER_EHR, OTHER_CDS_CLIENT}
