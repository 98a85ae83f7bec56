"""SMART authorization code flow: the authorize URL (PKCE S256 always), code exchange and refresh.

This module talks to the token endpoint with ``requests`` directly rather than authlib's OAuth2Session:
authlib logs the PKCE ``code_verifier`` at DEBUG and its ``PrivateKeyJWT`` defaults (RS256, exp +3600 s,
no kid) are wrong for SMART. Nothing here logs a token, code, verifier, state, secret or assertion.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from smart_launch.discovery import SmartConfiguration
from smart_launch.errors import TokenError, one_line
from smart_launch.registration import ClientRegistration
from smart_launch.tokens import TokenSet, needs_refresh, parse_token_response

__all__ = [
    "PendingAuthorization",
    "TokenSet",
    "begin_authorization",
    "client_assertion",
    "exchange_code",
    "needs_refresh",
    "refresh_tokens",
]

log = logging.getLogger(__name__)

TOKEN_TIMEOUT_S = (3.05, 15.0)
ASSERTION_LIFETIME_S = 240  # SMART: exp no more than 5 minutes ahead; keep a margin for clock skew
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class PendingAuthorization:
    """What the app must keep (server-side, keyed by ``state``) between /authorize and the callback."""

    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    nonce: str | None = field(repr=False)
    iss: str
    redirect_uri: str
    scope: str
    launch: str | None = field(repr=False)
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for server-side storage."""
        return {
            "state": self.state,
            "code_verifier": self.code_verifier,
            "nonce": self.nonce,
            "iss": self.iss,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "launch": self.launch,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingAuthorization:
        """Rebuild a PendingAuthorization stored with ``to_dict``."""
        return cls(
            state=str(data["state"]),
            code_verifier=str(data["code_verifier"]),
            nonce=data.get("nonce"),
            iss=str(data["iss"]),
            redirect_uri=str(data["redirect_uri"]),
            scope=str(data["scope"]),
            launch=data.get("launch"),
            created_at=datetime.fromisoformat(str(data["created_at"])).astimezone(UTC),
        )

    def is_expired(self, now: datetime, max_age_s: int = 600) -> bool:
        """Return whether this authorization is older than ``max_age_s`` (stale callbacks are refused)."""
        return now - self.created_at > timedelta(seconds=max_age_s)


def code_challenge_s256(code_verifier: str) -> str:
    """Return the PKCE S256 challenge: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin_authorization(
    config: SmartConfiguration,
    client: ClientRegistration,
    *,
    redirect_uri: str,
    launch: str | None,
    scope: str,
    now: datetime,
) -> tuple[str, PendingAuthorization]:
    """Return the /authorize URL to redirect the browser to, and what to keep until the callback."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    state = secrets.token_urlsafe(32)  # 256 bits; SMART asks for at least 122
    code_verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43-128
    wants_openid = "openid" in scope.split()
    nonce = secrets.token_urlsafe(32) if wants_openid else None
    params: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", client.client_id),
        ("redirect_uri", redirect_uri),
    ]
    if launch is not None:
        params.append(("launch", launch))
    params += [
        ("scope", scope),
        ("state", state),
        # aud is the iss exactly as the EHR sent it: servers compare it byte for byte, and a
        # "normalised" aud (trailing slash, case) is a known cause of rejected launches.
        ("aud", client.iss),
        ("code_challenge", code_challenge_s256(code_verifier)),
        ("code_challenge_method", "S256"),
    ]
    if nonce is not None:
        params.append(("nonce", nonce))
    pending = PendingAuthorization(
        state=state,
        code_verifier=code_verifier,
        nonce=nonce,
        iss=client.iss,
        redirect_uri=redirect_uri,
        scope=scope,
        launch=launch,
        created_at=now.astimezone(UTC),
    )
    return _with_query(config.authorization_endpoint, params), pending


def exchange_code(
    config: SmartConfiguration,
    client: ClientRegistration,
    pending: PendingAuthorization,
    code: str,
    *,
    now: datetime,
    session: requests.Session | None = None,
) -> TokenSet:
    """Exchange an authorization code (with the PKCE verifier) for tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "code_verifier": pending.code_verifier,
    }
    body = _post_token(config, client, form, now=now, session=session)
    return parse_token_response(body, now=now, requested_scope=pending.scope)


def refresh_tokens(
    config: SmartConfiguration,
    client: ClientRegistration,
    refresh_token: str,
    *,
    now: datetime,
    scope: str | None = None,
    session: requests.Session | None = None,
) -> TokenSet:
    """Use ``refresh_token`` once to get new tokens; keep the old refresh token if none comes back.

    Callers must serialise refreshes per launch: servers may revoke the grant when a refresh token is
    reused. ``scope`` may narrow the grant (a strict subset of it).
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    body = _post_token(config, client, form, now=now, session=session)
    tokens = parse_token_response(body, now=now, requested_scope=scope)
    # If no new refresh token arrives, the old one stays valid (inferno smart-app-launch-test-kit#39).
    return tokens if tokens.refresh_token else tokens.with_refresh_token(refresh_token)


def client_assertion(client: ClientRegistration, token_endpoint: str, *, now: datetime) -> str:
    """Return a fresh private_key_jwt assertion (RS384/ES384, kid, exp = now + 240 s, unique jti)."""
    if client.signing_keys is None:
        raise ValueError("private_key_jwt needs signing_keys")
    issued_at = int(now.timestamp())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": token_endpoint,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_S,
        "jti": secrets.token_urlsafe(32),
    }
    return client.signing_keys.sign(claims)


def _post_token(
    config: SmartConfiguration,
    client: ClientRegistration,
    form: dict[str, str],
    *,
    now: datetime,
    session: requests.Session | None,
) -> dict[str, Any]:
    """POST a token request with the client's authentication and return the JSON body, or raise."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    data = dict(form)
    headers = {"Accept": "application/json"}
    if client.auth_method == "none":
        data["client_id"] = client.client_id
    elif client.auth_method == "client_secret_basic":
        # SMART writes base64(client_id:client_secret) with no form-encoding of the parts.
        pair = f"{client.client_id}:{client.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif client.auth_method == "client_secret_post":
        data["client_id"] = client.client_id
        data["client_secret"] = client.client_secret or ""
    else:
        data["client_assertion_type"] = JWT_BEARER
        data["client_assertion"] = client_assertion(client, config.token_endpoint, now=now)
    http = session if session is not None else requests.Session()
    try:
        response = http.post(config.token_endpoint, data=data, headers=headers, timeout=TOKEN_TIMEOUT_S)
    except requests.RequestException as exc:
        log.warning("token request to the EHR failed: %s", type(exc).__name__)
        raise TokenError("network_error", "could not reach the token endpoint", 0) from None
    finally:
        if session is None:
            http.close()
    return _token_body(response, data["grant_type"])


def _token_body(response: requests.Response, grant_type: str) -> dict[str, Any]:
    """Return the JSON body of a 200 token response; map anything else to TokenError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        return body
    if response.status_code == 200:
        raise TokenError("invalid_response", "token endpoint returned no JSON object", 200)
    error_code = "server_error"
    message = f"token endpoint answered HTTP {response.status_code}"
    if isinstance(body, dict):
        if isinstance(body.get("error"), str) and body["error"]:
            error_code = one_line(body["error"], 64)
        description = body.get("error_description")
        message = (
            f"{error_code}: {description}" if isinstance(description, str) and description else error_code
        )
    log.info("token request (%s) refused: %s, HTTP %s", grant_type, error_code, response.status_code)
    raise TokenError(error_code, message, response.status_code)


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    """Append ``params`` to ``url``, keeping any query the endpoint already has; spaces as %20."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
