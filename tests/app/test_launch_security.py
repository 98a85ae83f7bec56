"""The launch endpoints: allow-list, state handling, PKCE, and per-launch isolation (no cookies)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from plugin.clinician.models import NotePreview
from plugin.launches.models import Launch
from plugin.launches.smart import forget_discovery

AUTHORIZE = "https://ehr.example.org/oauth/authorize"
TOKEN = "https://ehr.example.org/oauth/token"
SANDBOX_ISS = "https://ehr.example.org/fhir"  # registered by tests/conftest.py


@pytest.fixture(autouse=True)
def _fresh_discovery_cache() -> None:
    forget_discovery()


def _mock_discovery(rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{SANDBOX_ISS}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": AUTHORIZE,
            "token_endpoint": TOKEN,
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr",
                "client-confidential-symmetric",
                "permission-v2",
                "context-ehr-patient",
            ],
        },
    )


def _mock_token(rsps: responses.RequestsMock, patient: str, access_token: str) -> None:
    rsps.post(
        TOKEN,
        json={
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "launch patient/Patient.rs",
            "patient": patient,
            "refresh_token": f"refresh-{access_token}",
        },
    )


def _start(client: FlaskClient, launch: str = "L1") -> dict[str, list[str]]:
    response = client.get(f"/launch?iss={SANDBOX_ISS}&launch={launch}")
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)


def test_unknown_iss_is_refused_with_400_and_no_request_to_it(client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        response = client.get("/launch?iss=https://evil.example/fhir&launch=x")
        assert len(rsps.calls) == 0
    assert response.status_code == 400
    assert b"not registered" in response.data


def test_launch_without_iss_is_refused(client: FlaskClient) -> None:
    assert client.get("/launch").status_code == 400


def test_ehr_launch_redirects_with_pkce_s256_state_and_exact_aud(client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        query = _start(client)
    assert query["aud"] == [SANDBOX_ISS]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 22  # at least 128 bits, base64url
    assert query["launch"] == ["L1"]
    assert "launch" in query["scope"][0].split()


def test_callback_with_unknown_state_is_refused(client: FlaskClient) -> None:
    response = client.get("/callback?code=abc&state=forged-state-value")
    assert response.status_code == 400
    assert b"not valid" in response.data


def test_callback_state_can_be_used_only_once(client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        state = _start(client)["state"][0]
        _mock_token(rsps, "p1", "token-1")
        first = client.get(f"/callback?code=c1&state={state}")
        replay = client.get(f"/callback?code=c1&state={state}")
    assert first.status_code == 303
    assert first.headers["Location"].startswith("/l/")
    assert replay.status_code == 400


def test_two_interleaved_launches_keep_their_own_patients(app: Flask, client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        state_a = _start(client, "LA")["state"][0]
        state_b = _start(client, "LB")["state"][0]
        # The second tab finishes first: each state must still map to its own launch.
        _mock_token(rsps, "patient-b", "token-b")
        location_b = client.get(f"/callback?code=cb&state={state_b}").headers["Location"]
        _mock_token(rsps, "patient-a", "token-a")
        location_a = client.get(f"/callback?code=ca&state={state_a}").headers["Location"]
    assert location_a != location_b
    from plugin.launches.service import launch_for_handle

    with app.app_context():
        assert launch_for_handle(location_a.split("/")[2]).patient_id == "patient-a"
        assert launch_for_handle(location_b.split("/")[2]).patient_id == "patient-b"


def test_tokens_are_encrypted_at_rest_and_sent_nowhere_else(app: Flask, client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        state = _start(client)["state"][0]
        _mock_token(rsps, "p1", "very-secret-access-token")
        response = client.get(f"/callback?code=c1&state={state}")
    assert b"very-secret-access-token" not in response.data
    assert "Set-Cookie" not in response.headers
    with app.app_context(), app.extensions["itb.db"].session() as session:
        stored = session.query(Launch).one()
    assert "very-secret-access-token" not in stored.tokens_enc


def test_a_whole_launch_logs_no_token_code_verifier_or_secret(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        query = _start(client)
        _mock_token(rsps, "p1", "access-token-xyz")
        client.get(f"/callback?code=the-auth-code&state={query['state'][0]}")
        token_request = rsps.calls[-1].request
    verifier = parse_qs(token_request.body)["code_verifier"][0]
    logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    for secret in (
        "access-token-xyz",
        "refresh-access-token-xyz",
        "the-auth-code",
        verifier,
        "test-secret",
        query["state"][0],
    ):
        assert secret not in logged


def test_authorization_denied_by_the_ehr_shows_a_reason(client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        state = _start(client)["state"][0]
    response = client.get(f"/callback?error=access_denied&state={state}")
    assert response.status_code == 403
    assert b"access_denied" in response.data


def test_discovery_without_s256_fails_closed(client: FlaskClient) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{SANDBOX_ISS}/.well-known/smart-configuration",
            json={
                "authorization_endpoint": AUTHORIZE,
                "token_endpoint": TOKEN,
                "code_challenge_methods_supported": ["plain"],
            },
        )
        response = client.get(f"/launch?iss={SANDBOX_ISS}&launch=x")
    assert response.status_code == 502
    assert b"SMART configuration" in response.data


def test_a_completed_launch_purges_the_previewed_charts_of_expired_launches(
    app: Flask, client: FlaskClient
) -> None:
    # The previewed chart is PHI: it must not wait for the next preview to go once its launch is over.
    now = datetime.now(UTC)
    with app.app_context(), app.extensions["itb.db"].session() as session:
        for name, expires_at in (("ended", now - timedelta(hours=2)), ("live", now + timedelta(hours=2))):
            session.add(
                Launch(
                    id=name, handle_hash=name, iss=SANDBOX_ISS, client_id="itb", patient_id="p1",
                    tokens_enc="sealed", access_expires_at=expires_at, created_at=now - timedelta(hours=3),
                    expires_at=expires_at,
                )
            )  # fmt: skip
            session.flush()
            session.add(
                NotePreview(
                    launch_id=name, submit_key=name, chart_enc="sealed", stored_at=now, expires_at=expires_at
                )
            )
    with responses.RequestsMock() as rsps:
        _mock_discovery(rsps)
        state = _start(client)["state"][0]
        _mock_token(rsps, "p2", "token-2")
        assert client.get(f"/callback?code=c2&state={state}").status_code == 303
    with app.app_context(), app.extensions["itb.db"].session() as session:
        assert sorted(session.scalars(select(NotePreview.launch_id))) == ["live"]
