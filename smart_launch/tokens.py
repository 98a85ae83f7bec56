"""The token response of a SMART authorization server, typed: ``TokenSet`` and its parser.

The access token is opaque: ``expires_at`` comes from ``expires_in`` and local time at receipt, never
from decoding the token (Epic's access tokens are not JWTs; apps that decoded ``exp`` broke on them).
``repr`` never shows a token, and ``to_dict``/``from_dict`` exist so the app can keep a launch's tokens
in server-side storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from smart_launch.errors import TokenError

DEFAULT_EXPIRES_IN_S = 300

# Fields parsed into TokenSet attributes; everything else non-secret goes to raw_extra.
_KNOWN_FIELDS = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "id_token",
        "patient",
        "encounter",
        "need_patient_banner",
        "smart_style_url",
        "fhirContext",
        "intent",
        "tenant",
    }
)
_SECRET_MARKERS = ("token", "secret", "code", "password", "assertion")


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint granted, plus the SMART launch context that came with it."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime
    refresh_token: str | None = field(repr=False)
    scope: str
    id_token: str | None = field(default=None, repr=False)
    patient: str | None = field(default=None, repr=False)
    encounter: str | None = field(default=None, repr=False)
    need_patient_banner: bool | None = None
    smart_style_url: str | None = None
    fhir_context: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    intent: str | None = None
    tenant: str | None = None
    raw_extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        """Describe the grant without tokens or patient identifiers."""
        return (
            f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at.isoformat()!r}, "
            f"scope={self.scope!r}, has_refresh_token={self.refresh_token is not None}, "
            f"has_id_token={self.id_token is not None}, has_patient={self.patient is not None})"
        )

    @property
    def granted_scopes(self) -> frozenset[str]:
        """Return the granted scopes as a set."""
        return frozenset(self.scope.split())

    def with_refresh_token(self, refresh_token: str | None) -> TokenSet:
        """Return a copy carrying ``refresh_token``."""
        return replace(self, refresh_token=refresh_token)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for server-side storage (it holds secrets: store it encrypted)."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at.isoformat(),
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "id_token": self.id_token,
            "patient": self.patient,
            "encounter": self.encounter,
            "need_patient_banner": self.need_patient_banner,
            "smart_style_url": self.smart_style_url,
            "fhir_context": list(self.fhir_context),
            "intent": self.intent,
            "tenant": self.tenant,
            "raw_extra": dict(self.raw_extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSet:
        """Rebuild a TokenSet stored with ``to_dict``."""
        expires_at = datetime.fromisoformat(str(data["expires_at"]))
        if expires_at.tzinfo is None:
            raise ValueError("stored expires_at is not timezone-aware")
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data["token_type"]),
            expires_at=expires_at.astimezone(UTC),
            refresh_token=data.get("refresh_token"),
            scope=str(data.get("scope", "")),
            id_token=data.get("id_token"),
            patient=data.get("patient"),
            encounter=data.get("encounter"),
            need_patient_banner=data.get("need_patient_banner"),
            smart_style_url=data.get("smart_style_url"),
            fhir_context=tuple(data.get("fhir_context") or ()),
            intent=data.get("intent"),
            tenant=data.get("tenant"),
            raw_extra=dict(data.get("raw_extra") or {}),
        )


def needs_refresh(tokens: TokenSet, now: datetime, margin_s: int = 60) -> bool:
    """Return whether the access token expires within ``margin_s`` seconds of ``now``.

    Refresh ahead of expiry: Oracle Health advises against using tokens near expiry (and issues 570 s ones).
    """
    return now >= tokens.expires_at - timedelta(seconds=margin_s)


def parse_token_response(body: dict[str, Any], *, now: datetime, requested_scope: str | None) -> TokenSet:
    """Turn a successful token endpoint JSON body into a TokenSet; raise TokenError if it is unusable."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenError("invalid_response", "token response has no access_token", 200)
    token_type = body.get("token_type")
    # The spec writes "Bearer" in one table and "bearer" in another: compare case-insensitively.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError("invalid_response", "token response is not a Bearer token", 200)
    scope = body.get("scope")
    # RFC 6749 §5.1: an omitted scope means "as requested"; SMART requires it, some servers omit it.
    granted = scope if isinstance(scope, str) else (requested_scope or "")
    return TokenSet(
        access_token=access_token,
        token_type="Bearer",  # noqa: S106 - the token type name, not a secret
        expires_at=now.astimezone(UTC) + timedelta(seconds=_expires_in_s(body.get("expires_in"))),
        refresh_token=_text(body.get("refresh_token")),
        scope=" ".join(granted.split()),
        id_token=_text(body.get("id_token")),
        patient=_text(body.get("patient")),
        encounter=_text(body.get("encounter")),
        need_patient_banner=body.get("need_patient_banner")
        if isinstance(body.get("need_patient_banner"), bool)
        else None,
        smart_style_url=_text(body.get("smart_style_url")),
        fhir_context=_fhir_context(body.get("fhirContext")),
        intent=_text(body.get("intent")),
        tenant=_text(body.get("tenant")),
        raw_extra={
            name: value
            for name, value in body.items()
            if name not in _KNOWN_FIELDS and not any(marker in name.lower() for marker in _SECRET_MARKERS)
        },
    )


def _expires_in_s(value: Any) -> float:
    """Return ``expires_in`` in seconds, or the 300 s default when absent or malformed."""
    if isinstance(value, bool):
        return DEFAULT_EXPIRES_IN_S
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return DEFAULT_EXPIRES_IN_S
        return seconds if seconds > 0 else DEFAULT_EXPIRES_IN_S
    return DEFAULT_EXPIRES_IN_S


def _text(value: Any) -> str | None:
    """Return a non-empty string value or None."""
    return value if isinstance(value, str) and value else None


def _fhir_context(value: Any) -> tuple[dict[str, Any], ...]:
    """Return the ``fhirContext`` array's objects; ignore anything that is not an object."""
    if not isinstance(value, list):
        return ()
    return tuple(dict(item) for item in value if isinstance(item, dict))
