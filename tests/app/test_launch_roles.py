"""The launch's role: the registry's mapping first, else a PractitionerRole coded pharmacist at the EHR."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses

from plugin.launches.roles import role_from_ehr
from smart_launch.fhir_client import FhirClient

ISS = "https://ehr.example.org/fhir"
PHARMACIST = {"coding": [{"system": "http://snomed.info/sct", "code": "46255001", "display": "Pharmacist"}]}
NURSE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "nurse"}]}


def _role(code: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": "r1", "code": [code], **fields}


def _bundle(*roles: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in roles]}


@pytest.fixture
def client() -> Iterator[FhirClient]:
    fhir = FhirClient(ISS, lambda: "token", max_retries=0)
    yield fhir
    fhir.close()


@responses.activate
def test_a_practitioner_with_a_pharmacist_role_is_a_pharmacist(client: FhirClient) -> None:
    responses.get(f"{ISS}/PractitionerRole", json=_bundle(_role(NURSE), _role(PHARMACIST)))
    assert role_from_ehr(client, f"{ISS}/Practitioner/p7", ISS) == "pharmacist"
    assert responses.calls[0].request.params == {"practitioner": "Practitioner/p7"}
    assert responses.calls[0].request.headers["Authorization"] == "Bearer token"


@responses.activate
def test_a_fhir_user_that_is_a_practitioner_role_is_read_directly(client: FhirClient) -> None:
    responses.get(f"{ISS}/PractitionerRole/r1", json=_role(PHARMACIST))
    assert role_from_ehr(client, "PractitionerRole/r1", ISS) == "pharmacist"


@responses.activate
@pytest.mark.parametrize("roles", [(_role(NURSE),), (_role(PHARMACIST, active=False),), ()])
def test_no_active_pharmacist_role_gives_no_role(
    client: FhirClient, roles: tuple[dict[str, Any], ...]
) -> None:
    responses.get(f"{ISS}/PractitionerRole", json=_bundle(*roles))
    assert role_from_ehr(client, "Practitioner/p7", ISS) is None


@responses.activate
def test_a_refused_lookup_gives_no_role_and_says_why_without_phi(
    client: FhirClient, caplog: pytest.LogCaptureFixture
) -> None:
    responses.get(
        f"{ISS}/PractitionerRole", status=403, json={"resourceType": "OperationOutcome", "issue": []}
    )
    assert role_from_ehr(client, "Practitioner/p7", ISS) is None
    assert "could not be read" in caplog.text and "p7" not in caplog.text


@responses.activate
def test_a_fhir_user_on_another_server_is_not_looked_up(client: FhirClient) -> None:
    assert role_from_ehr(client, "https://elsewhere.example/fhir/Practitioner/p7", ISS) is None
    assert role_from_ehr(client, "Patient/p1", ISS) is None
    assert role_from_ehr(client, None, ISS) is None
    assert len(responses.calls) == 0
