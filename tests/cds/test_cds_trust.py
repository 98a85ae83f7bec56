"""Trusting CDS Clients: every service and feedback call needs an allow-listed, fresh, signed JWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from flask.testing import FlaskClient

import plugin.cds
from plugin.app import create_app
from plugin.cds import config as cds_config
from plugin.cds.jwt_sign import b64url, client_claims, new_es384_key, public_jwk, sign_es384

from .support import EHR_ISS, JKU, NOW, RS_KID, SERVICE_URL, hook_body, order, post

BODY = hook_body("sci-adult", [order("sci-adult", 480)])


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


def _rsa_token(key: rsa.RSAPrivateKey, alg: str, claims: dict[str, Any]) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": RS_KID}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    digest = hashes.SHA384() if alg == "RS384" else hashes.SHA256()
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), digest)
    return f"{signing_input}.{b64url(signature)}"


def _assert_refused(response: Any) -> None:
    assert response.status_code == 401
    assert response.json == {
        "error": "invalid_token",
        "error_description": "the bearer token was not accepted",
    }


def test_a_valid_es384_token_is_accepted(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    assert post(cds_client, BODY, sign()).status_code == 200


def test_a_valid_rs384_token_is_accepted(cds_client: FlaskClient, rs_key: rsa.RSAPrivateKey) -> None:
    token = _rsa_token(rs_key, "RS384", client_claims(EHR_ISS, SERVICE_URL, NOW))
    assert post(cds_client, BODY, token).status_code == 200


def test_no_authorization_header_is_refused(cds_client: FlaskClient) -> None:
    _assert_refused(cds_client.post("/cds-services/itb-dose-check", json=BODY))


def test_alg_none_is_refused(cds_client: FlaskClient) -> None:
    token = _compact({"alg": "none", "typ": "JWT"}, client_claims(EHR_ISS, SERVICE_URL, NOW), b"")
    _assert_refused(post(cds_client, BODY, token))


def test_hs256_is_refused_even_when_keyed_with_the_public_key(cds_client: FlaskClient, es_key: Any) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": "es-1"}
    claims = client_claims(EHR_ISS, SERVICE_URL, NOW)
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    secret = json.dumps(public_jwk(es_key.public_key(), "es-1")).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    _assert_refused(post(cds_client, BODY, f"{signing_input}.{b64url(signature)}"))


def test_rs256_is_refused(cds_client: FlaskClient, rs_key: rsa.RSAPrivateKey) -> None:
    _assert_refused(
        post(cds_client, BODY, _rsa_token(rs_key, "RS256", client_claims(EHR_ISS, SERVICE_URL, NOW)))
    )


def test_wrong_audience_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    _assert_refused(post(cds_client, BODY, sign(aud="http://localhost/cds-services/other")))


def test_audience_of_another_endpoint_of_ours_is_refused(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    _assert_refused(post(cds_client, BODY, sign(aud="http://localhost/cds-services/itb-dose-check/feedback")))


def test_expired_token_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    _assert_refused(
        post(cds_client, BODY, sign(exp=int(NOW.timestamp()) - 61, iat=int(NOW.timestamp()) - 400))
    )


def test_expiry_within_the_leeway_is_accepted(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    token = sign(exp=int(NOW.timestamp()) - 30, iat=int(NOW.timestamp()) - 300)
    assert post(cds_client, BODY, token).status_code == 200


def test_token_issued_in_the_future_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    _assert_refused(post(cds_client, BODY, sign(iat=int(NOW.timestamp()) + 120)))


def test_missing_jti_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    _assert_refused(post(cds_client, BODY, sign(jti="")))


def test_replayed_jti_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    token = sign()
    assert post(cds_client, BODY, token).status_code == 200
    _assert_refused(post(cds_client, BODY, token))


def test_unknown_issuer_is_refused(cds_client: FlaskClient, es_key: Any) -> None:
    token = sign_es384(es_key, "es-1", client_claims("https://other-ehr.example", SERVICE_URL, NOW))
    _assert_refused(post(cds_client, BODY, token))


def test_unknown_kid_is_refused(cds_client: FlaskClient, es_key: Any) -> None:
    token = sign_es384(es_key, "not-a-kid", client_claims(EHR_ISS, SERVICE_URL, NOW))
    _assert_refused(post(cds_client, BODY, token))


def test_signature_by_another_key_is_refused(cds_client: FlaskClient) -> None:
    token = sign_es384(new_es384_key(), "es-1", client_claims(EHR_ISS, SERVICE_URL, NOW))
    _assert_refused(post(cds_client, BODY, token))


def test_tampered_payload_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    header, _payload, signature = sign().split(".")
    claims = {**client_claims(EHR_ISS, SERVICE_URL, NOW), "iss": EHR_ISS}
    _assert_refused(post(cds_client, BODY, f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"))


def test_jku_not_on_the_allow_list_is_refused(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    with responses.RequestsMock() as mocked:  # nothing may be fetched from the attacker's URL
        _assert_refused(post(cds_client, BODY, sign(header={"jku": "https://evil.example/jwks.json"})))
        assert len(mocked.calls) == 0


@responses.activate
def test_allow_listed_jku_is_fetched_once_and_cached(cds_client: FlaskClient) -> None:
    key = new_es384_key()
    responses.get(JKU, json={"keys": [public_jwk(key.public_key(), "jku-key")]})
    for _ in range(2):
        token = sign_es384(key, "jku-key", client_claims(EHR_ISS, SERVICE_URL, NOW), jku=JKU)
        assert post(cds_client, BODY, token).status_code == 200
    assert len(responses.calls) == 1


def test_public_url_setting_decides_the_expected_audience(
    tmp_path: Path, cds_settings: dict[str, Any], sign: Callable[..., str]
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "k",
            "EHR_REGISTRY": [],
            "PUBLIC_URL": "https://itb.example.org/",
            **cds_settings,
        },
        instance_path=str(tmp_path / "i"),
    )
    plugin.cds.init_app(app, audit_sink=lambda _e: None, clock=lambda: NOW)
    client = app.test_client()
    _assert_refused(post(client, BODY, sign()))
    assert (
        post(client, BODY, sign(aud="https://itb.example.org/cds-services/itb-dose-check")).status_code == 200
    )
    app.extensions["itb.db"].dispose()


def test_insecure_sandbox_accepts_unsigned_calls(tmp_path: Path) -> None:
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "k", "EHR_REGISTRY": [], "CDS_INSECURE_SANDBOX": "true"},
        instance_path=str(tmp_path / "i"),
    )
    plugin.cds.init_app(app, audit_sink=lambda _e: None, clock=lambda: NOW)
    response = app.test_client().post("/cds-services/itb-dose-check", json=BODY)
    assert response.status_code == 200
    assert response.json["cards"][0]["indicator"] == "info"
    app.extensions["itb.db"].dispose()


def test_insecure_sandbox_is_refused_in_production() -> None:
    app = Flask(__name__)
    app.config.update(IS_PRODUCTION=True, CDS_INSECURE_SANDBOX="true")
    with pytest.raises(RuntimeError, match="production"):
        cds_config.configure(app)


def test_refusal_does_not_leak_the_reason(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    response = post(cds_client, BODY, sign(aud="http://localhost/elsewhere"))
    assert "aud" not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_garbage_token_is_refused(cds_client: FlaskClient) -> None:
    _assert_refused(post(cds_client, BODY, "not.a.jwt"))
    _assert_refused(post(cds_client, BODY, base64.b64encode(b"x").decode()))


def test_a_token_used_on_a_refused_request_cannot_be_replayed(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    token = sign()
    assert post(cds_client, {**BODY, "prefetch": {}}, token).status_code == 412
    _assert_refused(post(cds_client, BODY, token))


def test_a_replay_issues_no_card(cds_app: Any, cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    from plugin.cds.models import IssuedCard

    token = sign()
    assert post(cds_client, BODY, token).status_code == 200
    _assert_refused(post(cds_client, BODY, token))
    with cds_app.extensions["itb.db"].session() as session:
        assert session.query(IssuedCard).count() == 1
