"""Settings of the CDS Hooks service and the allow-list of CDS clients (the EHRs that may call it).

``ITB_CDS_CLIENTS`` names a TOML file (tests may pass the list itself)::

    [[client]]
    iss = "https://ehr.example.org"            # the JWT ``iss`` the EHR signs with
    name = "Example EHR"                        # for logs and the audit trail
    jwks_url = "https://ehr.example.org/jwks"   # or: jwks = { keys = [ ... ] } inline
    jku_allow = ["https://ehr.example.org/jwks"]  # JWKS URLs the JWT ``jku`` header may name
    fhir_servers = ["https://ehr.example.org/fhir"]  # fhirServer URLs we may call back with its token

A client without any key source is refused at startup, so a typo cannot silently open the service.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "CDS_CLIENTS": None,  # TOML file of allowed CDS clients (or a list of dicts in tests)
    "CDS_INSECURE_SANDBOX": False,  # accept unsigned calls; refused when ENV_NAME is production
    "CDS_SANDBOX_PAGE": False,  # show /cds-sandbox (also on whenever CDS_INSECURE_SANDBOX is)
    "CDS_CORS_ORIGINS": (),  # browser origins allowed to call the service endpoints
    "CDS_JWT_LEEWAY_SECONDS": 60,  # clock skew tolerated on exp and iat
    "CDS_JWT_MAX_LIFETIME_SECONDS": 3600,  # longest exp - now accepted (bounds the replay table)
    "CDS_JWKS_TTL_SECONDS": 3600,  # how long a fetched JWKS is trusted before it is fetched again
    "CDS_AUDIT_CARDS": True,  # write a cds.card audit record for every issued card
    "CDS_CHART_CACHE_SECONDS": 60,  # reuse the chart of an identical complete prefetch this long (0: off)
}


class CdsConfigError(ValueError):
    """The CDS client allow-list is malformed; the message names the client."""


@dataclass(frozen=True, slots=True)
class CdsClient:
    """One allowed CDS client (EHR): how to verify its JWTs and where it may send us back."""

    iss: str
    name: str
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    jku_allow: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()

    def may_call_back(self, fhir_server: str) -> bool:
        """Return whether ``fhir_server`` is one of this client's FHIR servers (or below one)."""
        return fhir_server_allowed(fhir_server, self.fhir_servers)


def fhir_server_allowed(fhir_server: str, allowed: Sequence[str]) -> bool:
    """Return whether ``fhir_server`` equals or lies under an allowed base URL (same scheme and host)."""
    wanted = fhir_server.rstrip("/")
    parts = urlsplit(wanted)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    for base in allowed:
        base = base.rstrip("/")
        if wanted == base or wanted.startswith(base + "/"):
            return True
    return False


def as_bool(value: Any) -> bool:
    """Read a boolean setting written as JSON, a word or a number (``ITB_X=true``, ``yes``, ``1``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def as_origins(value: Any) -> tuple[str, ...]:
    """Read a list of origins written as a list or a comma/space separated string."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return tuple(str(item).rstrip("/") for item in value or ())


def _client(raw: Any, position: int) -> CdsClient:
    """Build one client entry, refusing entries that could not be verified."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("iss"), str) or not raw["iss"]:
        raise CdsConfigError(f"CDS client {position}: needs an iss")
    iss = raw["iss"]
    jwks = raw.get("jwks")
    if jwks is not None and not (isinstance(jwks, Mapping) and isinstance(jwks.get("keys"), list)):
        raise CdsConfigError(f"CDS client {iss}: jwks must be a JWKS object with a keys list")
    jwks_url = raw.get("jwks_url")
    jku_allow = tuple(str(url) for url in raw.get("jku_allow") or ())
    if jwks is None and not jwks_url and not jku_allow:
        raise CdsConfigError(f"CDS client {iss}: needs jwks, jwks_url or jku_allow")
    for url in (*([jwks_url] if jwks_url else []), *jku_allow):
        if urlsplit(str(url)).scheme not in ("https", "http"):
            raise CdsConfigError(f"CDS client {iss}: {url!r} is not an http(s) URL")
    return CdsClient(
        iss=iss,
        name=str(raw.get("name") or iss),
        jwks=jwks,
        jwks_url=str(jwks_url) if jwks_url else None,
        jku_allow=jku_allow,
        fhir_servers=tuple(str(url).rstrip("/") for url in raw.get("fhir_servers") or ()),
    )


def load_clients(source: Any) -> dict[str, CdsClient]:
    """Load the allow-list from a TOML path or a list of dicts; return clients by ``iss``."""
    if source is None or source == "":
        return {}
    if isinstance(source, str | Path):
        with Path(source).open("rb") as handle:
            try:
                entries = tomllib.load(handle).get("client", [])
            except tomllib.TOMLDecodeError as error:
                raise CdsConfigError(f"{Path(source).name} is not valid TOML: {error}") from error
    else:
        entries = source
    clients: dict[str, CdsClient] = {}
    for position, raw in enumerate(entries, start=1):
        client = _client(raw, position)
        if client.iss in clients:
            raise CdsConfigError(f"CDS client {client.iss}: listed twice")
        clients[client.iss] = client
    return clients


def _seconds(value: Any, name: str) -> float:
    """Return a setting as a non-negative number of seconds; raise RuntimeError naming it otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or isinstance(value, bool):  # also refuses NaN
        raise RuntimeError(f"ITB_{name} must be a number of seconds, 0 or more")
    return seconds


def configure(app: Flask) -> None:
    """Fill in the CDS defaults and refuse an insecure sandbox in production."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config["CDS_INSECURE_SANDBOX"] = as_bool(app.config["CDS_INSECURE_SANDBOX"])
    app.config["CDS_SANDBOX_PAGE"] = (
        as_bool(app.config["CDS_SANDBOX_PAGE"]) or app.config["CDS_INSECURE_SANDBOX"]
    )
    app.config["CDS_CORS_ORIGINS"] = as_origins(app.config["CDS_CORS_ORIGINS"])
    app.config["CDS_CHART_CACHE_SECONDS"] = _seconds(
        app.config["CDS_CHART_CACHE_SECONDS"], "CDS_CHART_CACHE_SECONDS"
    )
    if app.config.get("IS_PRODUCTION") and (
        app.config["CDS_INSECURE_SANDBOX"] or app.config["CDS_SANDBOX_PAGE"]
    ):
        raise RuntimeError("ITB_CDS_INSECURE_SANDBOX and ITB_CDS_SANDBOX_PAGE must be off in production")
    if app.config["CDS_INSECURE_SANDBOX"]:
        log.warning(
            "CDS Hooks service accepts UNSIGNED calls (ITB_CDS_INSECURE_SANDBOX); never expose this instance",
            extra={"event": "cds.insecure_sandbox"},
        )
