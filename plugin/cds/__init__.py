"""CDS Hooks 2.0 service: discovery, the order-sign/order-select check, feedback, and client trust.

Wire it into the app with ``plugin.cds.init_app(app)`` (registers the blueprints, reads the CDS client
allow-list, the code sets and rules once; migration 0005 creates its tables).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from plugin.cds import config
from plugin.cds.audit_hook import AuditHook
from plugin.cds.chart_cache import ChartCache
from plugin.cds.discovery import discovery_document
from plugin.cds.prefetch import prefetch_templates
from plugin.cds.service import ServiceDeps
from plugin.cds.trust import JtiStore, KeyStore, Verifier

EXTENSION = "itb.cds"


@dataclass
class CdsState:
    """Everything the CDS views need, built once per app."""

    deps: ServiceDeps
    verifier: Verifier
    discovery: bytes
    insecure: bool
    cors_origins: tuple[str, ...]
    clock: Callable[[], datetime]


def init_app(
    app: Flask,
    *,
    audit_sink: Callable[[Mapping[str, Any]], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> CdsState:
    """Build the CDS state and register the blueprints."""
    from plugin.cds import sandbox, views
    from plugin.db import Database
    from plugin.domain.codes import load_code_sets
    from plugin.domain.rules_config import load_rules

    config.configure(app)
    db: Database = app.extensions["itb.db"]
    clients = dict(config.load_clients(app.config["CDS_CLIENTS"]))
    if app.config["CDS_SANDBOX_PAGE"]:
        sandbox_client = sandbox.sandbox_client(app)
        clients[sandbox_client.iss] = sandbox_client
    codes = load_code_sets()
    templates = prefetch_templates(codes)
    deps = ServiceDeps(
        codes=codes,
        rules=load_rules(),
        templates=templates,
        db=db,
        audit=AuditHook(db, audit_sink, audit_cards=config.as_bool(app.config["CDS_AUDIT_CARDS"])),
        is_production=bool(app.config.get("IS_PRODUCTION")),
        fallback_fhir_servers=tuple(s for c in clients.values() for s in c.fhir_servers)
        if app.config["CDS_INSECURE_SANDBOX"]
        else (),
        chart_cache=ChartCache(float(app.config["CDS_CHART_CACHE_SECONDS"])),
    )
    verifier = Verifier(
        clients,
        KeyStore(float(app.config["CDS_JWKS_TTL_SECONDS"])),
        JtiStore(db),
        leeway_seconds=float(app.config["CDS_JWT_LEEWAY_SECONDS"]),
        max_lifetime_seconds=float(app.config["CDS_JWT_MAX_LIFETIME_SECONDS"]),
    )
    state = CdsState(
        deps=deps,
        verifier=verifier,
        discovery=discovery_document(templates),
        insecure=bool(app.config["CDS_INSECURE_SANDBOX"]),
        cors_origins=tuple(app.config["CDS_CORS_ORIGINS"]),
        clock=clock or (lambda: datetime.now(UTC)),
    )
    app.extensions[EXTENSION] = state
    if "cds" not in app.blueprints:
        app.register_blueprint(views.bp)
    if app.config["CDS_SANDBOX_PAGE"] and "cds_sandbox" not in app.blueprints:
        app.register_blueprint(sandbox.bp)
    return state
