"""Trusting CDS Clients: verify the EHR's bearer JWT on every service and feedback call.

Rules (CDS Hooks 2.0, standards.md §2.6): allow-listed ``iss``; keys from the client's configured JWKS
(inline or URL) or from an allow-listed ``jku``; ``alg`` ES384 or RS384 only (never ``none``, HMAC or
RS256); ``kid`` picks the key; ``aud`` is the exact URL called; ``exp``/``iat`` within a small leeway;
``jti`` required and accepted once (``cds_jti`` table, shared by every worker). Public keys are parsed
once and cached per JWKS source, because parsing them cost more than the signature check itself.
Every failure raises ``TrustError``: its ``reason`` goes to the log, never to the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import IntegrityError

from plugin.cds.config import CdsClient
from plugin.cds.models import SeenJti
from plugin.db import Database

log = logging.getLogger(__name__)

ALLOWED_ALGS = frozenset({"ES384", "RS384"})
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_REFETCH_MIN_SECONDS = 60.0  # an unknown kid may force a JWKS refetch at most this often
_PURGE_EVERY_SECONDS = 60.0


class TrustError(Exception):
    """The call is not from a trusted CDS client; ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the call: the verified client (None when an insecure sandbox accepted it unsigned)."""

    iss: str
    client: CdsClient | None
    jti: str | None = None
    jti_expires_at: datetime | None = None  # set when the jti is still to be remembered by the caller


def _b64decode(segment: str) -> bytes:
    """Decode one base64url JWT segment (no padding)."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise TrustError("token segment is not base64url") from error


def _b64int(value: Any) -> int:
    """Decode a base64url JWK integer member."""
    if not isinstance(value, str):
        raise ValueError("JWK member is not a string")
    return int.from_bytes(_b64decode(value), "big")


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Return the public key of an EC P-384 or RSA (>= 2048 bit) JWK; raise ValueError for anything else."""
    if jwk.get("kty") == "EC":
        if jwk.get("crv") != "P-384":
            raise ValueError("EC key is not P-384")
        return ec.EllipticCurvePublicNumbers(
            _b64int(jwk.get("x")), _b64int(jwk.get("y")), ec.SECP384R1()
        ).public_key()
    if jwk.get("kty") == "RSA":
        key = rsa.RSAPublicNumbers(_b64int(jwk.get("e")), _b64int(jwk.get("n"))).public_key()
        if key.key_size < 2048:
            raise ValueError("RSA key shorter than 2048 bits")
        return key
    raise ValueError("unsupported key type")


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, tuple[str | None, PublicKey]]:
    """Return ``kid -> (alg, key)`` of a JWKS's usable signing keys; unusable keys are skipped."""
    keys: dict[str, tuple[str | None, PublicKey]] = {}
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use") not in (None, "sig") or jwk.get("alg") not in (None, *ALLOWED_ALGS):
            continue
        try:
            keys[jwk["kid"]] = (jwk.get("alg"), public_key_from_jwk(jwk))
        except ValueError:
            log.info("CDS client JWKS key skipped (unsupported)", extra={"event": "cds.jwks_key_skipped"})
    return keys


def fetch_jwks(url: str) -> Mapping[str, Any]:
    """GET a JWKS over HTTP(S) with timeouts."""
    response = requests.get(url, timeout=(3.05, 5.0), headers={"Accept": "application/json"})
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS")
    return document


class KeyStore:
    """Parsed public keys per JWKS source (inline per iss, or URL), fetched and refreshed with a TTL."""

    def __init__(self, ttl_seconds: float, fetch: Callable[[str], Mapping[str, Any]] = fetch_jwks) -> None:
        self._ttl = ttl_seconds
        self._fetch = fetch
        self._lock = threading.Lock()
        self._by_source: dict[str, tuple[float, dict[str, tuple[str | None, PublicKey]]]] = {}

    def key(self, client: CdsClient, jku: str | None, kid: str) -> tuple[str | None, PublicKey]:
        """Return the (alg, key) for ``kid`` from the client's JWKS or the allowed ``jku``."""
        if jku is not None:
            if jku not in client.jku_allow:
                raise TrustError("jku not allow-listed for this client")
            return self._from_url(jku, kid)
        if client.jwks is not None:
            source = f"inline:{client.iss}"
            with self._lock:
                cached = self._by_source.get(source)
                if cached is None:
                    cached = (time.monotonic(), keys_from_jwks(client.jwks))
                    self._by_source[source] = cached
            if kid in cached[1]:
                return cached[1][kid]
            if client.jwks_url is None:
                raise TrustError("kid not in the client's JWKS")
        if client.jwks_url is None:
            raise TrustError("no jku header and no configured JWKS URL")
        return self._from_url(client.jwks_url, kid)

    def _from_url(self, url: str, kid: str) -> tuple[str | None, PublicKey]:
        """Return a key from a fetched JWKS, fetching when stale or when the kid is new (rate-limited)."""
        now = time.monotonic()
        with self._lock:
            cached = self._by_source.get(url)
        fresh = cached is not None and now - cached[0] < self._ttl
        if cached is not None and fresh and kid in cached[1]:
            return cached[1][kid]
        if cached is None or not fresh or now - cached[0] >= _REFETCH_MIN_SECONDS:
            try:
                keys = keys_from_jwks(self._fetch(url))
            except (requests.RequestException, ValueError) as error:
                log.warning(
                    "CDS client JWKS fetch failed: %s", type(error).__name__, extra={"event": "cds.jwks_fail"}
                )
                keys = None
            if keys is not None:
                cached = (now, keys)
                with self._lock:
                    self._by_source[url] = cached
        if cached is not None and kid in cached[1]:
            return cached[1][kid]
        raise TrustError("kid not found in the client's JWKS")


def verify_signature(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> None:
    """Verify a JWS signature (ES384 raw r||s, or RS384 PKCS#1 v1.5); raise TrustError when it fails."""
    try:
        if alg == "ES384" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 96:
                raise TrustError("ES384 signature has the wrong length")
            der = encode_dss_signature(
                int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA384()))
        elif alg == "RS384" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA384())
        else:
            raise TrustError("key type does not match alg")
    except InvalidSignature as error:
        raise TrustError("signature does not verify") from error


# Built once: constructing an ORM insert costs ~6x executing a prebuilt one (every CDS call does this).
_INSERT_JTI = insert(SeenJti)


class JtiStore:
    """The replay guard: ``remember`` inserts (iss, jti) once; a second insert means a replay."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def remember(
        self, iss: str, jti: str, expires_at: datetime, now: datetime, connection: Connection | None = None
    ) -> None:
        """Record a jti until ``expires_at``; raise TrustError when it was seen before.

        With ``connection`` the insert joins the caller's transaction (one commit per request: the
        service stores the jti together with the cards it issued), else it commits on its own.
        """
        try:
            if connection is not None:
                self._insert(connection, iss, jti, expires_at, now)
            else:
                with self._db.engine.begin() as own:
                    self._insert(own, iss, jti, expires_at, now)
        except IntegrityError as error:
            # In a shared transaction the caller's rollback also drops what it wrote with it.
            raise TrustError("jti replayed") from error

    def _insert(
        self, connection: Connection, iss: str, jti: str, expires_at: datetime, now: datetime
    ) -> None:
        """Insert the jti and, now and then, delete expired ones on the same connection.

        The same connection, because a second one would wait for this transaction's SQLite write lock.
        """
        connection.execute(_INSERT_JTI, {"iss": iss, "jti": jti, "expires_at": expires_at})
        with self._lock:
            if time.monotonic() - self._last_purge < _PURGE_EVERY_SECONDS:
                return
            self._last_purge = time.monotonic()
        connection.execute(delete(SeenJti).where(SeenJti.expires_at < now))


class Verifier:
    """Verify CDS client JWTs against the allow-list."""

    def __init__(
        self,
        clients: Mapping[str, CdsClient],
        keys: KeyStore,
        jtis: JtiStore,
        *,
        leeway_seconds: float = 60,
        max_lifetime_seconds: float = 3600,
    ) -> None:
        self.clients = clients
        self._keys = keys
        self._jtis = jtis
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds

    def verify(self, token: str, audience: str, now: datetime, *, remember: bool = True) -> Caller:
        """Return the verified caller of ``token`` for a call to ``audience``; raise TrustError otherwise.

        With ``remember=False`` the jti is not stored yet: the caller must call ``remember_jti`` (with
        its own transaction) before it answers, or the token could be replayed.
        """
        parts = token.split(".")
        if len(parts) != 3:
            raise TrustError("not a compact JWS")
        header, claims = _json_segment(parts[0]), _json_segment(parts[1])
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise TrustError(f"alg {str(alg)[:10]!r} not allowed")
        if header.get("typ") not in (None, "JWT") or "crit" in header:
            raise TrustError("unsupported JWT header (typ or crit)")
        kid, jku = header.get("kid"), header.get("jku")
        if not isinstance(kid, str) or not kid or (jku is not None and not isinstance(jku, str)):
            raise TrustError("kid missing or jku malformed")
        iss = claims.get("iss")
        client = self.clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise TrustError("iss not allow-listed")
        key_alg, key = self._keys.key(client, jku, kid)
        if key_alg is not None and key_alg != alg:
            raise TrustError("alg differs from the key's alg")
        verify_signature(str(alg), key, f"{parts[0]}.{parts[1]}".encode("ascii"), _b64decode(parts[2]))
        expires_at = self._check_claims(claims, audience, now)
        jti = str(claims["jti"])
        if not remember:
            return Caller(client.iss, client, jti, expires_at)
        self._jtis.remember(client.iss, jti, expires_at, now)
        return Caller(client.iss, client, jti)

    def remember_jti(self, caller: Caller, now: datetime, connection: Connection | None = None) -> None:
        """Store a caller's pending jti (see ``verify``); raise TrustError on a replay."""
        if caller.jti is not None and caller.jti_expires_at is not None:
            self._jtis.remember(caller.iss, caller.jti, caller.jti_expires_at, now, connection)

    def _check_claims(self, claims: Mapping[str, Any], audience: str, now: datetime) -> datetime:
        """Check aud, exp, iat and jti; return the expiry."""
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in audiences:
            raise TrustError("aud is not the URL called")
        exp_raw, iat_raw, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
        if not _is_number(exp_raw) or not _is_number(iat_raw):
            raise TrustError("exp or iat missing")
        exp, iat = float(exp_raw or 0), float(iat_raw or 0)  # numbers, checked just above
        moment = now.timestamp()
        if moment > exp + self._leeway:
            raise TrustError("token expired")
        if iat > moment + self._leeway or exp > moment + self._max_lifetime + self._leeway:
            raise TrustError("iat in the future or exp too far ahead")
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            raise TrustError("jti missing")
        return datetime.fromtimestamp(exp, UTC) + timedelta(seconds=self._leeway)


def _is_number(value: Any) -> bool:
    """Return whether a claim is a JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_segment(segment: str) -> dict[str, Any]:
    """Decode a JWT header or payload segment into a JSON object."""
    try:
        value = json.loads(_b64decode(segment))
    except ValueError as error:
        raise TrustError("token segment is not JSON") from error
    if not isinstance(value, dict):
        raise TrustError("token segment is not a JSON object")
    return value


def unverified_iss(token: str | None) -> str | None:
    """Return a token's ``iss`` without verifying it (insecure sandbox only, for the record)."""
    if not token or token.count(".") != 2:
        return None
    try:
        iss = _json_segment(token.split(".")[1]).get("iss")
    except TrustError:
        return None
    return iss if isinstance(iss, str) else None
