"""Constants and builders shared by the smart_launch tests (imported by name; conftest holds fixtures)."""

from __future__ import annotations

from typing import Any

ISS = "https://ehr.example.org/fhir/r4"
AUTHORIZE_URL = "https://ehr.example.org/oauth2/authorize"
TOKEN_URL = "https://ehr.example.org/oauth2/token"
JWKS_URL = "https://ehr.example.org/oauth2/jwks"


def smart_configuration_document(**overrides: Any) -> dict[str, Any]:
    """Return a conformant SMART 2.2 smart-configuration, with fields replaced or (None) removed."""
    document: dict[str, Any] = {
        "issuer": ISS,
        "jwks_uri": JWKS_URL,
        "authorization_endpoint": AUTHORIZE_URL,
        "token_endpoint": TOKEN_URL,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "permission-v2",
            "sso-openid-connect",
        ],
        "scopes_supported": ["openid", "fhirUser", "launch", "patient/*.rs"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    }
    for name, value in overrides.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document
