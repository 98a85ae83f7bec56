"""HTTP endpoints of the CDS Hooks service: discovery, the service, feedback, and CORS for browser clients.

Errors are one-line JSON (``{"error": ..., "error_description": ...}``); a trust failure says only that
the token was not accepted (the reason goes to the log, without the token). Discovery is public (it
reveals only what the service asks for) and open to any origin; the service and feedback need a
verified client JWT and allow only the configured browser origins (standards.md §5 pitfall 10: browser
clients need CORS on the POST too, not just on discovery).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from plugin.cds import EXTENSION, CdsState
from plugin.cds.discovery import SERVICES
from plugin.cds.feedback import parse_feedback, record_feedback
from plugin.cds.service import CdsRequestError, evaluate, parse_request, record_cards
from plugin.cds.trust import Caller, TrustError, unverified_iss

bp = Blueprint("cds", __name__)
log = logging.getLogger(__name__)

_JSON = "application/json"
_ALLOW_HEADERS = "Authorization, Content-Type"
MAX_BODY_BYTES = 5 * 1024 * 1024  # a full prefetch of a long chart fits; anything bigger is refused


def _state() -> CdsState:
    """Return the app's CDS state."""
    state: CdsState = current_app.extensions[EXTENSION]
    return state


def _json_response(body: Any, status: int = 200) -> Response:
    """Return compact UTF-8 JSON (orjson: about 10x faster than ``json.dumps`` on a card list)."""
    return Response(orjson.dumps(body), status, mimetype=_JSON)


def _error(status: int, error: str, description: str) -> Response:
    """Return a one-line JSON error."""
    response = _json_response({"error": error, "error_description": description}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@bp.after_request
def _cors(response: Response) -> Response:
    """Add CORS headers: any origin for discovery, the configured origins for the service and feedback."""
    origin = request.headers.get("Origin")
    if request.path.rstrip("/") == "/cds-services":
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin:
        allowed = _state().cors_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _public_url(path: str) -> str:
    """Return the absolute URL of ``path`` as the client sees it (ITB_PUBLIC_URL when set)."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return str(public).rstrip("/") + path
    return request.host_url.rstrip("/") + request.script_root + path


def _authenticate(*, remember: bool = True) -> Caller:
    """Verify the client's bearer JWT for the URL called; raise TrustError when it is not acceptable."""
    state = _state()
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    audience = _public_url(request.path)
    if token is None and not state.insecure:
        raise TrustError("no bearer token")
    if token is not None:
        try:
            return state.verifier.verify(token, audience, state.clock(), remember=remember)
        except TrustError as error:
            if not state.insecure:
                raise
            log.warning("insecure sandbox: accepting a CDS call whose JWT failed (%s)", error.reason)
    return Caller(iss=f"unverified:{unverified_iss(token) or 'anonymous'}", client=None)


def _raw_body() -> bytes:
    """Return the request body's bytes; raise a 413 when it is over the limit."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise CdsRequestError(413, "request body too large")
    return request.get_data(cache=False)


def _body() -> Any:
    """Return the parsed JSON body; raise a 400 for anything else."""
    data = _raw_body()
    try:
        # orjson parses the ~120 KiB of a full prefetch 2-4x faster than ``json``; it is also stricter
        # (no NaN/Infinity, no lone surrogates, UTF-8 only), which is what RFC 8259 asks of a client.
        return orjson.loads(data)
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError) as error:
        raise CdsRequestError(400, "the request body is not valid JSON") from error


@bp.get("/cds-services")
def discovery() -> Response:
    """List the services (precomputed at startup) to an authenticated CDS client."""
    # CDS Hooks 2.0 "Trusting CDS Clients": every call, discovery included, carries the client's JWT
    # (aud = this URL). The list of services and prefetch templates is no secret, but an open endpoint
    # answers anyone who probes for CDS services; the insecure sandbox mode still answers unsigned calls.
    try:
        _authenticate()
    except TrustError as error:
        log.info("CDS discovery refused: %s", error.reason, extra={"event": "cds.trust_fail"})
        return _error(401, "invalid_token", "the bearer token was not accepted")
    return Response(_state().discovery, 200, mimetype=_JSON)


@bp.post("/cds-services/<service_id>")
def service(service_id: str) -> Response:
    """Run the dose check for a hook call and answer with cards."""
    definition = SERVICES.get(service_id)
    if definition is None:
        return _error(404, "not_found", "no such CDS service")
    state = _state()
    now = state.clock()
    try:
        # The jti is stored with the issued cards (one commit per call), or alone on an error path.
        caller = _authenticate(remember=False)
        try:
            hook_request = parse_request(_raw_body(), definition.accepts)
            evaluation = evaluate(hook_request, caller, state.deps, _public_url(""), now)
        except CdsRequestError as error:
            state.verifier.remember_jti(caller, now)
            log.info(
                "CDS request refused (%s): %s",
                error.status,
                error.reason,
                extra={"event": "cds.request_fail"},
            )
            kind = "precondition_failed" if error.status == 412 else "bad_request"
            return _error(error.status, kind, error.reason)
        record_cards(
            evaluation, hook_request, caller, service_id, state.deps, now,
            lambda connection: state.verifier.remember_jti(caller, now, connection),
        )  # fmt: skip
    except TrustError as error:
        log.info("CDS call refused: %s", error.reason, extra={"event": "cds.trust_fail"})
        return _error(401, "invalid_token", "the bearer token was not accepted")
    return _json_response(evaluation.response)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """Record what the clinician did with our cards."""
    if service_id not in SERVICES:
        return _error(404, "not_found", "no such CDS service")
    state = _state()
    try:
        caller = _authenticate()
    except TrustError as error:
        log.info("CDS feedback refused: %s", error.reason, extra={"event": "cds.trust_fail"})
        return _error(401, "invalid_token", "the bearer token was not accepted")
    try:
        items = parse_feedback(_body())
        # Both ids share one card table: feedback may arrive at either id for a card of either hook.
        record_feedback(
            state.deps.db, state.deps.audit, items, caller.iss, frozenset(SERVICES), state.clock()
        )
    except CdsRequestError as error:
        log.info(
            "CDS feedback refused (%s): %s", error.status, error.reason, extra={"event": "cds.feedback_fail"}
        )
        return _error(error.status, "not_found" if error.status == 404 else "bad_request", error.reason)
    return _json_response({})
