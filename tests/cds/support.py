"""Helpers for the CDS Hooks tests: constants, JWKs and request builders shaped like the spec's examples.

Prefetch comes from the sandbox patients (``config/sandbox/patients``) at their anchor date, so no date
shifting happens.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from plugin.cds.jwt_sign import b64url
from plugin.cds.sandbox import SANDBOX_DIR, draft_order, prefetch_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the sandbox patients' anchor
EHR_ISS = "https://ehr.example.org"
FHIR_SERVER = "https://ehr.example.org/fhir"
JKU = "https://ehr.example.org/.well-known/jwks.json"
SERVICE_URL = "http://localhost/cds-services/itb-dose-check"
ES_KID, RS_KID = "es-1", "rs-1"


def rsa_public_jwk(key: rsa.RSAPrivateKey, kid: str, alg: str = "RS384") -> dict[str, str]:
    """Return the public JWK of an RSA key."""
    numbers = key.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    return {
        "kty": "RSA", "kid": kid, "alg": alg, "use": "sig",
        "n": b64url(numbers.n.to_bytes(size, "big")), "e": b64url(numbers.e.to_bytes(3, "big")),
    }  # fmt: skip


def sandbox_prefetch(patient: str) -> dict[str, Any]:
    """Return full prefetch for a sandbox patient at its anchor date."""
    return prefetch_for(SANDBOX_DIR / "patients" / f"{patient}.json", NOW, NOW)


def order(patient: str, value: float, unit: str = "ug/d", order_id: str = "draft-1") -> dict[str, Any]:
    """Return a draft intrathecal baclofen MedicationRequest."""
    resource = draft_order(patient, value, unit)
    resource["id"] = order_id
    return resource


def hook_body(
    patient: str,
    orders: list[dict[str, Any]],
    *,
    hook: str = "order-sign",
    prefetch: dict[str, Any] | None = None,
    fhir: bool = False,
) -> dict[str, Any]:
    """Return a CDS Hooks request like the spec's examples (with fhirServer and a token when ``fhir``)."""
    context: dict[str, Any] = {
        "userId": "Practitioner/example",
        "patientId": patient,
        "encounterId": "enc-89284",
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        },
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{orders[0]['id']}"] if orders else []
    body: dict[str, Any] = {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "hook": hook,
        "context": context,
        "prefetch": sandbox_prefetch(patient) if prefetch is None else prefetch,
    }
    if fhir:
        body["fhirServer"] = FHIR_SERVER
        body["fhirAuthorization"] = {
            "access_token": "some-opaque-fhir-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Observation.read",
            "subject": "itb-dose-check",
        }
    return body


def post(client: FlaskClient, body: Any, token: str, path: str = "/cds-services/itb-dose-check") -> Any:
    """POST a hook call with a bearer token; return the response."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        path, data=data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
