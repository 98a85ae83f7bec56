"""Fixtures for the CDS Hooks tests: an app with one trusted EHR client, its keys and a JWT signer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient

import plugin.cds
from plugin.app import create_app
from plugin.cds.jwt_sign import client_claims, new_es384_key, public_jwk, sign_es384

from .support import EHR_ISS, ES_KID, FHIR_SERVER, JKU, NOW, RS_KID, SERVICE_URL, rsa_public_jwk


@pytest.fixture(scope="session")
def es_key() -> Any:
    """Return the EHR's ES384 signing key."""
    return new_es384_key()


@pytest.fixture(scope="session")
def rs_key() -> rsa.RSAPrivateKey:
    """Return the EHR's RSA signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cds_settings(es_key: Any, rs_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Return the app settings with one trusted CDS client (override per module to change them)."""
    return {
        "CDS_CLIENTS": [
            {
                "iss": EHR_ISS,
                "name": "Example EHR",
                "jwks": {"keys": [public_jwk(es_key.public_key(), ES_KID), rsa_public_jwk(rs_key, RS_KID)]},
                "jku_allow": [JKU],
                "fhir_servers": [FHIR_SERVER],
            }
        ],
        "CDS_CORS_ORIGINS": ["https://ehr.example.org"],
    }


@pytest.fixture
def audit_events() -> list[dict[str, Any]]:
    """Collect what the CDS service hands to the audit log."""
    return []


@pytest.fixture
def cds_app(
    tmp_path: Path, cds_settings: dict[str, Any], audit_events: list[dict[str, Any]]
) -> Iterator[Flask]:
    """Create the app with the CDS service on a temporary instance folder and a fixed clock."""
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret-key", "EHR_REGISTRY": [], **cds_settings},
        instance_path=str(tmp_path / "instance"),
    )
    # The coordinator wires plugin.cds into create_app; init_app again swaps in the test sink and clock.
    plugin.cds.init_app(app, audit_sink=audit_events.append, clock=lambda: NOW)
    yield app
    app.extensions["itb.db"].dispose()


@pytest.fixture
def cds_client(cds_app: Flask) -> FlaskClient:
    """Return a test client of the CDS app."""
    return cds_app.test_client()


@pytest.fixture
def sign(es_key: Any) -> Callable[..., str]:
    """Return a signer of EHR JWTs: ``sign(aud=..., **claim_overrides)``."""

    def _sign(aud: str = SERVICE_URL, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return sign_es384(es_key, ES_KID, {**client_claims(EHR_ISS, aud, NOW), **claims}, **(header or {}))

    return _sign
