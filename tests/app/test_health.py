"""Liveness, readiness and the headers that let a registered EHR frame the app."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_ok_when_the_database_is_reachable(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


def test_readyz_answers_503_when_the_database_is_gone(app, client: FlaskClient) -> None:
    from plugin.db import Database

    app.extensions["itb.db"] = Database("postgresql+psycopg://nobody:x@127.0.0.1:9/none?connect_timeout=1")
    response = client.get("/readyz")
    assert response.status_code == 503


def test_frame_ancestors_allow_only_registered_ehrs(client: FlaskClient) -> None:
    csp = client.get("/healthz").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://ehr.example.org" in csp
    assert "X-Frame-Options" not in client.get("/healthz").headers


def test_pages_are_not_cached_and_leak_no_referrer(client: FlaskClient) -> None:
    headers = client.get("/healthz").headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_jwks_publishes_public_keys_only(client: FlaskClient) -> None:
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert keys, "at least one signing key"
    for key in keys:
        assert "d" not in key and "p" not in key
        assert key["kid"]
        assert key["alg"] in ("ES384", "RS384")
