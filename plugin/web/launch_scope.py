"""Blueprints scoped to one launch: every URL starts with ``/l/<handle>``, the launch's opaque handle.

The handle in the path *is* the launch (ADR 0001), so two tabs with two patients never share state,
and no cookie is needed inside an EHR iframe.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from plugin.launches.base import LaunchExpired
from plugin.launches.models import Launch
from plugin.launches.service import launch_for_handle
from plugin.web.launch import error_page
from smart_launch.fhir_client import FhirAuthError, FhirError

log = logging.getLogger(__name__)


def current_launch() -> Launch:
    """Return the launch of the current request (raises LaunchExpired)."""
    launch = getattr(g, "launch", None)
    if launch is None:
        launch = g.launch = launch_for_handle(g.handle)
    return launch


def _wants_json() -> bool:
    return "/api/" in request.path


def _pop_handle(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.handle = (values or {}).pop("handle", "")


def _keep_handle(_endpoint: str, values: dict[str, Any]) -> None:
    if "handle" not in values and getattr(g, "handle", None):
        values["handle"] = g.handle


def _expired(error: LaunchExpired) -> ResponseReturnValue:
    if _wants_json():
        return jsonify(error=error.safe_message), 401
    return error_page(error.safe_message, 401)


RELAUNCH = (
    "Your session with the EHR has ended (it no longer accepts this launch's access, and a refresh did "
    "not help). Open ITB Dose Check again from the patient's chart in the EHR."
)
NOT_ALLOWED = (
    "The EHR did not allow ITB Dose Check to read what it needs for this patient ({reason}). Ask your "
    "EHR administrator to grant the app's read permissions, then relaunch from the chart."
)


def _ehr_error(error: FhirError) -> ResponseReturnValue:
    log.warning("EHR request failed", extra={"event": "ehr.request_failed", "status": error.status})
    if isinstance(error, FhirAuthError):
        # 401 after the client refreshed once and retried once: only a new launch brings a new grant.
        # 403: a scope the EHR did not grant; a relaunch helps only once the registration changes.
        status = 401 if error.status == 401 else 403
        message = RELAUNCH if status == 401 else NOT_ALLOWED.format(reason=error.safe_message)
    else:
        status, message = 502, f"The EHR did not answer as expected: {error.safe_message}"
    if _wants_json():
        return jsonify(error=message), status
    return error_page(message, status)


def launch_blueprint(name: str, import_name: str) -> Blueprint:
    """Return a blueprint under ``/l/<handle>`` that resolves the handle and handles launch errors."""
    bp = Blueprint(name, import_name, url_prefix="/l/<handle>")
    bp.url_value_preprocessor(_pop_handle)
    bp.url_defaults(_keep_handle)
    bp.register_error_handler(LaunchExpired, _expired)
    bp.register_error_handler(FhirError, _ehr_error)
    return bp
