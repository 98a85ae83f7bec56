"""The sandbox's authorization and token endpoints (``{root}/{tenant}/auth/...``) and the standalone
launch picker; the authorization server itself is in ``oauth_server``."""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from .auth import LaunchContext
from .context import known_tenant, sandbox
from .launch import patient_rows
from .users import USERS

bp = Blueprint("sandbox_oauth", __name__)
#: The picker's own form fields (everything else on the form replays the OAuth request).
_PICKER_FIELDS = ("user", "patient")


def _needs_patient(scope: str | None) -> bool:
    """A standalone launch asking for launch/patient or patient/ scopes needs a patient picked."""
    scopes = (scope or "").split()
    return "launch/patient" in scopes or any(s.startswith("patient/") for s in scopes)


def _picked_context(tenant: str, grant: Any) -> LaunchContext | None:
    """The launch context of this request: from the launch id, the picker's answer, or None (ask)."""
    data = grant.request.payload.data
    if data.get("launch"):
        context: LaunchContext = sandbox().auth.launches[data["launch"]]
        return context
    user_id = request.form.get("user")
    if request.method != "POST" or user_id not in USERS:
        return None
    patient_id = request.form.get("patient") or None
    if patient_id and sandbox().store.tenant(tenant).read("Patient", patient_id) is None:
        return None
    if patient_id is None and _needs_patient(data.get("scope")):
        return None
    return LaunchContext(tenant=tenant, user_id=str(user_id), patient_id=patient_id)


@bp.route("/<tenant>/auth/authorize", methods=["GET", "POST"])
def authorize(tenant: str) -> ResponseReturnValue:
    """The authorization endpoint (GET or POST, as SMART requires)."""
    if not known_tenant(tenant):
        abort(404)
    server: AuthorizationServer = current_app.extensions["sandbox_oauth"]
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)  # type: ignore[no-any-return]
    context = _picked_context(tenant, grant)
    if context is None:
        oauth_params = {k: v for k, v in request.values.items() if k not in _PICKER_FIELDS}
        needs_patient = _needs_patient(request.values.get("scope"))
        return render_template(
            "picker.html",
            tenant=tenant,
            params=oauth_params,
            users=USERS.values(),
            patients=patient_rows(tenant) if needs_patient else [],
        )
    return server.create_authorization_response(grant_user=context, grant=grant)  # type: ignore[no-any-return]


@bp.route("/<tenant>/auth/token", methods=["POST"])
def token(tenant: str) -> ResponseReturnValue:
    """The token endpoint."""
    if not known_tenant(tenant):
        abort(404)
    server: AuthorizationServer = current_app.extensions["sandbox_oauth"]
    return server.create_token_response()  # type: ignore[no-any-return]
