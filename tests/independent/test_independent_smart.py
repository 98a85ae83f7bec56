"""The app completes an EHR launch against a SMART server the project did not write.

The server is panva's ``oidc-provider`` (OpenID Certified, from npm) behind a thin SMART shim
(``scripts/independent-smart/``): PKCE S256 required, ``launch`` and ``aud`` on /auth, the patient in the
token response, ``fhirUser`` in the id_token, automatic login and consent, and a tiny FHIR API over one
sandbox patient. The app reaches it only through its registry entry, exactly as it would reach an EHR.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from plugin.app import create_app
from plugin.launches.models import Launch
from smart_launch.sandbox.dates import days_between, shift_dates
from smart_launch.sandbox.seed import load_manifest
from smart_launch.sandbox.server import serve_in_thread
from tests.e2e.live import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "independent-smart"
SANDBOX = ROOT / "config" / "sandbox"
SECRET = "independent-secret-for-tests"


@dataclass
class Independent:
    """The running independent SMART server: its FHIR base (the iss) and the app URL it was set up for."""

    iss: str
    app_port: int

    @property
    def app_url(self) -> str:
        """Return the app's base URL registered at the server (redirect URI and JWKS URL)."""
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def base(self) -> str:
        """Return the authorization server's root (its OpenID issuer)."""
        return self.iss.removesuffix("/fhir")


def _shifted_bundle(tmp: Path) -> Path:
    """Write sci-adult's Bundle with its dates moved to today, as the sandbox EHR serves it."""
    anchor = load_manifest(SANDBOX).anchor
    bundle = json.loads((SANDBOX / "patients" / "sci-adult.json").read_text(encoding="utf-8"))
    path = tmp / "sci-adult.json"
    path.write_text(
        json.dumps(shift_dates(bundle, days_between(anchor, datetime.now(UTC)))), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def independent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Independent]:
    """Install (into ~/.cache/itb) and start the oidc-provider SMART server; skip when Node is unavailable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the independent SMART server (oidc-provider)")
    install = subprocess.run(
        [SCRIPTS / "install.sh"], capture_output=True, text=True, timeout=300, check=False
    )
    if install.returncode != 0:
        pytest.skip(f"oidc-provider could not be installed from npm: {install.stderr.strip()[-300:]}")
    tmp = tmp_path_factory.mktemp("independent")
    env = {**os.environ, "ITB_RUN_DIR": str(tmp), "SMART_CLIENT_SECRET": SECRET}
    app_port = free_port()
    started = subprocess.run(
        [SCRIPTS / "start.sh", f"http://127.0.0.1:{app_port}", str(_shifted_bundle(tmp))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield Independent((tmp / "independent-smart.url").read_text(encoding="utf-8").strip(), app_port)
    finally:
        subprocess.run([SCRIPTS / "stop.sh"], env=env, timeout=30, check=False)


@pytest.fixture
def app_for(independent: Independent, tmp_path: Path) -> Iterator[Any]:
    """Return a function that starts the app registered at the independent server with one client."""
    handles: list[Any] = []

    def start(client_id: str, auth: str) -> Any:
        entry: dict[str, Any] = {
            "name": "independent oidc-provider",
            "iss": independent.iss,
            "client_id": client_id,
            "auth": auth,
            "frame_ancestors": [independent.base],
        }
        if auth == "client_secret_basic":
            entry["client_secret"] = SECRET
        app = create_app(
            {"SECRET_KEY": "independent-secret-key", "EHR_REGISTRY": [entry]},
            instance_path=str(tmp_path / f"instance-{client_id}"),
        )
        handles.append((app, serve_in_thread(app, "127.0.0.1", independent.app_port)))
        return app

    yield start
    for app, server in handles:
        server.shutdown()
        app.extensions["itb.db"].dispose()


@pytest.mark.parametrize(
    ("client_id", "auth"), [("itb-jwt", "private_key_jwt"), ("itb-secret", "client_secret_basic")]
)
def test_an_ehr_launch_against_oidc_provider_shows_the_patients_current_dose(
    independent: Independent, app_for: Any, client_id: str, auth: str
) -> None:
    app = app_for(client_id, auth)
    browser = requests.Session()
    response = browser.get(
        f"{independent.app_url}/launch", params={"iss": independent.iss, "launch": "xyz"}, timeout=30
    )
    assert response.status_code == 200, response.text[:500]
    hops = [hop.url for hop in response.history]
    assert any(hop.startswith(f"{independent.base}/auth") for hop in hops), hops
    assert any("/interaction/" in hop for hop in hops), hops
    assert re.match(rf"{re.escape(independent.app_url)}/l/[^/]+/$", response.url), response.url
    assert 'id="patient-name"' in response.text  # need_patient_banner came in the token response
    assert re.search(r'id="current-dose"[^>]*>400 ug/d<', response.text)
    with app.app_context(), app.extensions["itb.db"].session() as session:
        launch = session.query(Launch).one()
    assert launch.patient_id == "sci-adult"  # from the token response, not from any request parameter
    assert launch.fhir_user == "Practitioner/clinician-1"  # the id_token's fhirUser claim, verified


def _authorize(independent: Independent, **overrides: str) -> requests.Response:
    """Send an authorization request straight to the server (as a browser would), not following redirects."""
    params = {
        "response_type": "code",
        "client_id": "itb-secret",
        "redirect_uri": f"{independent.app_url}/callback",
        "scope": "launch openid fhirUser",
        "state": "s" * 43,
        "aud": independent.iss,
        "launch": "xyz",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
        **overrides,
    }
    params = {name: value for name, value in params.items() if value}
    return requests.get(f"{independent.base}/auth", params=params, allow_redirects=False, timeout=30)


def test_the_server_refuses_an_authorization_without_pkce(independent: Independent) -> None:
    response = _authorize(independent, code_challenge="", code_challenge_method="")
    assert response.status_code in (302, 303)
    location = requests.utils.unquote(response.headers["Location"])
    assert "error=invalid_request" in location
    assert "PKCE" in location


def test_the_server_refuses_an_aud_that_is_not_its_fhir_base(independent: Independent) -> None:
    response = _authorize(independent, aud="https://elsewhere.example/fhir")
    assert "error=invalid_request" in response.headers.get("Location", "")


def test_the_fhir_api_wants_a_token_the_server_issued(independent: Independent) -> None:
    response = requests.get(f"{independent.iss}/Patient", params={"_id": "sci-adult"}, timeout=30)
    assert response.status_code == 401
    forged = requests.get(
        f"{independent.iss}/Patient", headers={"Authorization": "Bearer forged"}, timeout=30
    )
    assert forged.status_code == 401
