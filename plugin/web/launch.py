"""SMART launch endpoints: ``/launch`` (EHR and standalone), ``/callback``, and the app's JWKS."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from plugin.launches.service import LaunchError, finish_launch, start_launch
from smart_launch.errors import DiscoveryError, IdTokenError, TokenError

bp = Blueprint("launch", __name__)
log = logging.getLogger(__name__)


def redirect_uri() -> str:
    """Return the registered redirect URI: from ITB_PUBLIC_URL when set (behind a proxy), else the request."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return f"{str(public).rstrip('/')}/callback"
    return url_for("launch.callback", _external=True)


def error_page(message: str, status: int) -> ResponseReturnValue:
    """Render a one-line reason for a person, with the right status and no traceback."""
    return render_template("error.html", message=message), status


@bp.get("/launch")
def launch() -> ResponseReturnValue:
    """Start an EHR launch (``iss`` + ``launch``) or a standalone launch (``iss`` only)."""
    try:
        url = start_launch(request.args.get("iss"), request.args.get("launch"), redirect_uri())
    except LaunchError as error:
        return error_page(error.safe_message, error.status)
    except DiscoveryError as error:
        log.warning("SMART discovery failed", extra={"event": "launch.discovery_failed"})
        return error_page(f"The EHR's SMART configuration is not usable: {error.safe_message}", 502)
    return redirect(url, code=302)


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    """Finish the authorization: exchange the code, store the launch, and open its page."""
    try:
        handle = finish_launch(
            request.args.get("state"),
            request.args.get("code"),
            request.args.get("error_description") or request.args.get("error"),
        )
    except LaunchError as error:
        return error_page(error.safe_message, error.status)
    except (TokenError, IdTokenError) as error:
        log.warning("token exchange failed", extra={"event": "launch.token_failed"})
        return error_page(f"The EHR did not complete the sign-in: {error.safe_message}", 502)
    # A 303 to the launch's own page: from here on, the handle in the path is the launch.
    return redirect(url_for("clinician.home", handle=handle), code=303)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """Publish the app's public signing keys for private_key_jwt client authentication."""
    response = jsonify(current_app.extensions["itb.keys"].public_jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
