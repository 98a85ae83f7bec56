"""OpenID Connect id_token validation for SMART launches, and the ``fhirUser`` claim as a reference.

Algorithms are pinned (never ``none`` or HMAC). The SMART launcher signs RS256 id_tokens *without* a
``kid``, so a token without kid is tried against every key of its algorithm's key type. The JWKS is
cached per URI and fetched again once when a token names an unknown kid (the EHR rotated its keys).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from smart_launch.discovery import SmartConfiguration
from smart_launch.errors import IdTokenError

JWKS_TTL_S = 3600.0
JWKS_TIMEOUT_S = (3.05, 10.0)
_SAFE_ALGS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
_USER_TYPES = ("Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

_jwks_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
_jwks_lock = threading.Lock()


def expected_issuer(config: SmartConfiguration, iss: str) -> str:
    """Return the issuer an id_token must carry: smart-configuration ``issuer`` if given, else ``iss``."""
    return config.issuer or iss


def validate_id_token(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    nonce: str | None,
    now: datetime,
    leeway_s: int = 60,
    algorithms: Sequence[str] = ("RS256", "RS384", "ES384"),
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Verify the id_token's signature and claims; return its claims or raise ``IdTokenError``."""
    if jwks is None and jwks_uri is None:
        # An EHR that issues id_tokens but advertises no jwks_uri cannot be verified: fail closed.
        raise IdTokenError("the EHR advertises no JWKS to verify its id_token with")
    header = _header(id_token)
    alg = header.get("alg")
    allowed = [name for name in algorithms if name in _SAFE_ALGS]
    if not isinstance(alg, str) or alg not in allowed:
        raise IdTokenError("id_token is signed with an algorithm that is not accepted")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    members = _jwks_members(jwks) if jwks is not None else _cached_jwks(jwks_uri or "", session)
    if kid is not None and jwks is None and not any(member.get("kid") == kid for member in members):
        members = _cached_jwks(jwks_uri or "", session, force=True)
    claims = _verified_claims(id_token, alg, kid, members)
    _check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce, now=now, leeway_s=leeway_s)
    return claims


def fhir_user_reference(claims: dict[str, Any], fhir_base: str) -> str | None:
    """Return ``fhirUser`` as a relative ``Type/id`` if it is on ``fhir_base`` (absolute or relative)."""
    value = claims.get("fhirUser")
    if not isinstance(value, str) or not value:
        return None
    if urlsplit(value).scheme:
        base = fhir_base.rstrip("/") + "/"
        # Epic sends absolute fhirUser URLs (client-js#105); one on another server is not our user.
        if not value.startswith(base):
            return None
        value = value[len(base) :]
    segments = value.strip("/").split("/")
    if len(segments) == 4 and segments[2] == "_history":
        segments = segments[:2]
    if len(segments) != 2 or segments[0] not in _USER_TYPES or not _FHIR_ID.match(segments[1]):
        return None
    return f"{segments[0]}/{segments[1]}"


def clear_jwks_cache() -> None:
    """Forget every cached JWKS (for tests and key-rotation drills)."""
    with _jwks_lock:
        _jwks_cache.clear()


def _header(id_token: str) -> dict[str, Any]:
    """Return the decoded, unverified JOSE header (only to pick the algorithm and key)."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise IdTokenError("id_token is not a compact JWS")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        raise IdTokenError("id_token header is not valid base64url JSON") from None
    if not isinstance(header, dict):
        raise IdTokenError("id_token header is not a JSON object")
    return header


def _jwks_members(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the key objects of a JWKS document."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise IdTokenError("the EHR's JWKS has no keys")
    return [member for member in keys if isinstance(member, dict)]


def _cached_jwks(
    jwks_uri: str, session: requests.Session | None, *, force: bool = False
) -> list[dict[str, Any]]:
    """Return the JWKS at ``jwks_uri`` from the cache, fetching it when stale, absent or ``force``d."""
    with _jwks_lock:
        cached = _jwks_cache.get(jwks_uri)
        if cached is not None and not force and time.monotonic() - cached[0] < JWKS_TTL_S:
            return cached[1]
    http = session if session is not None else requests.Session()
    try:
        response = http.get(jwks_uri, headers={"Accept": "application/json"}, timeout=JWKS_TIMEOUT_S)
        document = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        document = None
    finally:
        if session is None:
            http.close()
    if not isinstance(document, dict):
        raise IdTokenError("could not fetch the EHR's signing keys (JWKS)")
    members = _jwks_members(document)
    with _jwks_lock:
        _jwks_cache[jwks_uri] = (time.monotonic(), members)
    return members


def _verified_claims(
    id_token: str, alg: str, kid: str | None, members: list[dict[str, Any]]
) -> dict[str, Any]:
    """Verify the signature with the matching key(s) and return the payload as a dict."""
    key_type = "EC" if alg.startswith("ES") else "RSA"
    candidates = [
        member
        for member in members
        if member.get("kty") == key_type
        and member.get("use", "sig") == "sig"
        and member.get("alg", alg) == alg
        and (kid is None or member.get("kid") == kid)
    ]
    if not candidates:
        raise IdTokenError("no key in the EHR's JWKS matches the id_token")
    for member in candidates:
        try:
            key = import_key(member)
        except (JoseError, ValueError):
            continue
        if not isinstance(key, RSAKey | ECKey):
            continue
        try:
            signature = jws.deserialize_compact(id_token, key, algorithms=[alg])
        except (JoseError, ValueError):
            continue
        try:
            claims = json.loads(signature.payload)
        except ValueError:
            raise IdTokenError("id_token payload is not JSON") from None
        if not isinstance(claims, dict):
            raise IdTokenError("id_token payload is not a JSON object")
        return claims
    raise IdTokenError("id_token signature is not valid")


def _check_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str | None, now: datetime, leeway_s: int
) -> None:
    """Check iss, aud (and azp), exp, iat and nonce; raise IdTokenError on the first failure."""
    if claims.get("iss") != issuer:
        raise IdTokenError("id_token was issued by another issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IdTokenError("id_token is not meant for this app (aud)")
    if len(audiences) > 1 and claims.get("azp", client_id) != client_id:
        raise IdTokenError("id_token is not meant for this app (azp)")
    moment = now.timestamp()
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int | float) or not isinstance(issued, int | float):
        raise IdTokenError("id_token lacks exp or iat")
    if isinstance(expires, bool) or isinstance(issued, bool):
        raise IdTokenError("id_token exp or iat is not a number")
    if moment > expires + leeway_s:
        raise IdTokenError("id_token has expired")
    if issued > moment + leeway_s:
        raise IdTokenError("id_token was issued in the future (clock skew?)")
    if nonce is not None:
        received = claims.get("nonce")
        if not isinstance(received, str) or not hmac.compare_digest(received.encode(), nonce.encode()):
            raise IdTokenError("id_token nonce does not match the authorization request")
