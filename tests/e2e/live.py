"""A live app and sandbox EHR on loopback ports, talking over real HTTP, for end-to-end and browser tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Live:
    """URLs and handles of a running app + sandbox pair."""

    app_url: str
    sandbox_url: str
    app: Any
    servers: Any

    def iss(self, tenant: str = "full") -> str:
        """Return the sandbox tenant's FHIR base."""
        return f"{self.sandbox_url}/{tenant}/fhir"

    def stored(self, resource_type: str, tenant: str = "full") -> list[dict[str, Any]]:
        """Return what the sandbox EHR holds of a resource type (what really reached the EHR)."""
        store = self.servers.sandbox_app.extensions["sandbox"].store
        return list(store.tenant(tenant).all(resource_type))

    def launch(
        self,
        patient: str,
        *,
        tenant: str = "full",
        user: str = "clinician-1",
        session: requests.Session | None = None,
    ) -> requests.Response:
        """Launch the app from the sandbox launch page for a patient and return the app page response."""
        session = session or requests.Session()
        return session.get(
            f"{self.sandbox_url}/launch",
            params={"tenant": tenant, "user": user, "patient": patient},
            timeout=30,
        )


def start_live(tmp_path: Path, **sandbox_overrides: Any) -> Live:
    """Start a fresh app + sandbox pair on free ports."""
    from plugin.demo import start_demo

    port, sandbox_port = free_port(), free_port()
    servers = start_demo(
        "127.0.0.1",
        port,
        sandbox_port,
        app_overrides={"SECRET_KEY": "e2e-secret"},
        sandbox_overrides={"allow_faults": True, **sandbox_overrides},
        instance_path=str(tmp_path / "instance"),
    )
    return Live(servers.app_url, servers.sandbox_url, servers.app, servers)
