"""``itb demo``: the app and the sandbox EHR on loopback, wired to each other, for a first look.

The two run on their own ports and talk over HTTP only, exactly as the app would talk to Epic.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any

import click
import requests

SANDBOX_CLIENTS = {
    # tenant -> (client_id, client authentication, secret) as registered in config/sandbox/clients.toml
    "full": ("itb-jwt", "private_key_jwt", None),
    "epic-like": ("itb-secret", "client_secret_basic", "sandbox-secret-change-me"),
}


def demo_registry(sandbox_url: str) -> list[dict[str, Any]]:
    """Return EHR registry entries for the sandbox's tenants."""
    entries = []
    for tenant, (client_id, auth, secret) in SANDBOX_CLIENTS.items():
        entry: dict[str, Any] = {
            "name": f"ITB sandbox ({tenant})",
            "iss": f"{sandbox_url}/{tenant}/fhir",
            "client_id": client_id,
            "auth": auth,
            "frame_ancestors": [sandbox_url],
            "roles": {"Practitioner/auditor-1": "auditor"},
        }
        if tenant != "full":
            # The full tenant shows the other path: pharmacist-1's PractitionerRole, coded pharmacist,
            # read at launch (plugin/launches/roles.py). The Epic-like one is given the role here.
            entry["roles"]["Practitioner/pharmacist-1"] = "pharmacist"
        if secret:
            entry["client_secret"] = secret
        entries.append(entry)
    return entries


@dataclass
class DemoServers:
    """The running app and sandbox: their URLs, the app object, and a way to stop both."""

    app: Any
    sandbox_app: Any
    app_server: Any
    sandbox_server: Any
    app_url: str
    sandbox_url: str
    outbox_runner: Any = None

    def shutdown(self) -> None:
        """Stop the outbox runner and both servers."""
        if self.outbox_runner is not None:
            self.outbox_runner.stop()
        self.app_server.shutdown()
        self.sandbox_server.shutdown()


def start_demo(
    host: str,
    port: int,
    sandbox_port: int,
    app_overrides: dict[str, Any] | None = None,
    sandbox_overrides: dict[str, Any] | None = None,
    instance_path: str | None = None,
    outbox_runner: bool = True,
) -> DemoServers:
    """Start the sandbox and the app in background threads."""
    from plugin.app import create_app
    from smart_launch.sandbox import create_sandbox_app
    from smart_launch.sandbox.config import SandboxConfig
    from smart_launch.sandbox.server import serve_in_thread

    app_url = f"http://{host}:{port}"
    sandbox_url = f"http://{host}:{sandbox_port}"
    sandbox = create_sandbox_app(
        SandboxConfig.for_app(app_url, public_url=sandbox_url, **(sandbox_overrides or {}))
    )
    app = create_app(
        {"EHR_REGISTRY": demo_registry(sandbox_url), "CDS_SANDBOX_PAGE": True, **(app_overrides or {})},
        instance_path=instance_path,
    )
    sandbox_server = serve_in_thread(sandbox, host, sandbox_port)
    app_server = serve_in_thread(app, host, port)
    runner = None
    if outbox_runner:
        from plugin.writeback.runner import OutboxRunner

        # Retries what the EHR did not take at once (the page already tried once, synchronously).
        runner = OutboxRunner(
            app.extensions["itb.db"], app.extensions["itb.client_factory"], interval_seconds=10
        )
        runner.start()
    return DemoServers(app, sandbox, app_server, sandbox_server, app_url, sandbox_url, runner)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=int, help="The app's port; the sandbox takes the next."
)
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="File one +10 % change for sci-adult as clinician-1, so the pharmacist's queue has something.",
)
def demo(host: str, port: int, seed: bool) -> None:
    """Start the app and the sandbox EHR with its synthetic patients; print the launch page URL."""
    servers = start_demo(host, port, port + 1)
    if seed:
        from plugin.demo_seed import seed_pharmacist_queue

        try:
            seed_pharmacist_queue(servers.app_url, servers.sandbox_url)
            click.echo("Seeded: clinician-1 filed +10 % for sci-adult; launch as pharmacist-1 to verify it.")
        except (requests.RequestException, RuntimeError) as error:  # the demo still runs without it
            click.echo(f"Could not seed the pharmacist's queue ({type(error).__name__}); file a note first.")
    click.echo(f"ITB Dose Check app:  http://{host}:{port}")
    click.echo(f"Sandbox EHR:         http://{host}:{port + 1}/")
    click.echo(f"Open the sandbox launch page and pick a patient: http://{host}:{port + 1}/")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        servers.shutdown()
