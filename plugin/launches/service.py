"""Launch services: start an authorization, finish it at the callback, and act on a launch later.

Everything is keyed by ``state`` (pending) and then by an opaque launch handle (completed), and kept in
the app's database, never in a cookie: EHR iframes often block third-party cookies (standards.md §5.1),
and two tabs with two patients must never share state (§5.2).
"""

from __future__ import annotations

import json
import logging
import secrets
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

from plugin.db import get_db, utcnow
from plugin.launches.crypto import TokenCipher, sha256_hex
from plugin.launches.models import Launch, PendingLaunch
from plugin.launches.smart import client_registration, discovery_for, requested_scope
from plugin.registry import EhrEntry, Registry
from plugin.writeback.outbox import adopt_after_launch
from smart_launch.context import LaunchContext, launch_context_from
from smart_launch.fhir_client import FhirClient
from smart_launch.id_token import fhir_user_reference, validate_id_token
from smart_launch.oauth import (
    PendingAuthorization,
    TokenSet,
    begin_authorization,
    exchange_code,
    needs_refresh,
    refresh_tokens,
)

log = logging.getLogger(__name__)

_OWNER = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
_REFRESH_LEASE = timedelta(seconds=30)


class LaunchError(Exception):
    """A launch cannot start or finish; ``safe_message`` is one line for the person, ``status`` the HTTP code."""

    def __init__(self, safe_message: str, status: int = 400) -> None:
        super().__init__(safe_message)
        self.safe_message = safe_message
        self.status = status


class LaunchExpired(LaunchError):
    """The launch is unknown, expired, or its tokens can no longer be refreshed: relaunch from the EHR."""

    def __init__(
        self, safe_message: str = "This session has ended. Please launch the app again from the EHR."
    ) -> None:
        super().__init__(safe_message, status=401)


def _cipher() -> TokenCipher:
    cipher: TokenCipher = current_app.extensions["itb.cipher"]
    return cipher


def _registry() -> Registry:
    registry: Registry = current_app.extensions["itb.registry"]
    return registry


def registered_ehr(iss: str | None) -> EhrEntry:
    """Return the registry entry for ``iss``; unknown or missing ``iss`` is refused without any request."""
    if not iss:
        raise LaunchError("The launch did not say which EHR it came from (no iss).")
    entry = _registry().find(iss)
    if entry is None:
        raise LaunchError("This EHR is not registered with ITB Dose Check, so the launch was refused.")
    return entry


def start_launch(iss: str | None, launch: str | None, redirect_uri: str, now: datetime | None = None) -> str:
    """Record a pending authorization for a registered EHR and return the authorize URL to redirect to."""
    now = now or utcnow()
    entry = registered_ehr(iss)
    config = discovery_for(entry.iss)
    scope = requested_scope(entry, config, standalone=launch is None)
    url, pending = begin_authorization(
        config, client_registration(entry), redirect_uri=redirect_uri, launch=launch, scope=scope, now=now
    )
    with get_db().session() as session:
        session.add(
            PendingLaunch(
                state_hash=sha256_hex(pending.state),
                iss=entry.iss,
                redirect_uri=redirect_uri,
                scope=scope,
                launch_param=launch,
                secrets_enc=_cipher().seal(
                    {"state": pending.state, "code_verifier": pending.code_verifier, "nonce": pending.nonce}
                ),
                created_at=now,
                expires_at=now + timedelta(seconds=int(current_app.config["LAUNCH_TTL_SECONDS"])),
            )
        )
    log.info("launch started", extra={"event": "launch.start", "ehr": entry.name})
    return url


def _consume_pending(state: str, now: datetime) -> PendingLaunch:
    """Mark the pending launch for ``state`` used, exactly once, and return it."""
    state_hash = sha256_hex(state)
    with get_db().session() as session:
        # A conditional UPDATE is the compare-and-set: a replayed state finds consumed_at already set.
        claimed = session.execute(
            update(PendingLaunch)
            .where(PendingLaunch.state_hash == state_hash, PendingLaunch.consumed_at.is_(None))
            .values(consumed_at=now)
        ).rowcount
        pending = session.get(PendingLaunch, state_hash)
    if pending is None or not claimed:
        raise LaunchError(
            "This sign-in link is not valid or was already used. Please launch again from the EHR."
        )
    if pending.expires_at < now:
        raise LaunchError("The sign-in took too long. Please launch again from the EHR.")
    return pending


def finish_launch(state: str | None, code: str | None, error: str | None, now: datetime | None = None) -> str:
    """Exchange the code for tokens, validate them, store the launch, and return its new opaque handle."""
    now = now or utcnow()
    if not state:
        raise LaunchError("The EHR's answer had no state, so it was refused.")
    pending = _consume_pending(state, now)
    if error:
        raise LaunchError(f"The EHR did not authorize the app ({error[:80]}).", status=403)
    if not code:
        raise LaunchError("The EHR's answer had no authorization code.")
    entry = registered_ehr(pending.iss)
    config = discovery_for(entry.iss)
    secrets_ = _cipher().open(pending.secrets_enc)
    authorization = PendingAuthorization(
        state=secrets_["state"],
        code_verifier=secrets_["code_verifier"],
        nonce=secrets_.get("nonce"),
        iss=entry.iss,
        redirect_uri=pending.redirect_uri,
        scope=pending.scope,
        launch=pending.launch_param,
        created_at=pending.created_at,
    )
    client = client_registration(entry)
    tokens = exchange_code(config, client, authorization, code, now=now)
    claims: dict[str, Any] | None = None
    if tokens.id_token:
        claims = validate_id_token(
            tokens.id_token,
            issuer=config.issuer or entry.iss,
            client_id=entry.client_id,
            jwks_uri=config.jwks_uri,
            nonce=authorization.nonce,
            now=now,
        )
    context = launch_context_from(tokens, entry.iss, claims)
    if context.patient is None:
        raise LaunchError("The EHR did not give a patient for this launch, so nothing can be checked.")
    handle = secrets.token_urlsafe(32)
    fhir_user = context.fhir_user or (fhir_user_reference(claims, entry.iss) if claims else None)
    launch = Launch(
        id=str(uuid.uuid4()),
        handle_hash=sha256_hex(handle),
        iss=entry.iss,
        client_id=entry.client_id,
        patient_id=context.patient,
        encounter_id=context.encounter,
        fhir_user=fhir_user,
        role=entry.roles.get(fhir_user or "", "clinician"),
        need_patient_banner=context.need_patient_banner,
        smart_style_url=context.smart_style_url,
        scope=" ".join(sorted(context.granted_scopes)),
        context_json=json.dumps(
            {"fhirContext": list(context.fhir_context), "intent": context.intent, "tenant": context.tenant}
        ),
        tokens_enc=_cipher().seal(_tokens_payload(tokens)),
        access_expires_at=tokens.expires_at,
        created_at=now,
        expires_at=now + timedelta(seconds=int(current_app.config["SESSION_TTL_SECONDS"])),
    )
    with get_db().session() as session:
        session.add(launch)
        # Notes this user left unfiled for this patient (an expired session) ride on the new launch.
        adopt_after_launch(
            session,
            launch_id=launch.id,
            iss=entry.iss,
            patient_id=context.patient,
            fhir_user=fhir_user,
            now=now,
        )
    from plugin.audit.app_events import audit

    audit(launch, "launch.read-record", detail={"ehr": entry.name, "scope": launch.scope[:500]})
    log.info(
        "launch completed", extra={"event": "launch.complete", "ehr": entry.name, "launch_id": launch.id}
    )
    return handle


def _tokens_payload(tokens: TokenSet) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "id_token": tokens.id_token,
        "expires_at": tokens.expires_at.isoformat(),
        "scope": tokens.scope,
    }


def launch_for_handle(handle: str, now: datetime | None = None) -> Launch:
    """Return the live launch for an opaque handle, or raise ``LaunchExpired``."""
    now = now or utcnow()
    with get_db().session() as session:
        launch = session.query(Launch).filter_by(handle_hash=sha256_hex(handle)).one_or_none()
    if launch is None or launch.expires_at < now or launch.relaunch_required:
        raise LaunchExpired()
    return launch


def launch_context(launch: Launch) -> LaunchContext:
    """Rebuild the SMART launch context of a stored launch (for views)."""
    extra = json.loads(launch.context_json or "{}")
    return LaunchContext(
        iss=launch.iss,
        patient=launch.patient_id,
        encounter=launch.encounter_id,
        fhir_user=launch.fhir_user,
        need_patient_banner=launch.need_patient_banner,
        smart_style_url=launch.smart_style_url,
        granted_scopes=frozenset(launch.scope.split()),
        fhir_context=tuple(extra.get("fhirContext") or ()),
        intent=extra.get("intent"),
        tenant=extra.get("tenant"),
    )


@dataclass
class _TokenState:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    version: int


def _read_tokens(launch_id: str) -> tuple[Launch, _TokenState]:
    with get_db().session() as session:
        launch = session.get(Launch, launch_id)
    if launch is None or launch.relaunch_required:
        raise LaunchExpired()
    data = _cipher().open(launch.tokens_enc)
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
            claimed = session.execute(
                update(Launch)
                .where(
                    Launch.id == launch_id,
                    Launch.tokens_version == seen_version,
                    or_(Launch.refresh_lease_until.is_(None), Launch.refresh_lease_until < now),
                )
                .values(refresh_lease_owner=_OWNER, refresh_lease_until=now + _REFRESH_LEASE)
            ).rowcount
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
    payload = _tokens_payload(fresh)
    # Some servers answer a refresh without a new refresh token: keep using the old one (inferno PR #39).
    payload["refresh_token"] = fresh.refresh_token or tokens.refresh_token
    with get_db().session() as session:
        session.execute(
            update(Launch)
            .where(Launch.id == launch_id, Launch.refresh_lease_owner == _OWNER)
            .values(
                tokens_enc=_cipher().seal(payload),
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
    """Return the FHIR client of a launch's EHR; it always sends the launch's current token."""
    with _clients_lock:
        client = _clients.get(launch_id)
        if client is not None:
            _clients.move_to_end(launch_id)
            return client
    client = _new_client(launch_id)
    with _clients_lock:
        _clients[launch_id] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)[1].close()
    return client


def _new_client(launch_id: str) -> FhirClient:
    """Build a FHIR client whose token comes from (and is refreshed in) the launch row."""
    launch, _ = _read_tokens(launch_id)
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
        launch.iss,
        token_provider,
        on_unauthorized=on_unauthorized,
        timeout=(3.05, float(app.config["HTTP_TIMEOUT_SECONDS"])),
        # The chart is one round of about a dozen searches (plus the remaining pages of large ones):
        # enough workers that none of them waits for another to finish.
        max_workers=_FHIR_WORKERS,
    )
