"""Sign CDS client JWTs (ES384) the way an EHR does: for the in-app sandbox client, tests and benchmarks."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int, length: int) -> str:
    """Encode a big-endian fixed-length integer as base64url."""
    return b64url(value.to_bytes(length, "big"))


def new_es384_key() -> ec.EllipticCurvePrivateKey:
    """Generate a P-384 private key."""
    return ec.generate_private_key(ec.SECP384R1())


def private_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    """Return the private JWK of a P-384 key (for the instance folder only)."""
    numbers = key.private_numbers()
    return {**public_jwk(key.public_key(), kid), "d": _int_b64(numbers.private_value, 48)}


def public_jwk(key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    """Return the public JWK of a P-384 key."""
    numbers = key.public_numbers()
    return {
        "kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384", "use": "sig",
        "x": _int_b64(numbers.x, 48), "y": _int_b64(numbers.y, 48),
    }  # fmt: skip


def key_from_private_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
    """Return the P-384 private key of a private JWK."""

    def number(name: str) -> int:
        return int.from_bytes(
            base64.urlsafe_b64decode(str(jwk[name]) + "=" * (-len(str(jwk[name])) % 4)), "big"
        )

    public = ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP384R1())
    return ec.EllipticCurvePrivateNumbers(number("d"), public).private_key()


def sign_es384(key: ec.EllipticCurvePrivateKey, kid: str, claims: Mapping[str, Any], **header: Any) -> str:
    """Return a compact ES384 JWS of ``claims`` with ``kid`` (extra header members, e.g. jku, allowed)."""
    head = {"alg": "ES384", "typ": "JWT", "kid": kid, **header}
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(dict(claims)).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA384())))
    return f"{signing_input}.{b64url(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def client_claims(iss: str, audience: str, now: datetime, lifetime_seconds: int = 300) -> dict[str, Any]:
    """Return the claims of a CDS client JWT for one call to ``audience``."""
    return {
        "iss": iss,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime_seconds)).timestamp()),
        "jti": str(uuid.uuid4()),
    }
