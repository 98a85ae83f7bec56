"""The sandbox's SMART authorization server: discovery, code flow with PKCE per client type, refresh."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from .conftest import (
    ALL_PATIENT_SCOPES,
    ROOT,
    authorize,
    bearer,
    exchange,
    get_code,
    new_launch,
    pkce_pair,
    redirect_params,
    token_for,
)

SECRET = "sandbox-secret-change-me"


def test_smart_configuration_advertises_endpoints_and_capabilities(client: FlaskClient) -> None:
    response = client.get("/full/fhir/.well-known/smart-configuration", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.json
    assert doc["issuer"] == f"{ROOT}/full/fhir"
    assert doc["authorization_endpoint"] == f"{ROOT}/full/auth/authorize"
    assert doc["token_endpoint"] == f"{ROOT}/full/auth/token"
    assert doc["jwks_uri"] == f"{ROOT}/.well-known/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"private_key_jwt", "client_secret_basic"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert {"authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-v2",
        "permission-v1",
        "permission-offline",
        "permission-patient",
        "permission-user",
    ):
        assert capability in doc["capabilities"]
    assert doc["scopes_supported"]


def test_public_client_ehr_launch_returns_context_and_id_token(client: FlaskClient) -> None:
    code, verifier = get_code(client, scope=ALL_PATIENT_SCOPES + " online_access", nonce="n-123")
    response = exchange(client, code, verifier, client_id="itb-public")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert token["patient"] == "tp-1" and token["need_patient_banner"] is True
    assert token["smart_style_url"] == f"{ROOT}/smart-style.json"
    assert set(token["scope"].split()) == set((ALL_PATIENT_SCOPES + " online_access").split())
    assert token["refresh_token"]
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json)
    header = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    claims = header.claims
    assert header.header["kid"]
    assert claims["iss"] == f"{ROOT}/full/fhir" and claims["aud"] == "itb-public"
    assert claims["fhirUser"] == "Practitioner/clinician-1" and claims["nonce"] == "n-123"
    assert client.get("/smart-style.json").status_code == 200


def test_embedded_launch_says_no_banner_needed(client: FlaskClient) -> None:
    code, verifier = get_code(client, launch=new_launch(client, embedded=True))
    assert exchange(client, code, verifier, client_id="itb-public").json["need_patient_banner"] is False


def test_granted_scope_is_requested_intersect_allowed(client: FlaskClient) -> None:
    code, verifier = get_code(client, scope="launch patient/Observation.rs system/*.cruds made-up")
    token = exchange(client, code, verifier, client_id="itb-public").json
    assert token["scope"] == "launch patient/Observation.rs"
    assert "refresh_token" not in token and "id_token" not in token


def test_confidential_client_with_basic_secret(client: FlaskClient) -> None:
    code, verifier = get_code(client, client_id="itb-secret")
    basic = base64.b64encode(f"itb-secret:{SECRET}".encode()).decode()
    response = exchange(client, code, verifier, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.json


def test_confidential_client_with_wrong_secret_is_invalid_client(client: FlaskClient) -> None:
    code, verifier = get_code(client, client_id="itb-secret")
    basic = base64.b64encode(b"itb-secret:wrong").decode()
    response = exchange(client, code, verifier, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_confidential_client_cannot_pose_as_public(client: FlaskClient) -> None:
    code, verifier = get_code(client, client_id="itb-secret")
    response = exchange(client, code, verifier, client_id="itb-secret")
    assert response.json["error"] == "invalid_client"


def _assertion(
    key: RSAKey | ECKey,
    alg: str,
    jti: str | None = None,
    aud: str = f"{ROOT}/full/auth/token",
    lifetime: int = 240,
    kid: str | None = "k1",
) -> str:
    """A SMART client assertion for itb-jwt."""
    now = int(time.time())
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    claims = {
        "iss": "itb-jwt",
        "sub": "itb-jwt",
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or str(uuid.uuid4()),
    }
    return jwt.encode(header, claims, key, algorithms=[alg])


def _jwt_app(make_app: Any, key: RSAKey | ECKey) -> FlaskClient:
    """An app whose itb-jwt client has the test key inline."""
    jwks = {"keys": [{**key.as_dict(private=False), "kid": "k1"}]}
    app: Flask = make_app(jwks=jwks)
    return app.test_client()


def _jwt_exchange(client: FlaskClient, assertion: str) -> Any:
    code, verifier = get_code(client, client_id="itb-jwt")
    return exchange(
        client,
        code,
        verifier,
        client_assertion=assertion,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )


def test_private_key_jwt_rs384_and_es384(make_app: Any) -> None:
    for key, alg in ((RSAKey.generate_key(2048), "RS384"), (ECKey.generate_key("P-384"), "ES384")):
        client = _jwt_app(make_app, key)
        response = _jwt_exchange(client, _assertion(key, alg))
        assert response.status_code == 200, response.json


def test_private_key_jwt_refuses_replayed_jti_wrong_aud_rs256_missing_kid_and_long_exp(make_app: Any) -> None:
    key = RSAKey.generate_key(2048)
    client = _jwt_app(make_app, key)
    assert _jwt_exchange(client, _assertion(key, "RS384", jti="once")).status_code == 200
    bad = [
        _assertion(key, "RS384", jti="once"),
        _assertion(key, "RS384", aud=f"{ROOT}/epic-like/auth/token"),
        _assertion(key, "RS256"),
        _assertion(key, "RS384", kid=None),
        _assertion(key, "RS384", lifetime=3600),
        _assertion(RSAKey.generate_key(2048), "RS384"),
    ]
    for assertion in bad:
        response = _jwt_exchange(client, assertion)
        assert response.json["error"] == "invalid_client", response.json


def test_wrong_code_verifier_is_invalid_grant(client: FlaskClient) -> None:
    code, _ = get_code(client)
    response = exchange(client, code, pkce_pair()[0], client_id="itb-public")
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_code_is_single_use(client: FlaskClient) -> None:
    code, verifier = get_code(client)
    assert exchange(client, code, verifier, client_id="itb-public").status_code == 200
    assert exchange(client, code, verifier, client_id="itb-public").json["error"] == "invalid_grant"


def test_authorize_without_pkce_or_with_plain_is_refused(client: FlaskClient) -> None:
    for extra in ({}, {"code_challenge": "a" * 43, "code_challenge_method": "plain"}):
        params = redirect_params(authorize(client, launch=new_launch(client), **extra))
        assert params["error"] == "invalid_request"


def test_aud_mismatch_is_refused(client: FlaskClient) -> None:
    _, challenge = pkce_pair()
    for aud in (f"{ROOT}/full/fhir/", f"{ROOT}/epic-like/fhir", "https://evil.example/fhir"):
        params = redirect_params(authorize(client, launch=new_launch(client), challenge=challenge, aud=aud))
        assert params["error"] == "invalid_request" and "code" not in params


def test_unregistered_redirect_uri_is_not_redirected_to(client: FlaskClient) -> None:
    _, challenge = pkce_pair()
    response = authorize(
        client, launch=new_launch(client), challenge=challenge, redirect_uri="https://evil.example/cb"
    )
    assert response.status_code == 400 and "Location" not in response.headers


def test_unknown_launch_and_missing_launch_scope_are_refused(client: FlaskClient) -> None:
    _, challenge = pkce_pair()
    assert (
        redirect_params(authorize(client, launch="nope", challenge=challenge))["error"] == "invalid_request"
    )
    params = redirect_params(
        authorize(client, launch=new_launch(client), challenge=challenge, scope="patient/*.rs")
    )
    assert params["error"] == "invalid_scope"


def test_standalone_launch_shows_picker_then_issues_code_for_picked_patient(client: FlaskClient) -> None:
    verifier, challenge = pkce_pair()
    page = authorize(client, challenge=challenge, scope="launch/patient openid fhirUser patient/*.rs")
    assert page.status_code == 200 and b'data-patient-id="tp-2"' in page.data
    form = {
        "response_type": "code",
        "client_id": "itb-public",
        "redirect_uri": "http://127.0.0.1:5000/callback",
        "scope": "launch/patient openid fhirUser patient/*.rs",
        "state": "s1",
        "aud": f"{ROOT}/full/fhir",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "user": "pharmacist-1",
        "patient": "tp-2",
    }
    params = redirect_params(client.post("/full/auth/authorize", data=form))
    assert params["state"] == "s1"
    token = exchange(client, params["code"], verifier, client_id="itb-public").json
    assert token["patient"] == "tp-2"
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json)
    assert jwt.decode(token["id_token"], keys).claims["fhirUser"] == "Practitioner/pharmacist-1"


def test_refresh_rotates_and_old_refresh_token_is_then_invalid(client: FlaskClient) -> None:
    first = token_for(client, scope=ALL_PATIENT_SCOPES + " offline_access")
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "itb-public"}
    second = client.post("/full/auth/token", data=form)
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    assert second.json["patient"] == "tp-1" and second.json["access_token"] != first["access_token"]
    assert client.get("/full/fhir/Patient/tp-1", headers=bearer(second.json)).status_code == 200
    reuse = client.post("/full/auth/token", data=form)
    assert reuse.status_code == 400 and reuse.json["error"] == "invalid_grant"


def test_refresh_keep_mode_sends_no_new_refresh_token(make_app: Any) -> None:
    client = make_app(refresh_rotation="keep").test_client()
    first = token_for(client, scope=ALL_PATIENT_SCOPES + " online_access")
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "itb-public"}
    for _ in range(2):
        response = client.post("/full/auth/token", data=form)
        assert response.status_code == 200 and "refresh_token" not in response.json


def test_refresh_scope_may_narrow_but_not_widen(client: FlaskClient) -> None:
    first = token_for(client, scope="launch patient/Observation.rs offline_access")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": "itb-public",
        "scope": "patient/Observation.rs patient/Patient.rs",
    }
    assert client.post("/full/auth/token", data=form).json["error"] == "invalid_scope"


def test_token_for_one_tenant_is_refused_by_another(client: FlaskClient) -> None:
    token = token_for(client)
    assert client.get("/epic-like/fhir/Patient/tp-1", headers=bearer(token)).status_code == 401
