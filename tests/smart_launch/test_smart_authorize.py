"""Specification of the /authorize URL: PKCE S256 always, exact aud, unguessable state, nonce for openid."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from smart_launch_support import AUTHORIZE_URL, ISS, smart_configuration_document

from smart_launch.discovery import SmartConfiguration, parse_configuration
from smart_launch.oauth import PendingAuthorization, begin_authorization
from smart_launch.registration import ClientRegistration

REDIRECT = "https://app.example.org/callback"
SCOPE = "launch openid fhirUser patient/Patient.rs"


def _query(url: str) -> dict[str, str]:
    """Return the single-valued query parameters of ``url``."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _begin(
    config: SmartConfiguration,
    now: datetime,
    *,
    iss: str = ISS,
    scope: str = SCOPE,
    launch: str | None = "xyz",
):
    client = ClientRegistration(iss=iss, client_id="itb-app")
    return begin_authorization(config, client, redirect_uri=REDIRECT, launch=launch, scope=scope, now=now)


def test_the_url_carries_every_required_parameter(config: SmartConfiguration, now: datetime) -> None:
    url, pending = _begin(config, now)
    assert url.startswith(AUTHORIZE_URL + "?")
    query = _query(url)
    assert query["response_type"] == "code"
    assert query["client_id"] == "itb-app"
    assert query["redirect_uri"] == REDIRECT
    assert query["launch"] == "xyz"
    assert query["scope"] == SCOPE
    assert query["state"] == pending.state
    assert query["code_challenge_method"] == "S256"
    assert pending.iss == ISS and pending.launch == "xyz" and pending.created_at == now


def test_spaces_in_scope_are_percent_encoded(config: SmartConfiguration, now: datetime) -> None:
    url, _ = _begin(config, now)
    assert "scope=launch%20openid%20fhirUser" in url


def test_the_pkce_challenge_is_the_s256_of_the_kept_verifier(
    config: SmartConfiguration, now: datetime
) -> None:
    url, pending = _begin(config, now)
    expected = base64.urlsafe_b64encode(hashlib.sha256(pending.code_verifier.encode()).digest()).rstrip(b"=")
    assert _query(url)["code_challenge"] == expected.decode()
    assert 43 <= len(pending.code_verifier) <= 128


def test_state_has_at_least_128_bits_and_is_fresh_each_time(
    config: SmartConfiguration, now: datetime
) -> None:
    states = {_begin(config, now)[1].state for _ in range(20)}
    assert len(states) == 20
    assert all(len(base64.urlsafe_b64decode(state + "==")) >= 16 for state in states)


def test_aud_is_the_iss_exactly_as_given_including_path_and_slash(now: datetime) -> None:
    iss = "https://EHR.example.org/Fhir/R4/"
    config = parse_configuration(iss, smart_configuration_document())
    url, _ = _begin(config, now, iss=iss)
    assert _query(url)["aud"] == iss


def test_a_nonce_is_sent_and_kept_only_when_openid_is_requested(
    config: SmartConfiguration, now: datetime
) -> None:
    url, pending = _begin(config, now)
    assert pending.nonce and _query(url)["nonce"] == pending.nonce
    url, pending = _begin(config, now, scope="launch patient/Patient.rs")
    assert pending.nonce is None and "nonce" not in _query(url)


def test_a_standalone_launch_sends_no_launch_parameter(config: SmartConfiguration, now: datetime) -> None:
    url, _ = _begin(config, now, launch=None)
    assert "launch" not in _query(url)


def test_an_existing_query_on_the_authorize_endpoint_is_kept(now: datetime) -> None:
    config = parse_configuration(
        ISS, smart_configuration_document(authorization_endpoint=AUTHORIZE_URL + "?tenant=7")
    )
    url, _ = _begin(config, now)
    assert _query(url)["tenant"] == "7" and _query(url)["response_type"] == "code"


def test_pending_authorization_round_trips_and_hides_secrets_in_repr(
    config: SmartConfiguration, now: datetime
) -> None:
    _, pending = _begin(config, now)
    assert PendingAuthorization.from_dict(pending.to_dict()) == pending
    assert pending.state not in repr(pending) and pending.code_verifier not in repr(pending)


def test_pending_authorization_expires(config: SmartConfiguration, now: datetime) -> None:
    _, pending = _begin(config, now)
    assert not pending.is_expired(now + timedelta(minutes=5))
    assert pending.is_expired(now + timedelta(minutes=11))
