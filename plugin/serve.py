"""``itb serve``: the app under gunicorn (gthread workers), after checking the database schema is current.

Each worker builds its own app with ``create_app()`` after the fork (no preloading), so database pools
and HTTP sessions are never shared between processes, and ``SIGHUP`` (``systemctl reload``) restarts the
workers gracefully with freshly read settings and signing keys. Workers keep no state of their own: launches,
refresh leases and the outbox live in the database, so any number of ``itb serve`` processes on any number
of hosts can share one PostgreSQL behind a load balancer (docs/deployment.md).

With ``ITB_OUTBOX_RUNNER=1`` every worker also runs an ``OutboxRunner`` thread; rows are leased in the
database, so several runners never file one note twice.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

import click
from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from plugin.logging_setup import ScrubbingFilter

log = logging.getLogger(__name__)

#: Common log format plus the request duration in milliseconds.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


class ScrubbingGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """Gunicorn's logger with the app's scrubber on every handler: the access log never shows a launch
    handle, an authorization code or a state, which travel in URLs."""

    def setup(self, cfg: Any) -> None:
        """Set up gunicorn's handlers, then scrub what they write."""
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
                    handler.addFilter(ScrubbingFilter())


def schema_problem(database_url: str) -> str | None:
    """Return a one-line reason the schema is not ready for serving, or None when it is current."""
    from sqlalchemy.exc import SQLAlchemyError

    from plugin.migrations_runner import is_current

    try:
        current = is_current(database_url)
    except SQLAlchemyError as error:
        return f"cannot read the database schema ({type(error).__name__}); is the database reachable?"
    if not current:
        return "the database schema is not current: run `itb db upgrade` first"
    return None


def gunicorn_options(config: Any, **overrides: Any) -> dict[str, Any]:
    """Return gunicorn settings from the app config (``ITB_BIND``, ``ITB_WORKERS``, ``ITB_THREADS``, ...)."""
    options: dict[str, Any] = {
        "bind": [str(config["BIND"])],
        "workers": int(config["WORKERS"]),
        "threads": int(config["THREADS"]),
        "worker_class": "gthread",
        "timeout": int(config["WORKER_TIMEOUT_SECONDS"]),
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": ScrubbingGunicornLogger,
        "proc_name": "itb",
        # Forwarded headers are trusted only through ProxyFix (ITB_PROXY_FIX_*), never implicitly: gunicorn
        # would otherwise believe X-Forwarded-Proto from any loopback peer.
        "secure_scheme_headers": {},
        "forwarder_headers": "",
        "preload_app": False,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }
    for key, value in overrides.items():
        if value is not None:
            options[key] = [value] if key == "bind" else value
    return options


def post_worker_init(worker: Any) -> None:
    """Freeze the loaded app's objects out of the garbage collector; start the outbox runner if asked."""
    # The app's startup heap (Flask, SQLAlchemy, the fhir.resources models: ~130,000 objects) lives as
    # long as the worker. Without the freeze every gen-2 collection, which a CDS call's allocations set
    # off now and then, walks all of it: ~2 ms per call under load (ADR 0002).
    gc.collect()
    gc.freeze()
    app = worker.wsgi
    if isinstance(app, Flask) and app.config.get("OUTBOX_RUNNER"):
        start_outbox_runner(app)


def worker_exit(_server: Any, worker: Any) -> None:
    """Stop this worker's outbox runner (its current round finishes; leases expire otherwise)."""
    app = getattr(worker, "wsgi", None)
    runner = app.extensions.get("itb.outbox_runner") if isinstance(app, Flask) else None
    if runner is not None:
        runner.stop(timeout=10)


def start_outbox_runner(app: Flask) -> Any:
    """Start an ``OutboxRunner`` thread for ``app`` and keep it in ``app.extensions``."""
    from plugin.writeback.runner import OutboxRunner

    runner = OutboxRunner(
        app.extensions["itb.db"],
        app.extensions["itb.client_factory"],
        interval_seconds=float(app.config["OUTBOX_INTERVAL_SECONDS"]),
    )
    runner.start()
    app.extensions["itb.outbox_runner"] = runner
    log.info("outbox runner started", extra={"event": "outbox.runner_started", "owner": runner.owner})
    return runner


class ItbServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn driven from Python: settings from ``options``, one ``create_app()`` per worker."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Copy our options into gunicorn's config."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app in the worker (after the fork)."""
        from plugin.app import create_app

        return create_app()


@click.command("serve")
@click.option("--bind", default=None, help="host:port or unix:/path (default ITB_BIND, 127.0.0.1:8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default ITB_WORKERS).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default ITB_THREADS).")
def serve(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Run the app under gunicorn (access log on stdout) once the database schema is current."""
    from plugin.app import create_app

    try:
        app = create_app()  # validates the settings, keys and registry before any worker starts
    except Exception as error:  # a one-line reason, never a traceback
        click.echo(f"itb serve: cannot start: {error}", err=True)
        sys.exit(1)
    problem = schema_problem(str(app.config["DATABASE_URL"]))
    options = gunicorn_options(app.config, bind=bind, workers=workers, threads=threads)
    app.extensions["itb.db"].dispose()  # the workers open their own pools after the fork
    if problem:
        click.echo(f"itb serve: {problem}", err=True)
        sys.exit(1)
    ItbServer(options).run()
