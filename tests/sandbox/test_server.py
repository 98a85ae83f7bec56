"""The sandbox over real HTTP: serve_in_thread, and private_key_jwt with a JWKS fetched from a URL."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import RSAKey

from smart_launch.sandbox import SandboxConfig, ServerHandle, create_sandbox_app, serve_in_thread

from .conftest import CLIENTS, FIXTURES


@pytest.fixture
def app_keys() -> RSAKey:
    """The test app's signing key."""
    return RSAKey.generate_key(2048, parameters={"kid": "app-1"})


@pytest.fixture
def servers(app_keys: RSAKey) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    """A stand-in app serving its JWKS, and the sandbox pointing at it; both on free ports."""
    fake_app = Flask("fake_itb_app")
    fake_app.add_url_rule(
        "/.well-known/jwks.json", "jwks", lambda: jsonify({"keys": [app_keys.as_dict(private=False)]})
    )
    app_server = serve_in_thread(fake_app)
    config = SandboxConfig.for_app(app_server.url, seed_dir=FIXTURES, clients_file=CLIENTS)
    sandbox_server = serve_in_thread(create_sandbox_app(config))
    yield app_server, sandbox_server
    sandbox_server.shutdown()
    app_server.shutdown()


def test_private_key_jwt_flow_over_http_with_jwks_uri(
    servers: tuple[ServerHandle, ServerHandle], app_keys: RSAKey
) -> None:
    app_server, sandbox = servers
    iss = f"{sandbox.url}/full/fhir"
    with requests.Session() as http:
        discovery = http.get(f"{iss}/.well-known/smart-configuration", timeout=5).json()
        launch = http.get(
            f"{sandbox.url}/_sandbox/launch", params={"patient": "tp-1"}, allow_redirects=False, timeout=5
        )
        sent = {k: v[0] for k, v in parse_qs(urlsplit(launch.headers["Location"]).query).items()}
        assert launch.headers["Location"].startswith(f"{app_server.url}/launch?") and sent["iss"] == iss
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect_uri = f"{app_server.url}/callback"
        authorized = http.get(
            discovery["authorization_endpoint"],
            allow_redirects=False,
            timeout=5,
            params={
                "response_type": "code",
                "client_id": "itb-jwt",
                "redirect_uri": redirect_uri,
                "state": "s",
                "scope": "launch openid fhirUser patient/*.rs",
                "aud": iss,
                "launch": sent["launch"],
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = parse_qs(urlsplit(authorized.headers["Location"]).query)["code"][0]
        now = int(time.time())
        assertion = jwt.encode(
            {"alg": "RS384", "kid": "app-1", "typ": "JWT"},
            {
                "iss": "itb-jwt",
                "sub": "itb-jwt",
                "aud": discovery["token_endpoint"],
                "exp": now + 240,
                "jti": str(uuid.uuid4()),
            },
            app_keys,
            algorithms=["RS384"],
        )
        token = http.post(
            discovery["token_endpoint"],
            timeout=5,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        assert token.status_code == 200, token.text
        patient = http.get(
            f"{iss}/Patient/tp-1",
            timeout=5,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert patient.status_code == 200 and patient.headers["Content-Type"].startswith(
            "application/fhir+json"
        )


def test_server_handle_reports_url_and_stops() -> None:
    handle = serve_in_thread(Flask("tiny"), port=0)
    assert handle.url == f"http://127.0.0.1:{handle.port}" and handle.port > 0
    handle.shutdown()
    assert not handle.thread.is_alive()
