"""Liveness (``/healthz``) and readiness (``/readyz``: the database answers)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from plugin.db import get_db

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Answer that the process is alive."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Answer 200 when the database is reachable, else 503."""
    try:
        with get_db().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.warning("readiness check failed: database unreachable", extra={"event": "readyz.fail"})
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
