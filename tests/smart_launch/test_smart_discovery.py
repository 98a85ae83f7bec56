"""Specification of SMART discovery: fail closed, resolve legacy relative URLs, pick the scope syntax."""

from __future__ import annotations

import pytest
import requests
import responses
from smart_launch_support import AUTHORIZE_URL, ISS, TOKEN_URL, smart_configuration_document

from smart_launch.discovery import build_scopes, discover, parse_configuration, scope_style
from smart_launch.errors import DiscoveryError

WELL_KNOWN = ISS + "/.well-known/smart-configuration"


@responses.activate
def test_discover_reads_the_configuration_with_accept_json() -> None:
    responses.get(WELL_KNOWN, json=smart_configuration_document())
    config = discover(ISS + "/")
    assert config.authorization_endpoint == AUTHORIZE_URL
    assert config.token_endpoint == TOKEN_URL
    assert config.issuer == ISS
    assert "permission-v2" in config.capabilities
    assert config.code_challenge_methods_supported == ("S256",)
    assert config.token_endpoint_auth_signing_alg_values_supported == ("RS384", "ES384")
    assert responses.calls[0].request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("missing", ["authorization_endpoint", "token_endpoint"])
def test_a_missing_endpoint_fails_closed(missing: str) -> None:
    with pytest.raises(DiscoveryError, match=missing):
        parse_configuration(ISS, smart_configuration_document(**{missing: None}))


def test_a_server_without_s256_fails_closed() -> None:
    document = smart_configuration_document(code_challenge_methods_supported=["plain"])
    with pytest.raises(DiscoveryError, match="S256"):
        parse_configuration(ISS, document)


def test_an_absent_code_challenge_methods_field_fails_closed() -> None:
    document = smart_configuration_document(code_challenge_methods_supported=None)
    with pytest.raises(DiscoveryError, match="code_challenge_methods_supported"):
        parse_configuration(ISS, document)


def test_legacy_relative_endpoints_are_resolved_against_the_fhir_base() -> None:
    document = smart_configuration_document(
        authorization_endpoint="auth/authorize", token_endpoint="/oauth/token"
    )
    config = parse_configuration(ISS, document)
    assert config.authorization_endpoint == ISS + "/auth/authorize"
    assert config.token_endpoint == "https://ehr.example.org/oauth/token"


def test_an_http_endpoint_for_an_https_server_is_refused() -> None:
    document = smart_configuration_document(token_endpoint="http://ehr.example.org/token")
    with pytest.raises(DiscoveryError, match="downgrades"):
        parse_configuration(ISS, document)


def test_a_non_http_endpoint_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="absolute http"):
        parse_configuration(ISS, smart_configuration_document(token_endpoint="javascript:alert(1)"))


def test_a_malformed_list_field_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="capabilities"):
        parse_configuration(ISS, smart_configuration_document(capabilities="launch-ehr"))


@responses.activate
def test_a_non_json_answer_is_a_discovery_error() -> None:
    responses.get(WELL_KNOWN, body="<html>login</html>", content_type="text/html")
    with pytest.raises(DiscoveryError, match="not valid JSON"):
        discover(ISS)


@responses.activate
def test_a_json_array_is_a_discovery_error() -> None:
    responses.get(WELL_KNOWN, json=[])
    with pytest.raises(DiscoveryError, match="not a JSON object"):
        discover(ISS)


@responses.activate
def test_a_404_is_a_discovery_error() -> None:
    responses.get(WELL_KNOWN, status=404)
    with pytest.raises(DiscoveryError, match="HTTP 404"):
        discover(ISS)


@responses.activate
def test_a_network_failure_is_a_discovery_error() -> None:
    responses.get(WELL_KNOWN, body=requests.ConnectionError("refused"))
    with pytest.raises(DiscoveryError, match="could not reach"):
        discover(ISS)


def test_an_iss_that_is_not_an_http_url_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="iss"):
        discover("file:///etc/passwd")


def test_scope_style_is_v2_only_when_permission_v2_is_advertised() -> None:
    v2 = parse_configuration(ISS, smart_configuration_document())
    v1 = parse_configuration(ISS, smart_configuration_document(capabilities=["launch-ehr", "permission-v1"]))
    assert scope_style(v2) == "v2"
    assert scope_style(v1) == "v1"


def test_v2_scopes_for_an_ehr_launch() -> None:
    scope = build_scopes(
        ["Patient", "Observation", "DocumentReference"],
        ["DocumentReference", "DetectedIssue"],
        style="v2",
        launch=True,
        standalone=False,
    )
    assert scope == (
        "launch openid fhirUser offline_access patient/Patient.rs patient/Observation.rs "
        "patient/DocumentReference.crs patient/DetectedIssue.c"
    )


def test_a_type_the_client_updates_gets_u_in_cruds_order_in_v2_and_write_in_v1() -> None:
    updates = ["DetectedIssue"]
    v2 = build_scopes(
        ["DetectedIssue"],
        ["DetectedIssue", "Provenance"],
        style="v2",
        launch=True,
        standalone=False,
        resource_updates=updates,
    )
    assert v2.split()[-2:] == ["patient/DetectedIssue.crus", "patient/Provenance.c"]
    v1 = build_scopes(
        ["DetectedIssue"], [], style="v1", launch=True, standalone=False, resource_updates=updates
    )
    assert v1.split()[-2:] == ["patient/DetectedIssue.read", "patient/DetectedIssue.write"]


def test_v1_scopes_for_a_standalone_launch_without_identity() -> None:
    scope = build_scopes(
        ["Patient"],
        ["DocumentReference"],
        style="v1",
        launch=False,
        standalone=True,
        openid=False,
        offline=False,
    )
    assert scope == "launch/patient online_access patient/Patient.read patient/DocumentReference.write"


def test_scopes_list_each_resource_once() -> None:
    scope = build_scopes(["Patient", "Patient"], [], style="v2", launch=True, standalone=False)
    assert scope.split().count("patient/Patient.rs") == 1
