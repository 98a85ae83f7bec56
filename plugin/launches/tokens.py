"""Acting on a completed launch: its current access token (refreshed under a lease) and its FHIR client.

Each refresh token is presented once across every worker and host: the refresh is a compare-and-set
lease on the launch row, and the others wait for the new token instead of refreshing again.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import or_, update

from plugin.db import get_db, rows_changed, utcnow
from plugin.launches.base import LaunchExpired, cipher, registered_ehr
from plugin.launches.models import Launch
from plugin.launches.smart import client_registration, discovery_for
from smart_launch.fhir_client import FhirClient
from smart_launch.oauth import TokenSet, needs_refresh, refresh_tokens

log = logging.getLogger(__name__)

_OWNER = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
_REFRESH_LEASE = timedelta(seconds=30)


def tokens_payload(tokens: TokenSet) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "id_token": tokens.id_token,
        "expires_at": tokens.expires_at.isoformat(),
        "scope": tokens.scope,
    }


@dataclass
class _TokenState:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    version: int


def _read_tokens(launch_id: str) -> tuple[Launch, _TokenState]:
    with get_db().session() as session:
        launch = session.get(Launch, launch_id)
    # A purged launch (retention) has relaunch_required set and no tokens: nothing to decrypt.
    if launch is None or launch.relaunch_required or not launch.tokens_enc:
        raise LaunchExpired()
    data = cipher().open(launch.tokens_enc)
    return launch, _TokenState(
        data["access_token"],
        data.get("refresh_token"),
        datetime.fromisoformat(data["expires_at"]),
        launch.tokens_version,
    )


def current_access_token(launch_id: str, *, force_refresh: bool = False) -> str:
    """Return a usable access token, refreshing it first when it is about to expire (or when forced)."""
    launch, tokens = _read_tokens(launch_id)
    if not force_refresh and not needs_refresh(_as_tokenset(tokens), utcnow()):
        return tokens.access_token
    return _refresh(launch_id, seen_version=tokens.version)


def _as_tokenset(tokens: _TokenState) -> TokenSet:
    return TokenSet(
        access_token=tokens.access_token,
        token_type="Bearer",  # noqa: S106 - a token type, not a secret
        expires_at=tokens.expires_at,
        refresh_token=tokens.refresh_token,
        scope="",
    )


def _refresh(launch_id: str, seen_version: int) -> str:
    """Refresh under the launch row's lease so each refresh token is presented once across all workers."""
    deadline = time.monotonic() + 15
    while True:
        now = utcnow()
        with get_db().session() as session:
            claimed = rows_changed(
                session.execute(
                    update(Launch)
                    .where(
                        Launch.id == launch_id,
                        Launch.tokens_version == seen_version,
                        or_(Launch.refresh_lease_until.is_(None), Launch.refresh_lease_until < now),
                    )
                    .values(refresh_lease_owner=_OWNER, refresh_lease_until=now + _REFRESH_LEASE)
                )
            )
        launch, tokens = _read_tokens(launch_id)
        if tokens.version != seen_version:
            return tokens.access_token  # another worker refreshed while we waited
        if claimed:
            break
        if time.monotonic() > deadline:
            raise LaunchExpired("The EHR session could not be renewed in time. Please relaunch from the EHR.")
        time.sleep(0.1)
    try:
        if not tokens.refresh_token:
            raise LaunchExpired()
        entry = registered_ehr(launch.iss)
        fresh = refresh_tokens(
            discovery_for(entry.iss), client_registration(entry), tokens.refresh_token, now=now
        )
    except Exception:
        with get_db().session() as session:
            session.execute(
                update(Launch)
                .where(Launch.id == launch_id)
                .values(refresh_lease_owner=None, refresh_lease_until=None, relaunch_required=True)
            )
        log.warning("token refresh failed; relaunch required", extra={"event": "launch.refresh_failed"})
        raise LaunchExpired() from None
    payload = tokens_payload(fresh)
    # Some servers answer a refresh without a new refresh token: keep using the old one (inferno PR #39).
    payload["refresh_token"] = fresh.refresh_token or tokens.refresh_token
    with get_db().session() as session:
        session.execute(
            update(Launch)
            .where(Launch.id == launch_id, Launch.refresh_lease_owner == _OWNER)
            .values(
                tokens_enc=cipher().seal(payload),
                access_expires_at=fresh.expires_at,
                tokens_version=seen_version + 1,
                refresh_lease_owner=None,
                refresh_lease_until=None,
            )
        )
    log.info("token refreshed", extra={"event": "launch.refresh"})
    return fresh.access_token


# One client per launch and process: its HTTP sessions and worker pool are reused by every request of
# the launch (the live check, the outbox). Evicted clients are closed.
_clients: OrderedDict[str, FhirClient] = OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 128
_FHIR_WORKERS = 16


def fhir_client_for_launch(launch_id: str) -> FhirClient:
    """Return the FHIR client of a launch's EHR; it always sends the launch's current token.

    Raises ``LaunchExpired`` when the launch can no longer act (its refresh failed, or its tokens were
    purged), even when a client is cached: the outbox then parks the row until a new launch adopts it,
    rather than failing the round when the client asks for a token.
    """
    launch, _ = _read_tokens(launch_id)  # a cached client of such a launch stays until evicted, unused
    with _clients_lock:
        client = _clients.get(launch_id)
        if client is not None:
            _clients.move_to_end(launch_id)
            return client
    client = _new_client(launch_id, launch.iss)
    with _clients_lock:
        _clients[launch_id] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)[1].close()
    return client


def _new_client(launch_id: str, iss: str) -> FhirClient:
    """Build a FHIR client whose token comes from (and is refreshed in) the launch row."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def token_provider() -> str:
        with app.app_context():
            return current_access_token(launch_id)

    def on_unauthorized() -> str | None:
        with app.app_context():
            try:
                return current_access_token(launch_id, force_refresh=True)
            except LaunchExpired:
                return None

    return FhirClient(
        iss,
        token_provider,
        on_unauthorized=on_unauthorized,
        timeout=(3.05, float(app.config["HTTP_TIMEOUT_SECONDS"])),
        # The chart is one round of about a dozen searches (plus the remaining pages of large ones):
        # enough workers that none of them waits for another to finish.
        max_workers=_FHIR_WORKERS,
    )
