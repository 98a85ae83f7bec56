"""Launch services: start an authorization, finish it at the callback, and find a launch by its handle.

Everything is keyed by ``state`` (pending) and then by an opaque launch handle (completed), and kept in
the app's database, never in a cookie: EHR iframes often block third-party cookies (standards.md §5.1),
and two tabs with two patients must never share state (§5.2).
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import update

from plugin.db import get_db, rows_changed, utcnow
from plugin.launches.base import LaunchError, LaunchExpired, cipher, registered_ehr
from plugin.launches.crypto import sha256_hex
from plugin.launches.models import Launch, PendingLaunch
from plugin.launches.retention import purge_launch_state
from plugin.launches.roles import role_from_ehr
from plugin.launches.smart import client_registration, discovery_for, requested_scope
from plugin.launches.tokens import tokens_payload
from plugin.registry import EhrEntry
from plugin.writeback.outbox import adopt_after_launch
from smart_launch.context import LaunchContext, launch_context_from
from smart_launch.fhir_client import FhirClient
from smart_launch.id_token import fhir_user_reference, validate_id_token
from smart_launch.oauth import PendingAuthorization, begin_authorization, exchange_code

__all__ = [
    "LaunchError",
    "LaunchExpired",
    "finish_launch",
    "launch_context",
    "launch_for_handle",
    "start_launch",
]

log = logging.getLogger(__name__)


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
                secrets_enc=cipher().seal(
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
        claimed = rows_changed(
            session.execute(
                update(PendingLaunch)
                .where(PendingLaunch.state_hash == state_hash, PendingLaunch.consumed_at.is_(None))
                .values(consumed_at=now)
            )
        )
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
    secrets_ = cipher().open(pending.secrets_enc)
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
        role=_role(entry, tokens.access_token, fhir_user),
        need_patient_banner=context.need_patient_banner,
        smart_style_url=context.smart_style_url,
        scope=" ".join(sorted(context.granted_scopes)),
        context_json=json.dumps(
            {"fhirContext": list(context.fhir_context), "intent": context.intent, "tenant": context.tenant}
        ),
        tokens_enc=cipher().seal(tokens_payload(tokens)),
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
        # Previewed charts (PHI) of expired launches go now, not only at the next preview; so do used
        # or expired pending authorizations and the tokens of ended launches the outbox no longer needs
        # (after the adoption above, which may have freed some).
        purged = purge_launch_state(session, now)
    from plugin.audit.app_events import audit

    audit(launch, "launch.read-record", detail={"ehr": entry.name, "scope": launch.scope[:500]})
    log.info(
        "launch completed", extra={"event": "launch.complete", "ehr": entry.name, "launch_id": launch.id}
    )
    if purged.pending_deleted or purged.launches_purged:
        log.info(
            "launch state purged",
            extra={
                "event": "launch.purge",
                "pending_deleted": purged.pending_deleted,
                "launches_purged": purged.launches_purged,
            },
        )
    return handle


def _role(entry: EhrEntry, access_token: str, fhir_user: str | None) -> str:
    """Return the user's role: the registry's mapping, else pharmacist when the EHR says so, else clinician."""
    mapped = entry.roles.get(fhir_user or "")
    if mapped is not None:
        return mapped
    if not entry.roles_from_ehr or not fhir_user:
        return "clinician"
    timeout = (3.05, min(5.0, float(current_app.config["HTTP_TIMEOUT_SECONDS"])))
    client = FhirClient(entry.iss, lambda: access_token, timeout=timeout, max_retries=0)
    try:
        return role_from_ehr(client, fhir_user, entry.iss) or "clinician"
    finally:
        client.close()


def launch_for_handle(handle: str, now: datetime | None = None) -> Launch:
    """Return the live launch for an opaque handle, or raise ``LaunchExpired``."""
    now = now or utcnow()
    with get_db().session() as session:
        launch = session.query(Launch).filter_by(handle_hash=sha256_hex(handle)).one_or_none()
    # A purged launch (retention) has relaunch_required set and no tokens: it ends here like any other.
    if launch is None or launch.expires_at < now or launch.relaunch_required or not launch.tokens_enc:
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
