"""SMART discovery: read ``{iss}/.well-known/smart-configuration`` and choose the scope syntax.

Discovery fails closed: a configuration without an authorization or token endpoint, or without PKCE
``S256`` in ``code_challenge_methods_supported``, raises ``DiscoveryError`` rather than launching in a
weaker mode. SMART 2.x requires that field, and an app that silently drops PKCE for a server that omits
it (client-js grew a ``pkceMode: "unsafeV1"`` escape hatch for athenahealth) is exactly what we avoid.

Relative endpoint URLs: the spec says endpoints SHALL be absolute, and standards.md notes legacy servers
that return relative ones; we resolve those against the FHIR base (``iss``) instead of refusing, because
the resolved URL is on the server the user's EHR already pointed us at. Downgrades (an ``http`` endpoint
for an ``https`` iss) and non-http(s) schemes are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests

from smart_launch.errors import DiscoveryError

ScopeStyle = Literal["v1", "v2"]
WELL_KNOWN_PATH = "/.well-known/smart-configuration"


@dataclass(frozen=True)
class SmartConfiguration:
    """The parts of a server's smart-configuration the client relies on (endpoints are absolute)."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None
    issuer: str | None
    capabilities: frozenset[str]
    scopes_supported: tuple[str, ...]
    code_challenge_methods_supported: tuple[str, ...]
    token_endpoint_auth_methods_supported: tuple[str, ...]
    grant_types_supported: tuple[str, ...]
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def well_known_url(iss: str) -> str:
    """Return the smart-configuration URL for ``iss`` (path appended even when the base has a path)."""
    return iss.rstrip("/") + WELL_KNOWN_PATH


def discover(
    iss: str, *, session: requests.Session | None = None, timeout: float = 10.0
) -> SmartConfiguration:
    """Fetch and validate ``{iss}/.well-known/smart-configuration``; raise ``DiscoveryError`` if unusable."""
    _require_http_url(iss, "iss")
    http = session if session is not None else requests.Session()
    try:
        response = http.get(well_known_url(iss), headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as exc:
        raise DiscoveryError(
            f"could not reach the server's smart-configuration ({type(exc).__name__})"
        ) from None
    finally:
        if session is None:
            http.close()
    if response.status_code != 200:
        raise DiscoveryError(f"smart-configuration request failed with HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise DiscoveryError("smart-configuration is not valid JSON") from None
    if not isinstance(document, dict):
        raise DiscoveryError("smart-configuration is not a JSON object")
    return parse_configuration(iss, document)


def parse_configuration(iss: str, document: dict[str, Any]) -> SmartConfiguration:
    """Validate a smart-configuration document fetched for ``iss`` and return it typed."""
    methods = _string_list(document, "code_challenge_methods_supported")
    if "code_challenge_methods_supported" not in document:
        raise DiscoveryError(
            "smart-configuration lacks code_challenge_methods_supported (PKCE S256 required)"
        )
    if "S256" not in methods:
        raise DiscoveryError("server does not support PKCE S256 (code_challenge_methods_supported)")
    jwks_uri = document.get("jwks_uri")
    issuer = document.get("issuer")
    return SmartConfiguration(
        authorization_endpoint=_endpoint(iss, document, "authorization_endpoint"),
        token_endpoint=_endpoint(iss, document, "token_endpoint"),
        jwks_uri=_endpoint(iss, document, "jwks_uri") if jwks_uri else None,
        issuer=issuer if isinstance(issuer, str) and issuer else None,
        capabilities=frozenset(_string_list(document, "capabilities")),
        scopes_supported=_string_list(document, "scopes_supported"),
        code_challenge_methods_supported=methods,
        token_endpoint_auth_methods_supported=_string_list(document, "token_endpoint_auth_methods_supported"),
        grant_types_supported=_string_list(document, "grant_types_supported"),
        token_endpoint_auth_signing_alg_values_supported=_string_list(
            document, "token_endpoint_auth_signing_alg_values_supported"
        ),
        raw=dict(document),
    )


def scope_style(config: SmartConfiguration) -> ScopeStyle:
    """Return ``"v2"`` when the server advertises ``permission-v2``, else ``"v1"``."""
    return "v2" if "permission-v2" in config.capabilities else "v1"


def build_scopes(
    resource_reads: Sequence[str],
    resource_writes: Sequence[str],
    *,
    style: ScopeStyle,
    launch: bool,
    standalone: bool,
    openid: bool = True,
    offline: bool = True,
    level: Literal["patient", "user"] = "patient",
    resource_updates: Sequence[str] = (),
) -> str:
    """Build a space-separated scope string in v1 or v2 syntax.

    v2 grants read as ``.rs`` and write as ``.c`` (create only), plus ``.u`` for ``resource_updates``
    (the types the client updates; it never deletes), combined in ``cruds`` order (``.crs``, ``.crus``)
    when a type is both read and written. v1 uses ``.read`` / ``.write`` (write covers update).
    ``launch`` adds ``launch`` (EHR launch), ``standalone`` adds ``launch/patient``; ``offline`` picks
    ``offline_access`` over ``online_access``.
    """
    scopes: list[str] = []
    if launch:
        scopes.append("launch")
    if standalone:
        scopes.append("launch/patient")
    if openid:
        scopes += ["openid", "fhirUser"]
    scopes.append("offline_access" if offline else "online_access")
    reads, writes, updates = _unique(resource_reads), _unique(resource_writes), _unique(resource_updates)
    for resource in _unique([*reads, *writes, *updates]):
        if style == "v2":
            letters = (
                ("c" if resource in writes else "")
                + ("r" if resource in reads else "")
                + ("u" if resource in updates else "")
                + ("s" if resource in reads else "")
            )
            scopes.append(f"{level}/{resource}.{letters}")
        else:
            if resource in reads:
                scopes.append(f"{level}/{resource}.read")
            if resource in writes or resource in updates:
                scopes.append(f"{level}/{resource}.write")
    return " ".join(scopes)


def _unique(items: Iterable[str]) -> list[str]:
    """Return ``items`` without duplicates, first occurrence first."""
    return list(dict.fromkeys(items))


def _string_list(document: dict[str, Any], name: str) -> tuple[str, ...]:
    """Return a list-of-strings field as a tuple (empty when absent); raise if it has another shape."""
    value = document.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryError(f"smart-configuration field {name} is not a list of strings")
    return tuple(value)


def _endpoint(iss: str, document: dict[str, Any], name: str) -> str:
    """Return the endpoint ``name`` as an absolute URL, resolving a legacy relative one against ``iss``."""
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DiscoveryError(f"smart-configuration lacks {name}")
    absolute = urljoin(iss.rstrip("/") + "/", value.strip())
    _require_http_url(absolute, name)
    if urlsplit(iss).scheme == "https" and urlsplit(absolute).scheme != "https":
        raise DiscoveryError(f"{name} downgrades an https server to plain http")
    return absolute


def _require_http_url(url: str, name: str) -> None:
    """Raise ``DiscoveryError`` unless ``url`` is an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DiscoveryError(f"{name} is not an absolute http(s) URL")
