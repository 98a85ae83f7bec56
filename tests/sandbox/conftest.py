"""Fixtures for the sandbox EHR's tests: a pinned clock, a small seed, and helpers that run the SMART flow."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smart_launch.sandbox import SandboxConfig, create_sandbox_app

FIXTURES = Path(__file__).parent / "fixtures"
CLIENTS = Path(__file__).resolve().parents[2] / "config" / "sandbox" / "clients.toml"
ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROOT = "http://localhost"
REDIRECT = "http://127.0.0.1:5000/callback"
ALL_PATIENT_SCOPES = "launch openid fhirUser patient/*.cruds"


@dataclass
class Clock:
    """A clock tests can move."""

    now: datetime = ANCHOR

    def __call__(self) -> datetime:
        """Return the pinned time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    """A clock pinned at the seed anchor, so fixture dates are not shifted."""
    return Clock()


@pytest.fixture
def config(clock: Clock) -> SandboxConfig:
    """A config on the test fixtures; no faults endpoint unless a test asks."""
    return SandboxConfig(seed_dir=FIXTURES, clients_file=CLIENTS, clock=clock, allow_faults=True)


@pytest.fixture
def make_app(config: SandboxConfig) -> Callable[..., Flask]:
    """Build an app with config overrides."""

    def build(**overrides: Any) -> Flask:
        return create_sandbox_app(replace(config, **overrides))

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The default sandbox app."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client."""
    return app.test_client()


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def new_launch(client: FlaskClient, patient: str = "tp-1", tenant: str = "full", **extra: Any) -> str:
    """Create a launch id through the JSON helper."""
    response = client.post("/_sandbox/launches", json={"tenant": tenant, "patient": patient, **extra})
    assert response.status_code == 201
    return str(response.json["launch"])


def authorize(
    client: FlaskClient,
    *,
    client_id: str = "itb-public",
    scope: str = ALL_PATIENT_SCOPES,
    tenant: str = "full",
    launch: str | None = None,
    aud: str | None = None,
    challenge: str | None = None,
    nonce: str | None = None,
    **extra: str,
) -> Any:
    """Call the authorization endpoint; return the raw response."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st-" + secrets.token_hex(8),
        "aud": aud or f"{ROOT}/{tenant}/fhir",
        "code_challenge_method": "S256",
        **extra,
    }
    if challenge is not None:
        params["code_challenge"] = challenge
    if launch:
        params["launch"] = launch
    if nonce:
        params["nonce"] = nonce
    return client.get(f"/{tenant}/auth/authorize", query_string=params)


def redirect_params(response: Any) -> dict[str, str]:
    """The query parameters of a redirect to the app."""
    assert response.status_code == 302, response.data
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def get_code(client: FlaskClient, **kwargs: Any) -> tuple[str, str]:
    """Run an EHR launch's authorization step; return (code, verifier)."""
    verifier, challenge = pkce_pair()
    kwargs.setdefault(
        "launch", new_launch(client, kwargs.pop("patient", "tp-1"), kwargs.get("tenant", "full"))
    )
    params = redirect_params(authorize(client, challenge=challenge, **kwargs))
    assert "code" in params, params
    return params["code"], verifier


def exchange(
    client: FlaskClient,
    code: str,
    verifier: str,
    tenant: str = "full",
    headers: dict[str, str] | None = None,
    **form: str,
) -> Any:
    """POST the code to the token endpoint (public client unless form/headers say otherwise)."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **form,
    }
    return client.post(f"/{tenant}/auth/token", data=data, headers=headers)


def token_for(
    client: FlaskClient, scope: str = ALL_PATIENT_SCOPES, patient: str = "tp-1", tenant: str = "full"
) -> dict[str, Any]:
    """A token response for the public client after a full EHR launch."""
    code, verifier = get_code(client, scope=scope, patient=patient, tenant=tenant)
    response = exchange(client, code, verifier, tenant=tenant, client_id="itb-public")
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.json
    return body


def bearer(token: dict[str, Any]) -> dict[str, str]:
    """Authorization header for a token response."""
    return {"Authorization": f"Bearer {token['access_token']}"}
