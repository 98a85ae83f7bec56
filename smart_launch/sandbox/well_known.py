"""Discovery documents: SMART configuration and OpenID configuration per tenant, the sandbox's JWKS
(id_token keys) and the SMART style JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify
from flask.typing import ResponseReturnValue

from .context import auth_url, fhir_base, known_tenant, root_url, sandbox

bp = Blueprint("sandbox_well_known", __name__)

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
SCOPES_SUPPORTED = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
]
STYLE = {
    "color_background": "#f7f7f7",
    "color_error": "#b00020",
    "color_highlight": "#2c6fbb",
    "color_modal_backdrop": "",
    "color_success": "#2e7d32",
    "color_text": "#1f1f1f",
    "dim_border_radius": "4px",
    "dim_font_size": "16px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif",
    "font_family_heading": "system-ui, sans-serif",
}


def smart_configuration(tenant: str) -> dict[str, Any]:
    """The tenant's ``.well-known/smart-configuration`` document."""
    return {
        "issuer": fhir_base(tenant),
        "jwks_uri": f"{root_url()}/.well-known/jwks.json",
        "authorization_endpoint": auth_url(tenant, "authorize"),
        "token_endpoint": auth_url(tenant, "token"),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


@bp.get("/<tenant>/fhir/.well-known/smart-configuration")
def smart_config(tenant: str) -> ResponseReturnValue:
    """SMART discovery (always application/json, whatever the Accept header)."""
    if not known_tenant(tenant):
        abort(404)
    return jsonify(smart_configuration(tenant))


@bp.get("/<tenant>/fhir/.well-known/openid-configuration")
def openid_config(tenant: str) -> ResponseReturnValue:
    """OpenID Connect discovery, for clients that validate id_tokens that way."""
    if not known_tenant(tenant):
        abort(404)
    return jsonify(
        {
            "issuer": fhir_base(tenant),
            "jwks_uri": f"{root_url()}/.well-known/jwks.json",
            "authorization_endpoint": auth_url(tenant, "authorize"),
            "token_endpoint": auth_url(tenant, "token"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """The public key that signs id_tokens."""
    response = jsonify({"keys": [sandbox().signing_key.as_dict(private=False)]})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/smart-style.json")
def smart_style() -> ResponseReturnValue:
    """The small style document named by smart_style_url."""
    return jsonify(STYLE)
