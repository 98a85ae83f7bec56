"""The Flask application factory: a short list of ``configure_*`` steps."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from plugin import settings
from plugin.db import Database
from plugin.launches.crypto import TokenCipher
from plugin.logging_setup import configure_logging
from plugin.registry import load_registry

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Create the ITB Dose Check app (web views, CDS Hooks, JSON API) from ``ITB_*`` settings."""
    import os

    instance = instance_path or os.environ.get("ITB_INSTANCE_PATH") or None
    app = Flask(
        __name__,
        # Flask refuses a relative instance path; ITB_INSTANCE_PATH=instance is relative to the cwd.
        instance_path=os.path.abspath(instance) if instance else None,
        instance_relative_config=True,
        template_folder="web/templates",
        static_folder="web/static",
    )
    settings.configure(app, test_config)
    configure_logging(str(app.config["LOG_LEVEL"]))
    configure_database(app)
    configure_security(app)
    configure_views(app)
    configure_writeback(app)
    configure_cds(app)
    configure_proxy(app)
    return app


def configure_proxy(app: Flask) -> None:
    """Trust ``X-Forwarded-*`` from the given number of proxies (ITB_PROXY_FIX_*; all 0 = trust none)."""
    names = ("for", "proto", "host", "port", "prefix")
    hops = {name: int(app.config[f"PROXY_FIX_X_{name.upper()}"]) for name in names}
    if any(hops.values()):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=hops["for"],
            x_proto=hops["proto"],
            x_host=hops["host"],
            x_port=hops["port"],
            x_prefix=hops["prefix"],
        )


def configure_database(app: Flask) -> None:
    """Open the database and, outside production, bring its schema up to date."""
    db = Database(str(app.config["DATABASE_URL"]))
    app.extensions["itb.db"] = db
    if app.config["AUTO_MIGRATE"]:
        from plugin.migrations_runner import upgrade

        upgrade(db.url)


def configure_security(app: Flask) -> None:
    """Load the EHR allow-list, the token cipher and the signing keys."""
    from plugin.keys_store import load_or_create_keys

    app.extensions["itb.registry"] = load_registry(app.config.get("EHR_REGISTRY"))
    app.extensions["itb.cipher"] = TokenCipher(str(app.config["SECRET_KEY"]))
    app.extensions["itb.keys"] = load_or_create_keys(app)


def configure_views(app: Flask) -> None:
    """Register blueprints and response headers."""
    from plugin.web import (
        auditor,
        clinician,
        headers,
        health,
        input_guard,
        launch,
        notes,
        numbers,
        pharmacist,
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(launch.bp)
    app.register_blueprint(clinician.bp)
    app.register_blueprint(notes.bp)
    app.register_blueprint(pharmacist.bp)
    app.register_blueprint(auditor.bp)
    headers.init_app(app)
    input_guard.init_app(app)
    numbers.init_app(app)


def configure_writeback(app: Flask) -> None:
    """Tell the outbox how to reach the EHR for a queued row: through that row's launch."""
    from plugin.launches.tokens import fhir_client_for_launch
    from plugin.writeback.models import OutboxItem

    def client_for_item(item: OutboxItem) -> object:
        with app.app_context():
            return fhir_client_for_launch(item.launch_id)

    app.extensions["itb.client_factory"] = client_for_item


def configure_cds(app: Flask) -> None:
    """Serve the CDS Hooks service (discovery, order-sign/order-select, feedback)."""
    from plugin import cds

    cds.init_app(app)
