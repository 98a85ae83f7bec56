"""Helpers to run real ``itb serve`` processes (gunicorn) and a sandbox EHR for production-shaped tests.

Used by ``tests/production`` and by the load test (``tests/load/loadtest.py``).
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e.live import free_port

SANDBOX_CLIENT_ID = "itb-jwt"  # the sandbox's private_key_jwt client (config/sandbox/clients.toml)
SECRET_CLIENT_ID = "itb-secret"
SECRET_CLIENT_SECRET = "sandbox-secret-change-me"


def itb_executable() -> str:
    """Return the ``itb`` console script of the running interpreter's environment."""
    beside = Path(sys.executable).with_name("itb")
    if beside.exists():
        return str(beside)
    found = shutil.which("itb")
    if not found:
        raise RuntimeError("the itb console script is not installed (pip install -e .)")
    return found


def clean_env(**settings: Any) -> dict[str, str]:
    """Return the current environment without any ITB_* variable, plus ``settings`` as ITB_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITB_")}
    env.update({f"ITB_{k}": str(v) for k, v in settings.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def write_registry(
    path: Path, sandbox_url: str, *, tenant: str = "full", auth: str = "private_key_jwt"
) -> Path:
    """Write a registry TOML file with the sandbox tenant as the one EHR (client secret from a file)."""
    lines = ["[[ehr]]", f'name = "Sandbox {tenant}"', f'iss = "{sandbox_url}/{tenant}/fhir"']
    if auth == "private_key_jwt":
        lines += [f'client_id = "{SANDBOX_CLIENT_ID}"', 'auth = "private_key_jwt"', 'signing_alg = "ES384"']
    else:
        secret_file = path.with_name("client_secret")
        secret_file.write_text(SECRET_CLIENT_SECRET + "\n", encoding="utf-8")
        lines += [
            f'client_id = "{SECRET_CLIENT_ID}"',
            f'auth = "{auth}"',
            f'client_secret_file = "{secret_file.name}"',
        ]
    lines.append(f'frame_ancestors = ["{sandbox_url}"]')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class ServeProcess:
    """One running ``itb serve`` (gunicorn master and its workers)."""

    process: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully (SIGTERM to the master, which stops its workers); kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def logs(self) -> str:
        """Return what the server wrote to stdout (access log) and stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")


def start_serve(
    env: dict[str, str],
    log_dir: Path,
    *,
    port: int | None = None,
    name: str = "itb",
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 60,
) -> ServeProcess:
    """Start ``itb serve --bind 127.0.0.1:PORT`` and wait until ``/healthz`` answers."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:  # the child keeps its copies
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [itb_executable(), "serve", "--bind", f"127.0.0.1:{port}", *extra_args],
            env=env,
            stdout=stdout,
            stderr=stderr,
            cwd=str(log_dir),
        )
    server = ServeProcess(process, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"itb serve exited with {process.returncode}:\n{server.logs()[-3000:]}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"itb serve did not become ready:\n{server.logs()[-3000:]}")


def run_itb(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``itb ARGS`` in a subprocess and return its completed process."""
    return subprocess.run(  # noqa: S603 - our own console script
        [itb_executable(), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def fresh_postgres_database(base_url: str) -> Iterator[str]:
    """Create an empty database beside ``base_url``'s (the role needs CREATEDB), yield its URL, drop it."""
    url = make_url(base_url)
    name = f"itb_prod_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class GrantCounter:
    """A WSGI wrapper around the sandbox that counts token requests per grant type."""

    app: Callable[..., Any]
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Count ``POST .../auth/token`` by ``grant_type``, then pass the request on unchanged."""
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").endswith("/auth/token"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            grant = parse_qs(body.decode("latin-1")).get("grant_type", ["?"])[0]
            with self.lock:
                self.counts[grant] = self.counts.get(grant, 0) + 1
        return self.app(environ, start_response)

    def count(self, grant: str) -> int:
        """Return how many token requests of this grant type the sandbox received."""
        with self.lock:
            return self.counts.get(grant, 0)


@dataclass
class Sandbox:
    """The in-process sandbox EHR on a loopback port, wrapped in a ``GrantCounter``."""

    app: Any
    counter: GrantCounter
    handle: Any
    url: str

    def stored(self, resource_type: str, tenant: str = "full") -> list[dict[str, Any]]:
        """Return what the sandbox holds of a resource type (what really reached the EHR)."""
        return list(self.app.extensions["sandbox"].store.tenant(tenant).all(resource_type))

    def faults(self, **changes: Any) -> None:
        """Change the sandbox's injected faults."""
        self.app.extensions["sandbox"].faults.apply(changes)

    def stop(self) -> None:
        """Stop serving."""
        self.handle.shutdown()


def start_sandbox(app_url: str, **overrides: Any) -> Sandbox:
    """Start the sandbox EHR for the app at ``app_url`` (launch, redirect and JWKS URLs point there)."""
    from smart_launch.sandbox import create_sandbox_app
    from smart_launch.sandbox.config import SandboxConfig
    from smart_launch.sandbox.server import serve_in_thread

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_sandbox_app(SandboxConfig.for_app(app_url, public_url=url, **overrides))
    counter = GrantCounter(app.wsgi_app)
    app.wsgi_app = counter  # type: ignore[method-assign]
    handle = serve_in_thread(app, "127.0.0.1", port)
    return Sandbox(app, counter, handle, url)


HANDLE_IN_URL = re.compile(r"/l/([A-Za-z0-9_\-]+)/")
CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def set_token_lifetime(sandbox: Sandbox, seconds: int) -> None:
    """Make the sandbox issue access tokens of this lifetime from now on."""
    context = sandbox.app.extensions["sandbox"]
    context.config = dataclasses.replace(context.config, token_lifetime_seconds=seconds)


def handle_of(url: str) -> str:
    """Return the launch handle in an app URL (``.../l/<handle>/...``)."""
    match = HANDLE_IN_URL.search(url)
    if not match:
        raise AssertionError(f"no launch handle in {url}")
    return match.group(1)


HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
OVERRIDE = {
    "override_reason": "benefit-outweighs-risk",
    "override_comment": "Load and production test: reviewed.",
    "attest": "yes",
}
NOTE_ANSWERS = {
    "rationale": "Spasticity not controlled at the current dose.",
    "side_effects_reviewed": "No drowsiness or weakness reported.",
    "education_given": "yes",
    "rescue_plan": "Oral baclofen if withdrawal signs; call the pump clinic.",
    "monitoring_plan": "Review in 24 hours.",
}


def csrf_of(page: str) -> str:
    """Return the csrf_token of a rendered form."""
    match = CSRF_FIELD.search(page)
    if not match:
        raise AssertionError("no csrf_token in the page")
    return match.group(1)


def outstanding_rows(database_url: str) -> int:
    """Return how many outbox rows still wait for a runner: pending, sending, or sent and due for read-back.

    A ``sent`` row with no next attempt was stored by the EHR but could not be read back; it is finished.
    """
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(f"SELECT count(*) FROM writeback_outbox WHERE {OUTSTANDING}")
                ).scalar_one()
            )
    finally:
        engine.dispose()


OUTSTANDING = "status IN ('pending', 'sending') OR (status = 'sent' AND next_attempt_at IS NOT NULL)"


def outbox_summary(database_url: str, *, outstanding_only: bool = False) -> list[str]:
    """Return one line per outbox row (ids, type, status, due, dependencies, error) for failure messages."""
    where = f" WHERE {OUTSTANDING}" if outstanding_only else ""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id, submission_id, resource_type, status, next_attempt_at, depends_on, last_error"
                    f" FROM writeback_outbox{where} ORDER BY submission_id, seq"
                )
            ).all()
    finally:
        engine.dispose()
    return [" | ".join(str(v) for v in row) for row in rows]


def preview_and_submit(
    session: requests.Session,
    app_url: str,
    handle: str,
    page: str,
    proposal: dict[str, str],
    timeout: float = 60,
) -> tuple[requests.Response, requests.Response]:
    """Post the preview form (csrf_token from ``page``), then the submit form built from the preview."""
    base = f"{app_url}/l/{handle}"
    preview = session.post(
        f"{base}/preview", data={"csrf_token": csrf_of(page), **proposal, **OVERRIDE}, timeout=timeout
    )
    if preview.status_code != 200:
        return preview, preview
    fields = {name: value for name, value in HIDDEN_INPUT.findall(preview.text)}
    fields = {name: html.unescape(value) for name, value in fields.items()}
    submit = session.post(f"{base}/submit", data={**fields, **NOTE_ANSWERS}, timeout=timeout)
    return preview, submit
