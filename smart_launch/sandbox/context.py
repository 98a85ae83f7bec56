"""The sandbox's shared state (store, auth state, clients, keys, faults) and its URL helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, request
from joserfc.jwk import RSAKey

from .auth import AuthState
from .clients import JwksCache, SandboxClient
from .config import TENANTS, SandboxConfig
from .faults import FaultState
from .store import FhirStore, SnapshotCache


@dataclass
class SandboxContext:
    """Everything the blueprints share; kept in ``app.extensions["sandbox"]``."""

    config: SandboxConfig
    store: FhirStore
    auth: AuthState
    clients: dict[str, SandboxClient]
    signing_key: RSAKey
    faults: FaultState
    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    jwks_cache: JwksCache = field(default_factory=JwksCache)
    #: Seeded patients per tenant: id -> manifest summary.
    summaries: dict[str, str] = field(default_factory=dict)


def sandbox() -> SandboxContext:
    """Return the current app's sandbox context."""
    context: SandboxContext = current_app.extensions["sandbox"]
    return context


def root_url() -> str:
    """The sandbox's public root: the configured one, else the one the request came in on."""
    configured = sandbox().config.public_url
    if configured:
        return configured.rstrip("/")
    return (request.host_url.rstrip("/") + request.script_root).rstrip("/")


def fhir_base(tenant: str) -> str:
    """A tenant's FHIR base URL (the ``iss`` and the required ``aud``)."""
    return f"{root_url()}/{tenant}/fhir"


def auth_url(tenant: str, endpoint: str) -> str:
    """A tenant's authorization or token endpoint URL."""
    return f"{root_url()}/{tenant}/auth/{endpoint}"


def known_tenant(tenant: str) -> bool:
    """Tell whether the sandbox serves this tenant."""
    return tenant in TENANTS
