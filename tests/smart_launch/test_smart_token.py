"""Specification of the code exchange and refresh for public, symmetric and asymmetric clients."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from joserfc import jws
from joserfc.jwk import import_key
from smart_launch_support import ISS, TOKEN_URL

from smart_launch.discovery import SmartConfiguration
from smart_launch.errors import TokenError
from smart_launch.keys import KeySet
from smart_launch.oauth import PendingAuthorization, exchange_code, needs_refresh, refresh_tokens
from smart_launch.registration import ClientRegistration

REDIRECT = "https://app.example.org/callback"


@pytest.fixture
def pending(now: datetime) -> PendingAuthorization:
    """Return a pending authorization as begin_authorization would have stored it."""
    return PendingAuthorization(
        state="st",
        code_verifier="verifier-123",
        nonce=None,
        iss=ISS,
        redirect_uri=REDIRECT,
        scope="launch patient/Patient.rs",
        launch="xyz",
        created_at=now,
    )


def _token_response(**extra: object) -> dict[str, object]:
    """Return a typical SMART token response."""
    body: dict[str, object] = {
        "access_token": "AT-1",
        "token_type": "bearer",
        "expires_in": 570,
        "scope": "launch patient/Patient.rs",
        "refresh_token": "RT-1",
        "patient": "123",
        "need_patient_banner": False,
    }
    body.update(extra)
    return body


def _form(call_index: int = 0) -> dict[str, str]:
    """Return the form body of a recorded request."""
    body = responses.calls[call_index].request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {name: values[0] for name, values in parse_qs(text).items()}


@responses.activate
def test_a_public_client_sends_client_id_and_the_verifier(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, json=_token_response())
    tokens = exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)
    form = _form()
    assert form == {
        "grant_type": "authorization_code",
        "code": "CODE",
        "redirect_uri": REDIRECT,
        "code_verifier": "verifier-123",
        "client_id": "pub",
    }
    assert "Authorization" not in responses.calls[0].request.headers
    assert tokens.access_token == "AT-1" and tokens.token_type == "Bearer"
    assert tokens.expires_at == now + timedelta(seconds=570)
    assert tokens.patient == "123" and tokens.need_patient_banner is False


@responses.activate
def test_client_secret_basic_uses_http_basic_and_no_client_id(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, json=_token_response())
    client = ClientRegistration(
        iss=ISS, client_id="conf", auth_method="client_secret_basic", client_secret="s3cr:t"
    )
    exchange_code(config, client, pending, "CODE", now=now)
    assert (
        responses.calls[0].request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"conf:s3cr:t").decode()
    )
    assert "client_id" not in _form() and "client_secret" not in _form()


@responses.activate
def test_client_secret_post_puts_the_secret_in_the_body(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, json=_token_response())
    client = ClientRegistration(
        iss=ISS, client_id="conf", auth_method="client_secret_post", client_secret="sek"
    )
    exchange_code(config, client, pending, "CODE", now=now)
    assert _form()["client_id"] == "conf" and _form()["client_secret"] == "sek"
    assert "Authorization" not in responses.calls[0].request.headers


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
@responses.activate
def test_private_key_jwt_sends_a_short_lived_signed_assertion(
    alg: str,
    config: SmartConfiguration,
    pending: PendingAuthorization,
    now: datetime,
    es384_keys: KeySet,
    rs384_keys: KeySet,
) -> None:
    keys = es384_keys if alg == "ES384" else rs384_keys
    responses.post(TOKEN_URL, json=_token_response())
    responses.post(TOKEN_URL, json=_token_response())
    client = ClientRegistration(
        iss=ISS, client_id="asym", auth_method="private_key_jwt", signing_keys=keys, signing_alg=alg
    )  # type: ignore[arg-type]
    exchange_code(config, client, pending, "CODE", now=now)
    exchange_code(config, client, pending, "CODE2", now=now)
    jtis = set()
    for index in (0, 1):
        form = _form(index)
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assert "client_id" not in form
        public = import_key(keys.public_jwks()["keys"][0])
        verified = jws.deserialize_compact(form["client_assertion"], public, algorithms=[alg])
        header, claims = verified.headers(), json.loads(verified.payload)
        assert header["alg"] == alg and header["kid"] == keys.active_kid and header["typ"] == "JWT"
        assert claims["iss"] == claims["sub"] == "asym"
        assert claims["aud"] == TOKEN_URL
        assert claims["iat"] == int(now.timestamp())
        assert 0 < claims["exp"] - claims["iat"] <= 300
        jtis.add(claims["jti"])
    assert len(jtis) == 2


@responses.activate
def test_a_token_error_becomes_token_error_with_the_oauth_code(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(
        TOKEN_URL, status=401, json={"error": "invalid_grant", "error_description": "Invalid PKCE\nVerifier"}
    )
    with pytest.raises(TokenError) as caught:
        exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)
    assert caught.value.error_code == "invalid_grant"
    assert caught.value.status == 401
    assert caught.value.safe_message == "invalid_grant: Invalid PKCE Verifier"


@responses.activate
def test_an_unreachable_token_endpoint_is_a_network_error(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, body=requests.ConnectTimeout())
    with pytest.raises(TokenError) as caught:
        exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)
    assert caught.value.error_code == "network_error" and caught.value.status == 0


@responses.activate
def test_a_response_without_access_token_is_refused(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, json={"token_type": "Bearer"})
    with pytest.raises(TokenError, match="access_token"):
        exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)


@responses.activate
def test_a_non_bearer_token_is_refused(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    responses.post(TOKEN_URL, json=_token_response(token_type="mac"))
    with pytest.raises(TokenError, match="Bearer"):
        exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)


@responses.activate
def test_missing_expires_in_defaults_to_five_minutes_and_context_is_parsed(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    body = _token_response(
        fhirContext=[{"reference": "MedicationRequest/9"}, "junk"],
        smart_style_url="https://ehr/style.json",
        intent="reconcile",
        tenant="t1",
        custom="kept",
        __epic_token="dropped",
    )
    del body["expires_in"]
    del body["need_patient_banner"]
    responses.post(TOKEN_URL, json=body)
    tokens = exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)
    assert tokens.expires_at == now + timedelta(seconds=300)
    assert tokens.need_patient_banner is None
    assert tokens.fhir_context == ({"reference": "MedicationRequest/9"},)
    assert (tokens.intent, tokens.tenant, tokens.smart_style_url) == (
        "reconcile",
        "t1",
        "https://ehr/style.json",
    )
    assert tokens.raw_extra == {"custom": "kept"}


@responses.activate
def test_an_omitted_scope_means_the_requested_scope(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime
) -> None:
    body = _token_response()
    del body["scope"]
    responses.post(TOKEN_URL, json=body)
    tokens = exchange_code(config, ClientRegistration(iss=ISS, client_id="pub"), pending, "CODE", now=now)
    assert tokens.scope == pending.scope


def test_the_token_set_repr_shows_no_tokens_or_patient(now: datetime) -> None:
    from smart_launch.tokens import parse_token_response

    tokens = parse_token_response(_token_response(id_token="a.b.c"), now=now, requested_scope=None)
    text = repr(tokens)
    assert "AT-1" not in text and "RT-1" not in text and "a.b.c" not in text and "123" not in text


def test_the_token_set_round_trips_through_storage(now: datetime) -> None:
    from smart_launch.tokens import TokenSet, parse_token_response

    tokens = parse_token_response(
        _token_response(fhirContext=[{"reference": "Encounter/1", "role": "x"}]),
        now=now,
        requested_scope=None,
    )
    assert TokenSet.from_dict(json.loads(json.dumps(tokens.to_dict()))) == tokens


@responses.activate
def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(
    config: SmartConfiguration, now: datetime
) -> None:
    body = _token_response(access_token="AT-2")
    del body["refresh_token"]
    responses.post(TOKEN_URL, json=body)
    tokens = refresh_tokens(config, ClientRegistration(iss=ISS, client_id="pub"), "RT-1", now=now)
    assert tokens.access_token == "AT-2" and tokens.refresh_token == "RT-1"
    assert _form() == {"grant_type": "refresh_token", "refresh_token": "RT-1", "client_id": "pub"}


@responses.activate
def test_refresh_takes_the_new_refresh_token_and_can_narrow_scope(
    config: SmartConfiguration, now: datetime
) -> None:
    responses.post(TOKEN_URL, json=_token_response(access_token="AT-2", refresh_token="RT-2"))
    client = ClientRegistration(
        iss=ISS, client_id="conf", auth_method="client_secret_basic", client_secret="x"
    )
    tokens = refresh_tokens(config, client, "RT-1", now=now, scope="patient/Patient.rs")
    assert tokens.refresh_token == "RT-2"
    assert _form()["scope"] == "patient/Patient.rs"
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_refresh_authenticates_asymmetric_clients_with_a_new_assertion(
    config: SmartConfiguration, now: datetime, es384_keys: KeySet
) -> None:
    responses.post(TOKEN_URL, json=_token_response())
    client = ClientRegistration(
        iss=ISS, client_id="asym", auth_method="private_key_jwt", signing_keys=es384_keys
    )
    refresh_tokens(config, client, "RT-1", now=now)
    assert _form()["client_assertion"].count(".") == 2


def test_needs_refresh_a_minute_before_expiry(now: datetime) -> None:
    from smart_launch.tokens import parse_token_response

    tokens = parse_token_response(_token_response(expires_in=600), now=now, requested_scope=None)
    assert not needs_refresh(tokens, now + timedelta(seconds=539))
    assert needs_refresh(tokens, now + timedelta(seconds=540))
    assert needs_refresh(tokens, now + timedelta(seconds=900))


@responses.activate
def test_nothing_secret_is_logged_even_at_debug(
    config: SmartConfiguration, pending: PendingAuthorization, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    responses.post(TOKEN_URL, json=_token_response())
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    client = ClientRegistration(
        iss=ISS, client_id="conf", auth_method="client_secret_post", client_secret="sek"
    )
    exchange_code(config, client, pending, "CODE-9", now=now)
    with pytest.raises(TokenError):
        refresh_tokens(config, client, "RT-1", now=now)
    for secret in ("CODE-9", "verifier-123", "sek", "AT-1", "RT-1", "123"):
        assert secret not in caplog.text
