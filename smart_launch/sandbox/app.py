"""The sandbox EHR's Flask application factory."""

from __future__ import annotations

import functools

from flask import Flask, request
from flask.typing import ResponseReturnValue
from joserfc.jwk import RSAKey
from werkzeug.exceptions import HTTPException

from . import faults, fhir_api, launch, oauth_server, oauth_views, well_known
from .auth import AuthState
from .clients import load_clients
from .config import TENANTS, SandboxConfig
from .context import SandboxContext
from .faults import FaultState
from .outcome import FhirError, error_response
from .seed import seed_patients, seed_users
from .store import FhirStore


@functools.cache
def _signing_key() -> RSAKey:
    """The process's RSA key for id_tokens (kid = thumbprint); made once, as key generation is slow."""
    return RSAKey.generate_key(2048, auto_kid=True)


def create_sandbox_app(config: SandboxConfig) -> Flask:
    """Create the sandbox EHR: FHIR store per tenant, authorization server, launch page, seeded patients."""
    app = Flask(__name__)
    store = FhirStore(TENANTS, config.clock)
    fault_state = FaultState(
        latency_ms=config.latency_ms,
        fail_next_requests=config.fail_next_requests,
        offline_tenants=set(config.offline_tenants),
    )
    context = SandboxContext(
        config=config,
        store=store,
        auth=AuthState(config.clock),
        clients=load_clients(config),
        signing_key=_signing_key(),
        faults=fault_state,
    )
    app.extensions["sandbox"] = context
    now = config.clock()
    seed_users(store, now)
    if config.seed:
        context.summaries.update(seed_patients(store, config.seed_dir, now))
    for blueprint in (fhir_api.bp, well_known.bp, oauth_views.bp, launch.bp, faults.bp):
        app.register_blueprint(blueprint)
    oauth_server.create_authorization_server(app)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_found(error: HTTPException) -> ResponseReturnValue:
        """Unrouted FHIR URLs answer with an OperationOutcome; other pages keep Flask's default."""
        if "/fhir" in request.path:
            code = "not-found" if error.code == 404 else "not-supported"
            return error_response(FhirError(error.code or 404, code, error.description or "Not found"))
        return error

    return app
