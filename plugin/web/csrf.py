"""CSRF protection for every form, without cookies: a token bound to the launch and signed by the app.

The app keeps no cookie session (ADR 0001), so the classic "token in session + token in form" pattern
is replaced by an HMAC of the launch id: only a page the app rendered for this launch carries it.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import abort, current_app, request


def csrf_token(launch_id: str) -> str:
    """Return the form token for a launch."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    return hmac.new(key, f"csrf:{launch_id}".encode(), hashlib.sha256).hexdigest()


def require_csrf(launch_id: str) -> None:
    """Abort with 400 unless the request's form (or X-CSRF-Token header) carries the launch's token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not hmac.compare_digest(sent, csrf_token(launch_id)):
        abort(400, description="This form has expired or did not come from ITB Dose Check. Reload the page.")
