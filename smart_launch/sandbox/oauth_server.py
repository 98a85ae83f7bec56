"""The sandbox's SMART authorization server, built on authlib's server components.

Authorization code with PKCE (S256 only, required for every client), refresh tokens (rotated or kept,
per SandboxConfig), and client authentication by none, client_secret_basic/post or private_key_jwt
(RS384/ES384, verified against the client's JWKS, jti replay refused). An EHR launch uses the launch
record's patient and user without a login screen, like the SMART launcher's skip_login/skip_auth; a
standalone launch shows a patient and user picker first (see ``oauth_views``).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, InvalidScopeError, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, request
from joserfc import jwt
from joserfc.errors import JoseError

from .auth import AuthorizationCode, Grant, LaunchContext, RefreshToken
from .context import auth_url, fhir_base, root_url, sandbox

CODE_LIFETIME = timedelta(minutes=1)
#: SMART: a client assertion's exp is at most five minutes ahead.
MAX_ASSERTION_LIFETIME_SECONDS = 300
TOKEN_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def _tenant() -> str:
    """The tenant of the current request's URL."""
    return str((request.view_args or {})["tenant"])


class SmartCodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE as SMART 2 wants it: required on every authorization request, S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        """Refuse a request without an S256 code challenge."""
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)


def check_smart_request(grant: Any, redirect_uri: str) -> None:
    """Check ``aud`` (exactly this tenant's FHIR base) and the ``launch`` parameter."""
    tenant = _tenant()
    data = grant.request.payload.data
    if data.get("aud") != fhir_base(tenant):
        raise InvalidRequestError("'aud' must be exactly this server's FHIR base URL")
    launch_id = data.get("launch")
    if launch_id:
        context = sandbox().auth.launches.get(launch_id)
        if context is None or context.tenant != tenant:
            raise InvalidRequestError("Unknown 'launch' value")
        if "launch" not in (data.get("scope") or "").split():
            raise InvalidScopeError("An EHR launch must request the 'launch' scope")


class SmartAuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization codes kept in the sandbox's AuthState, bound to tenant, client and launch context."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        """Remember the code with its PKCE challenge, nonce and launch context."""
        data = request.payload.data
        state = sandbox().auth
        with state.lock:
            state.codes[code] = AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                nonce=data.get("nonce"),
                context=request.user,
                expires_at=state.clock() + CODE_LIFETIME,
            )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        """Return an unexpired code issued to this client on this tenant."""
        state = sandbox().auth
        item = state.codes.get(code)
        if (
            item
            and item.client_id == client.client_id
            and item.context.tenant == _tenant()
            and item.expires_at > state.clock()
        ):
            return item
        return None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Codes are single use."""
        state = sandbox().auth
        with state.lock:
            state.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> LaunchContext:
        """The 'user' of a code is its launch context."""
        return authorization_code.context


class SmartRefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh tokens; rotation (new token, old one void) or keep, per SandboxConfig.refresh_rotation."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        """Return a live refresh token of this tenant."""
        item = sandbox().auth.refresh_tokens.get(refresh_token)
        if item and not item.revoked and item.grant.context.tenant == _tenant():
            return item
        return None

    def authenticate_user(self, refresh_token: RefreshToken) -> LaunchContext:
        """The launch context the refresh token was granted in."""
        return refresh_token.grant.context

    def issue_token(self, user: Any, refresh_token: RefreshToken) -> dict[str, Any]:
        """Issue a new access token, and a new refresh token only when rotating."""
        scope = self.request.payload.scope or refresh_token.get_scope()
        rotate = sandbox().config.refresh_rotation == "rotate"
        token: dict[str, Any] = self.generate_token(user=user, scope=scope, include_refresh_token=rotate)
        return token

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """With rotation the used refresh token is void; reusing it is invalid_grant."""
        if sandbox().config.refresh_rotation == "rotate":
            refresh_token.revoked = True


class SmartClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt per SMART: RS384/ES384, kid required, aud = token URL, exp ≤ 5 min, one-time jti."""

    CLIENT_AUTH_METHOD = "private_key_jwt"
    ALGORITHMS = ["RS384", "ES384"]

    def get_audiences(self) -> list[str]:
        """The tenant's token endpoint is the only valid audience."""
        return [auth_url(_tenant(), "token")]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Refuse a replayed assertion."""
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        return sandbox().auth.use_jti(str(claims["sub"]), str(jti), expires)

    def resolve_client_public_key(self, client: Any) -> Any:
        """Return a resolver that picks the client's key by kid (refetching the JWKS URL on a miss)."""

        def resolve(guest: Any) -> Any:
            headers = guest.headers()
            if not headers.get("kid"):
                raise InvalidClientError(description="The client assertion has no 'kid'")
            if headers.get("jku") and headers["jku"] != client.jwks_uri:
                raise InvalidClientError(description="'jku' is not the registered JWKS URL")
            return sandbox().jwks_cache.key_set(client, headers["kid"])

        return resolve

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """Verify signature (SMART algorithms only), claims, jti and the five-minute lifetime."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self.ALGORITHMS)
        except (JoseError, LookupError, ValueError, requests.RequestException) as error:
            raise InvalidClientError(
                description=f"Client assertion rejected: {type(error).__name__}"
            ) from error
        self.verify_claims(token.claims)
        now = time.time()  # like joserfc's exp check: clients sign with the real clock, not the pinned one
        if int(token.claims["exp"]) > now + MAX_ASSERTION_LIFETIME_SECONDS + self.leeway:
            raise InvalidClientError(description="Client assertion 'exp' is more than five minutes ahead")
        claims: dict[str, Any] = token.claims
        return claims


def _generate_token(
    grant_type: str,
    client: Any,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    """Opaque bearer token; a refresh token only when online_access or offline_access was granted."""
    scope = scope or ""
    token: dict[str, Any] = {
        "access_token": secrets.token_urlsafe(32),
        "token_type": "Bearer",
        "expires_in": sandbox().config.token_lifetime_seconds,
        "scope": scope,
    }
    if include_refresh_token and {"offline_access", "online_access"} & set(scope.split()):
        token["refresh_token"] = secrets.token_urlsafe(40)
    return token


def _save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Record the tokens and add SMART launch context (and an id_token) to the response."""
    context: LaunchContext = oauth_request.user
    state = sandbox().auth
    grant = Grant(oauth_request.client.client_id, token["scope"], context)
    state.issue_access_token(token["access_token"], grant, sandbox().config.token_lifetime_seconds)
    if "refresh_token" in token:
        with state.lock:
            state.refresh_tokens[token["refresh_token"]] = RefreshToken(token["refresh_token"], grant)
    if context.patient_id:
        token["patient"] = context.patient_id
    if context.encounter_id:
        token["encounter"] = context.encounter_id
    token["need_patient_banner"] = not context.embedded
    token["smart_style_url"] = f"{root_url()}/smart-style.json"
    code = getattr(oauth_request, "authorization_code", None)
    if code is not None and "openid" in token["scope"].split():
        token["id_token"] = sign_id_token(grant, code.nonce)


def sign_id_token(grant: Grant, nonce: str | None) -> str:
    """Sign an OpenID Connect id_token (RS256, with kid) for the launch's user."""
    context = sandbox()
    now = context.auth.clock()
    claims: dict[str, Any] = {
        "iss": fhir_base(grant.context.tenant),
        "sub": grant.context.user_id,
        "aud": grant.client_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + context.config.token_lifetime_seconds,
        "fhirUser": grant.context.fhir_user,
        "profile": grant.context.fhir_user,
    }
    if nonce:
        claims["nonce"] = nonce
    header = {"alg": "RS256", "kid": context.signing_key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, context.signing_key)


def create_authorization_server(app: Flask) -> AuthorizationServer:
    """Build the authlib server with the SMART grants and client authentication methods."""
    server = AuthorizationServer()
    server.init_app(
        app, query_client=lambda client_id: sandbox().clients.get(client_id), save_token=_save_token
    )
    server.register_token_generator("default", _generate_token)
    server.register_grant(
        SmartAuthorizationCodeGrant,
        [
            SmartCodeChallenge(required=True),
            lambda grant: grant.register_hook(
                "after_validate_authorization_request_payload", check_smart_request
            ),
        ],
    )
    server.register_grant(SmartRefreshTokenGrant)
    server.register_client_auth_method("private_key_jwt", SmartClientAssertion(leeway=60))
    app.extensions["sandbox_oauth"] = server
    return server
