"""Settings of the sandbox EHR: one frozen dataclass handed to ``create_sandbox_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

#: The repository's ``config/sandbox`` folder (clients, manifest, patient bundles).
DEFAULT_SEED_DIR = Path(__file__).resolve().parents[2] / "config" / "sandbox"

#: Tenants the sandbox serves; ``epic-like`` hides MedicationStatement as Epic and Oracle Health do in R4.
TENANTS: tuple[str, ...] = ("full", "epic-like")


def utc_now() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs to start; every field has a development default."""

    #: Public root URL (scheme, host, port). None: derive it from each request's host, so port 0 works.
    public_url: str | None = None
    #: The app's EHR launch URL the launch page redirects to.
    app_launch_url: str = "http://127.0.0.1:5000/launch"
    #: Replaces every client's registered redirect URIs when set (the app's port varies).
    app_redirect_uris: tuple[str, ...] | None = None
    #: Replaces the ``jwks_uri`` of private_key_jwt clients when set.
    jwks_uri: str | None = None
    #: Inline JWKS for private_key_jwt clients (takes precedence over any jwks_uri when set).
    jwks: dict[str, Any] | None = None
    #: Folder with clients.toml, manifest.toml and patients/*.json.
    seed_dir: Path = DEFAULT_SEED_DIR
    #: Overrides the clients file (default ``seed_dir / "clients.toml"``).
    clients_file: Path | None = None
    #: Access token lifetime; tests use a short one.
    token_lifetime_seconds: int = 3600
    #: "rotate" issues a new refresh token on every refresh and voids the old one; "keep" reuses it.
    refresh_rotation: Literal["rotate", "keep"] = "rotate"
    #: Extra delay for every FHIR request, for benchmarks.
    latency_ms: int = 0
    #: The next N FHIR requests answer 503 (startup fault).
    fail_next_requests: int = 0
    #: Enables ``POST /_sandbox/faults``; only for tests and demos.
    allow_faults: bool = False
    #: Tenants that answer 503 to everything from the start (an EHR that is down).
    offline_tenants: frozenset[str] = frozenset()
    #: Extra client definitions (same keys as a clients.toml table), e.g. from tests.
    extra_clients: tuple[dict[str, Any], ...] = ()
    #: The clock; tests pin it. Dates in the seed are shifted relative to its day.
    clock: Callable[[], datetime] = field(default=utc_now)
    #: Load the patient bundles at start.
    seed: bool = True

    @classmethod
    def for_app(cls, app_url: str, **overrides: Any) -> SandboxConfig:
        """Build a config whose launch URL, redirect URI and JWKS URL point at the app at ``app_url``."""
        base = app_url.rstrip("/")
        values: dict[str, Any] = {
            "app_launch_url": f"{base}/launch",
            "app_redirect_uris": (f"{base}/callback",),
            "jwks_uri": f"{base}/.well-known/jwks.json",
        }
        values.update(overrides)
        return cls(**values)
