"""``itb serve`` and ProxyFix: gunicorn settings, the schema check, a real gunicorn start, proxy headers."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import requests
from flask import Flask, url_for

from plugin.app import create_app
from plugin.serve import ScrubbingGunicornLogger, gunicorn_options, post_worker_init, schema_problem
from plugin.web.launch import redirect_uri
from smart_launch.keys import KeySet
from tests.production.servers import clean_env, run_itb, start_serve


def probe_app(tmp_path: Path, **settings: object) -> Flask:
    """Return an app with a route that shows the redirect URI and an external URL it would build."""
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "k", **settings}, instance_path=str(tmp_path / "instance")
    )

    @app.get("/_probe")
    def probe() -> dict[str, str]:
        return {"redirect_uri": redirect_uri(), "jwks": url_for("launch.jwks", _external=True)}

    return app


FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "itb.hospital.org",
    "X-Forwarded-Prefix": "/itb",
    "X-Forwarded-For": "203.0.113.9",
}


def test_behind_a_tls_proxy_the_redirect_uri_uses_the_forwarded_scheme_host_and_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("X_FOR", "X_PROTO", "X_HOST", "X_PREFIX"):
        monkeypatch.setenv(f"ITB_PROXY_FIX_{name}", "1")  # as a site sets them (JSON-parsed to 1)
    app = probe_app(tmp_path)
    try:
        seen = app.test_client().get("/_probe", headers=FORWARDED).get_json()
    finally:
        app.extensions["itb.db"].dispose()
    assert seen == {
        "redirect_uri": "https://itb.hospital.org/itb/callback",
        "jwks": "https://itb.hospital.org/itb/.well-known/jwks.json",
    }


def test_without_proxy_fix_forwarded_headers_are_ignored(tmp_path: Path) -> None:
    app = probe_app(tmp_path)
    try:
        seen = app.test_client().get("/_probe", headers=FORWARDED).get_json()
    finally:
        app.extensions["itb.db"].dispose()
    assert seen["redirect_uri"] == "http://localhost/callback"


def test_proxy_fix_trusts_only_the_configured_number_of_hops(tmp_path: Path) -> None:
    app = probe_app(tmp_path, PROXY_FIX_X_PROTO=1, PROXY_FIX_X_HOST=1)
    try:
        # A client forged the first values; the one proxy we trust appended the real ones.
        seen = (
            app.test_client()
            .get(
                "/_probe",
                headers={
                    "X-Forwarded-Proto": "http, https",
                    "X-Forwarded-Host": "evil.example, itb.hospital.org",
                },
            )
            .get_json()
        )
    finally:
        app.extensions["itb.db"].dispose()
    assert seen["redirect_uri"] == "https://itb.hospital.org/callback"


def test_gunicorn_options_come_from_settings_and_never_trust_forwarded_headers_implicitly() -> None:
    config = {"BIND": "0.0.0.0:9000", "WORKERS": 3, "THREADS": 8, "WORKER_TIMEOUT_SECONDS": 45}
    options = gunicorn_options(config)
    assert options["bind"] == ["0.0.0.0:9000"]
    assert (options["workers"], options["threads"], options["worker_class"]) == (3, 8, "gthread")
    assert (options["accesslog"], options["timeout"], options["preload_app"]) == ("-", 45, False)
    assert options["secure_scheme_headers"] == {} and options["forwarder_headers"] == ""
    assert options["logger_class"] is ScrubbingGunicornLogger
    overridden = gunicorn_options(config, bind="127.0.0.1:1", workers=1, threads=None)
    assert (overridden["bind"], overridden["workers"], overridden["threads"]) == (["127.0.0.1:1"], 1, 8)


def test_each_worker_freezes_its_loaded_app_out_of_the_garbage_collector() -> None:
    class Worker:
        wsgi = Flask("frozen")

    gc.unfreeze()
    try:
        post_worker_init(Worker())
        assert gc.get_freeze_count() > 0, "the app's startup heap is left to every gen-2 collection"
    finally:
        gc.unfreeze()


@pytest.fixture
def production_env(tmp_path: Path) -> dict[str, str]:
    """Return a production environment on an empty SQLite database, with keys and a secret."""
    keys = tmp_path / "keys.json"
    KeySet.generate("ES384").save(keys)
    return clean_env(
        ENV_NAME="production",
        SECRET_KEY="s",
        KEYS_FILE=keys,
        INSTANCE_PATH=tmp_path / "instance",
        DATABASE_URL=f"sqlite:///{tmp_path / 'itb.sqlite'}",
        PUBLIC_URL="https://itb.hospital.example",
    )


def test_serve_refuses_in_one_line_when_the_schema_is_not_current(production_env: dict[str, str]) -> None:
    result = run_itb(production_env, "serve", "--bind", "127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "itb serve: the database schema is not current: run `itb db upgrade` first"
    )
    assert "Traceback" not in result.stderr
    assert run_itb(production_env, "db", "upgrade").returncode == 0
    assert schema_problem(production_env["ITB_DATABASE_URL"]) is None


def test_an_unreachable_database_is_reported_in_one_line() -> None:
    problem = schema_problem("postgresql+psycopg://nobody:x@127.0.0.1:1/none?connect_timeout=2")
    assert problem is not None and problem.startswith("cannot read the database schema (OperationalError)")


def test_serve_refuses_in_one_line_without_signing_keys_in_production(
    production_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**production_env, "ITB_KEYS_FILE": str(tmp_path / "missing.json")}
    result = run_itb(env, "serve")
    assert result.returncode == 1
    assert "itb serve: cannot start: signing keys not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_serves_the_app_with_a_scrubbed_access_log_and_an_outbox_runner_per_worker(
    tmp_path: Path,
) -> None:
    env = clean_env(
        SECRET_KEY="s",
        INSTANCE_PATH=tmp_path / "instance",
        WORKERS=2,
        THREADS=2,
        OUTBOX_RUNNER=1,
        OUTBOX_INTERVAL_SECONDS=60,
    )
    server = start_serve(env, tmp_path / "logs")
    try:
        assert requests.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
        handle = "Zq3" * 12
        assert requests.get(f"{server.url}/l/{handle}/", timeout=10).status_code == 401
        requests.get(
            f"{server.url}/callback", params={"code": "SECRETCODE", "state": "SECRETSTATE"}, timeout=10
        )
    finally:
        server.stop()
    assert server.process.returncode == 0
    access = server.stdout_path.read_text()
    assert "GET /healthz HTTP/1.1" in access and "GET /l/[handle]/ HTTP/1.1" in access
    assert "code=[redacted]" in access
    for secret in (handle, "SECRETCODE", "SECRETSTATE"):
        assert secret not in server.logs()
    app_log = [
        json.loads(line) for line in server.stderr_path.read_text().splitlines() if line.startswith("{")
    ]
    assert len([r for r in app_log if r.get("event") == "outbox.runner_started"]) == 2


def test_serve_refuses_in_one_line_without_a_public_url_in_production(production_env: dict[str, str]) -> None:
    # The CDS service checks each JWT's aud against this URL; from the Host header, a caller could pick it.
    env = {k: v for k, v in production_env.items() if k != "ITB_PUBLIC_URL"}
    result = run_itb(env, "serve", "--bind", "127.0.0.1:1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "ITB_PUBLIC_URL must be set in production" in result.stderr.strip().splitlines()[-1]
