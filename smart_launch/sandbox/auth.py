"""Authorization state of the sandbox (launches, codes, tokens) and SMART scope checks for the FHIR API.

Everything lives in memory behind one lock. Tokens are opaque random strings, as at Epic; the FHIR
API looks them up here. Scopes follow SMART 2.2: v1 ``.read``/``.write``/``.*`` map onto v2 ``cruds``.
Granular v2 query suffixes (``?category=...``) are accepted but enforced only at the resource-type level.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from .outcome import FhirError
from .search import element_values
from .search_params import PATIENT_COMPARTMENT

#: Reading another patient's resource with a patient-level token; a constant so tests and docs agree.
FORBIDDEN_STATUS = 403
_SCOPE_RE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(\?.*)?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class ResourceScope:
    """One SMART resource scope such as ``patient/Observation.rs`` or ``user/*.read``."""

    level: str
    resource_type: str
    permissions: frozenset[str]

    def covers(self, resource_type: str, permission: str) -> bool:
        """Tell whether this scope allows ``permission`` (one of c r u d s) on ``resource_type``."""
        return self.resource_type in ("*", resource_type) and permission in self.permissions


def parse_scope(text: str) -> ResourceScope | None:
    """Parse a resource scope (v1 or v2); None for context/identity scopes or malformed ones."""
    match = _SCOPE_RE.match(text)
    if not match or not match.group(3):
        return None
    letters = _V1.get(match.group(3), match.group(3))
    return ResourceScope(match.group(1), match.group(2), frozenset(letters))


def grant_scopes(requested: str, allowed_patterns: tuple[str, ...]) -> str:
    """Return the requested scopes that the client may have (glob patterns), in request order."""
    granted = [s for s in requested.split() if any(fnmatchcase(s, p) for p in allowed_patterns)]
    return " ".join(dict.fromkeys(granted))


@dataclass(frozen=True)
class LaunchContext:
    """Who launched, for which patient, and how: what a launch id or the standalone picker stands for."""

    tenant: str
    user_id: str
    patient_id: str | None
    encounter_id: str | None = None
    embedded: bool = False

    @property
    def fhir_user(self) -> str:
        """The relative fhirUser reference, as the SMART launcher sends it."""
        return f"Practitioner/{self.user_id}"


@dataclass(frozen=True)
class Grant:
    """What a token stands for: client, granted scope and launch context."""

    client_id: str
    scope: str
    context: LaunchContext

    def resource_scopes(self) -> list[ResourceScope]:
        """The granted resource scopes."""
        return [s for s in (parse_scope(x) for x in self.scope.split()) if s]


@dataclass
class AuthorizationCode:
    """An issued authorization code (authlib's AuthorizationCodeMixin duck type)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    context: LaunchContext
    expires_at: datetime

    def get_redirect_uri(self) -> str:
        """Return the redirect URI the code was issued for."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """Return the granted scope."""
        return self.scope


@dataclass
class RefreshToken:
    """An issued refresh token (authlib's TokenMixin duck type)."""

    token: str
    grant: Grant
    revoked: bool = False

    def check_client(self, client: Any) -> bool:
        """Tell whether the token belongs to this client."""
        return bool(client.client_id == self.grant.client_id)

    def get_scope(self) -> str:
        """Return the scope the refresh token was granted with."""
        return self.grant.scope


@dataclass
class AuthState:
    """The sandbox's launches, codes, access and refresh tokens and seen JWT ids, behind one lock."""

    clock: Callable[[], datetime]
    launches: dict[str, LaunchContext] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access_tokens: dict[str, tuple[Grant, datetime]] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    seen_jtis: dict[tuple[str, str], datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_launch(self, context: LaunchContext) -> str:
        """Record a launch and return its opaque id."""
        launch_id = secrets.token_urlsafe(16)
        with self.lock:
            self.launches[launch_id] = context
        return launch_id

    def issue_access_token(self, token: str, grant: Grant, lifetime_seconds: int) -> None:
        """Remember an access token until it expires."""
        with self.lock:
            self.access_tokens[token] = (grant, self.clock() + timedelta(seconds=lifetime_seconds))

    def lookup_access_token(self, token: str) -> Grant | None:
        """Return the grant of a valid, unexpired access token."""
        with self.lock:
            entry = self.access_tokens.get(token)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def use_jti(self, client_id: str, jti: str, expires: datetime) -> bool:
        """Record a client assertion's jti; False when it was seen before (a replay)."""
        now = self.clock()
        with self.lock:
            self.seen_jtis = {k: v for k, v in self.seen_jtis.items() if v > now - timedelta(minutes=10)}
            if (client_id, jti) in self.seen_jtis:
                return False
            self.seen_jtis[(client_id, jti)] = max(expires, now)
            return True


def bearer_grant(state: AuthState, tenant: str, authorization: str | None) -> Grant:
    """Return the grant behind a request's bearer token, or raise 401 with WWW-Authenticate."""
    scheme, _, token = (authorization or "").partition(" ")
    grant = state.lookup_access_token(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None or grant.context.tenant != tenant:
        error = "invalid_token" if authorization else "invalid_request"
        raise FhirError(
            401,
            "login",
            "A valid, unexpired bearer access token is required",
            {"WWW-Authenticate": f'Bearer realm="{tenant}", error="{error}"'},
        )
    return grant


def patient_restriction(grant: Grant, resource_type: str, permission: str) -> str | None:
    """Check a permission; return the patient id the access is limited to, or None when unrestricted.

    A user/ or system/ scope that covers the access wins; otherwise a patient/ scope limits it to the
    token's patient. No covering scope at all is 403.
    """
    scopes = [s for s in grant.resource_scopes() if s.covers(resource_type, permission)]
    if any(s.level in ("user", "system") for s in scopes):
        return None
    if scopes and grant.context.patient_id:
        return grant.context.patient_id
    raise FhirError(
        FORBIDDEN_STATUS, "forbidden", f"The granted scopes do not allow '{permission}' on {resource_type}"
    )


def in_patient_compartment(
    resource: dict[str, Any], patient_id: str, resolve: Callable[[str], dict[str, Any] | None] | None = None
) -> bool:
    """Tell whether a patient-scoped token may see this resource (shared resources such as Medication may).

    A Provenance belongs to the patient when a target is the patient or (with ``resolve``) a target is
    itself in the patient's compartment, so a note's Provenance goes with the note.
    """
    resource_type = resource.get("resourceType", "")
    if resource_type == "Patient":
        return bool(resource.get("id") == patient_id)
    paths = PATIENT_COMPARTMENT.get(resource_type)
    if paths is None:
        return True
    wanted = f"Patient/{patient_id}"
    references = [
        v.get("reference", "") for p in paths for v in element_values(resource, p) if isinstance(v, dict)
    ]
    if any(r == wanted or r.endswith("/" + wanted) for r in references):
        return True
    if resource_type == "Provenance" and resolve is not None:
        targets = [resolve(r) for r in references if not r.startswith("Patient/")]
        return any(
            t is not None and t.get("resourceType") != "Provenance" and in_patient_compartment(t, patient_id)
            for t in targets
        )
    return False
