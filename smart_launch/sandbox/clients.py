"""The sandbox's registered OAuth clients (``config/sandbox/clients.toml``) and their public keys."""

from __future__ import annotations

import hmac
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import requests
from authlib.oauth2.rfc6749 import ClientMixin
from joserfc.jwk import KeySet

from .auth import grant_scopes
from .config import SandboxConfig

_JWKS_CACHE_SECONDS = 300
_JWKS_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class SandboxClient(ClientMixin):  # type: ignore[misc]
    """One registered client: how it authenticates, where it may redirect, what it may ask for."""

    client_id: str
    auth_methods: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    client_secret: str | None = None
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    name: str = ""

    def get_client_id(self) -> str:
        """Return the client id."""
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """SMART requires redirect_uri on every request, so there is no default."""
        return None

    def get_allowed_scope(self, scope: str) -> str:
        """Return requested ∩ allowed (unknown or disallowed scopes are dropped, not refused)."""
        return grant_scopes(scope or "", self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match only, as SMART requires."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Compare the secret in constant time."""
        return self.client_secret is not None and hmac.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Allow only the registered token endpoint authentication methods."""
        return method in self.auth_methods if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """Authorization code and refresh token grants."""
        return grant_type in ("authorization_code", "refresh_token")


def _client_from_table(table: dict[str, Any]) -> SandboxClient:
    """Build a client from one clients.toml table (``auth_method`` or ``auth_methods``)."""
    methods = table.get("auth_methods") or [table.get("auth_method", "none")]
    return SandboxClient(
        client_id=table["client_id"],
        auth_methods=tuple(methods),
        redirect_uris=tuple(table.get("redirect_uris", ())),
        scopes=tuple(table.get("scopes", ())),
        client_secret=table.get("client_secret"),
        jwks_uri=table.get("jwks_uri"),
        jwks=table.get("jwks"),
        name=table.get("name", ""),
    )


def load_clients(config: SandboxConfig) -> dict[str, SandboxClient]:
    """Load clients.toml (if present) plus ``config.extra_clients`` and apply the config's overrides."""
    path = config.clients_file or config.seed_dir / "clients.toml"
    tables: list[dict[str, Any]] = []
    if path.exists():
        tables.extend(tomllib.loads(path.read_text(encoding="utf-8")).get("clients", []))
    clients: dict[str, SandboxClient] = {}
    for table in tables:
        client = _client_from_table(table)
        if config.app_redirect_uris is not None:
            client = replace(client, redirect_uris=tuple(config.app_redirect_uris))
        if "private_key_jwt" in client.auth_methods:
            client = replace(
                client, jwks_uri=config.jwks_uri or client.jwks_uri, jwks=config.jwks or client.jwks
            )
        clients[client.client_id] = client
    for table in config.extra_clients:
        client = _client_from_table(table)
        clients[client.client_id] = client
    return clients


@dataclass
class JwksCache:
    """Client JWKS fetched over HTTP and cached; a kid that is not cached triggers one refetch (rotation)."""

    fetch: Callable[[str], dict[str, Any]] = field(default=lambda url: _http_get_json(url))
    _entries: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_set(self, client: SandboxClient, kid: str | None) -> KeySet:
        """Return the client's keys, refetching a stale or kid-less cache entry."""
        if client.jwks is not None:
            return KeySet.import_key_set(cast(Any, client.jwks))
        if not client.jwks_uri:
            raise LookupError("client has no registered keys")
        with self._lock:
            entry = self._entries.get(client.jwks_uri)
        fresh = entry is not None and time.monotonic() - entry[0] < _JWKS_CACHE_SECONDS
        known = entry is not None and (
            kid is None or any(k.get("kid") == kid for k in entry[1].get("keys", []))
        )
        if not (fresh and known):
            document = self.fetch(client.jwks_uri)
            entry = (time.monotonic(), document)
            with self._lock:
                self._entries[client.jwks_uri] = entry
        assert entry is not None
        return KeySet.import_key_set(cast(Any, entry[1]))


def _http_get_json(url: str) -> dict[str, Any]:
    """Fetch a JWKS document."""
    response = requests.get(url, timeout=_JWKS_TIMEOUT_SECONDS, headers={"Accept": "application/json"})
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document
