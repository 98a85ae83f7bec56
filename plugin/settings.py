"""Settings from ``ITB_*`` environment variables (Flask ``from_prefixed_env``), with safe defaults.

Every setting is documented in ``config/itb.env.example``. Secrets are read from the environment or from
files named by ``*_FILE`` settings, never from the repository.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

REPO_CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"

DEFAULTS: dict[str, Any] = {
    "ENV_NAME": "development",  # "production" turns off every development convenience
    "DATABASE_URL": None,  # default: SQLite file in the instance folder
    "EHR_REGISTRY": None,  # path to a TOML allow-list of EHRs (see docs/ehr-registration.md)
    "AUTO_MIGRATE": None,  # default: on outside production
    "LAUNCH_TTL_SECONDS": 600,  # how long an authorize round trip may take
    "SESSION_TTL_SECONDS": 8 * 3600,  # how long a launch stays usable after the callback
    "HTTP_TIMEOUT_SECONDS": 20.0,
    "DISCOVERY_TTL_SECONDS": 3600,
    "KEYS_FILE": None,  # private JWKS for private_key_jwt; default instance/keys.json
    "SIGNING_ALG": "ES384",
    "LOG_LEVEL": "INFO",
    "PUBLIC_URL": None,  # e.g. https://itb.example.org; default: from the request
    "NOTE_TYPE_LOINC": "11506-3",
    # The app sets no cookie (ADR 0001). Should Flask ever set its session cookie, it must work inside an
    # EHR iframe without being a third-party tracking cookie: SameSite=None; Secure; HttpOnly; Partitioned.
    "SESSION_COOKIE_SAMESITE": "None",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_PARTITIONED": True,
    # `itb serve` (gunicorn, gthread workers): see docs/deployment.md
    "BIND": "127.0.0.1:8000",
    "WORKERS": 2,
    "THREADS": 4,
    "WORKER_TIMEOUT_SECONDS": 60,
    "OUTBOX_RUNNER": False,  # true: an outbox runner thread in every worker (rows are leased)
    "OUTBOX_INTERVAL_SECONDS": 15.0,
    # Reverse proxy hops to trust per header (werkzeug ProxyFix); 0 = ignore that header
    "PROXY_FIX_X_FOR": 0,
    "PROXY_FIX_X_PROTO": 0,
    "PROXY_FIX_X_HOST": 0,
    "PROXY_FIX_X_PORT": 0,
    "PROXY_FIX_X_PREFIX": 0,
}


def configure(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Load defaults, then ``ITB_*`` variables, then ``test_config``; fill in derived settings."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.from_prefixed_env("ITB")
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["IS_PRODUCTION"] = str(app.config["ENV_NAME"]).lower() == "production"
    _configure_secret_key(app)
    _check_public_url(app)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'itb.sqlite'}"
    if app.config.get("AUTO_MIGRATE") is None:
        app.config["AUTO_MIGRATE"] = not app.config["IS_PRODUCTION"]
    if not app.config.get("KEYS_FILE"):
        app.config["KEYS_FILE"] = str(Path(app.instance_path) / "keys.json")


def _check_public_url(app: Flask) -> None:
    """Require ITB_PUBLIC_URL in production; when set it must be an absolute URL without query or fragment."""
    public = app.config.get("PUBLIC_URL")
    if not public:
        if app.config["IS_PRODUCTION"]:
            # Without it, the redirect URI and the audience a CDS client's JWT must name come from the
            # request's Host header, which the caller chooses: a token minted for another service
            # would be accepted by sending its host name.
            raise RuntimeError("ITB_PUBLIC_URL must be set in production (e.g. https://itb.hospital.org)")
        return
    parts = urlsplit(str(public))
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise RuntimeError("ITB_PUBLIC_URL must be an absolute URL such as https://itb.hospital.org")


def _configure_secret_key(app: Flask) -> None:
    """Use ITB_SECRET_KEY (or ITB_SECRET_KEY_FILE); outside production generate one into the instance folder."""
    key_file = app.config.get("SECRET_KEY_FILE")
    if key_file:
        app.config["SECRET_KEY"] = Path(key_file).read_text(encoding="utf-8").strip()
    if app.config.get("SECRET_KEY"):
        return
    if app.config["IS_PRODUCTION"]:
        raise RuntimeError("ITB_SECRET_KEY (or ITB_SECRET_KEY_FILE) must be set in production")
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        # Every worker must share one key, so it lives in the instance folder, not in memory.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
    app.config["SECRET_KEY"] = path.read_text(encoding="utf-8").strip()
