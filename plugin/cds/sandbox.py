"""The in-app CDS sandbox page (``GET/POST /cds-sandbox``): play the EHR's part of an order-sign call.

Only registered when ``ITB_CDS_SANDBOX_PAGE`` or ``ITB_CDS_INSECURE_SANDBOX`` is on (never in
production). The page's *server side* builds the request (draftOrders with an intrathecal baclofen
MedicationRequest, prefetch from the sandbox patient's bundle with dates shifted to today), signs it
with the sandbox client's ES384 key and POSTs it over HTTP to the service, so the real trust, parsing
and card code runs; no browser JavaScript is needed and the CSP stays strict. The key lives in the
instance folder so every worker signs and verifies with the same one.
"""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from flask import Blueprint, Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue

from plugin.cds.config import CdsClient
from plugin.cds.discovery import SELECT_SERVICE_ID, SIGN_SERVICE_ID
from plugin.cds.jwt_sign import (
    client_claims,
    key_from_private_jwk,
    new_es384_key,
    private_jwk,
    public_jwk,
    sign_es384,
)
from plugin.web.csrf import csrf_token, require_csrf

bp = Blueprint("cds_sandbox", __name__, template_folder="templates")

SANDBOX_ISS = "urn:itb:cds-sandbox"
SANDBOX_KID = "itb-cds-sandbox-1"
SANDBOX_DIR = Path(__file__).resolve().parents[2] / "config" / "sandbox"
UNITS = {"ug/d": "ug/d", "ug/h": "ug/h", "mg/d": "mg/d", "mL/h": "mL/h"}
_CSRF_SCOPE = "cds-sandbox"


def _key_path(app: Flask) -> Path:
    """Return the sandbox client's key file in the instance folder."""
    return Path(app.instance_path) / "cds-sandbox-key.json"


def sandbox_client(app: Flask) -> CdsClient:
    """Create (once, shared by every worker) the sandbox client's key; return the client to trust."""
    path = _key_path(app)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker won the race; read its key below
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(private_jwk(new_es384_key(), SANDBOX_KID), handle)
    key = key_from_private_jwk(json.loads(path.read_text(encoding="utf-8")))
    return CdsClient(
        iss=SANDBOX_ISS,
        name="In-app CDS sandbox",
        jwks={"keys": [public_jwk(key.public_key(), SANDBOX_KID)]},
        fhir_servers=(),
    )


def _manifest() -> dict[str, Any]:
    """Read the sandbox patients' manifest."""
    with (SANDBOX_DIR / "manifest.toml").open("rb") as handle:
        return tomllib.load(handle)


def prefetch_for(patient_file: Path, anchor: datetime, now: datetime) -> dict[str, Any]:
    """Return prefetch for a sandbox patient: its resources by template key, dates shifted to ``now``."""
    from smart_launch.sandbox.dates import days_between, shift_dates

    bundle = shift_dates(json.loads(patient_file.read_text(encoding="utf-8")), days_between(anchor, now))
    keys: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "medicationRequests", "medicationStatements", "scores", "findings", "pump", "vitals", "egfr",
        "conditions", "devices", "deviceUse", "procedures")}  # fmt: skip
    route = {"MedicationRequest": "medicationRequests", "Medication": "medicationRequests",
             "MedicationStatement": "medicationStatements", "Condition": "conditions", "Device": "devices",
             "DeviceUseStatement": "deviceUse", "Procedure": "procedures"}  # fmt: skip
    prefetch: dict[str, Any] = {"patient": None}
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        kind = resource.get("resourceType")
        if kind == "Patient":
            prefetch["patient"] = resource
        elif kind == "Observation":
            categories = json.dumps(resource.get("category", []))
            if "vital-signs" in categories:
                keys["vitals"].append(resource)
            elif '"exam"' in categories:
                keys["findings"].append(resource)
            else:
                keys["scores"].append(resource)
        elif kind in route:
            keys[route[kind]].append(resource)
    for key, resources in keys.items():
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                         "entry": [{"resource": r} for r in resources]}  # fmt: skip
    return prefetch


def draft_order(patient_id: str, value: float, unit: str) -> dict[str, Any]:
    """Return a draft intrathecal baclofen MedicationRequest at ``value`` ``unit``."""
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{uuid.uuid4().hex[:12]}",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"text": "Baclofen intrathecal (pump)"},
        "dosageInstruction": [{
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "72607000",
                                  "display": "Intrathecal route"}]},
            "doseAndRate": [{"rateQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                                              "code": unit}}],
        }],
    }  # fmt: skip


def hook_request(
    hook: str, patient_id: str, order: dict[str, Any], prefetch: dict[str, Any]
) -> dict[str, Any]:
    """Return an order-sign / order-select request shaped like the spec's examples."""
    context: dict[str, Any] = {
        "userId": "Practitioner/sandbox-clinician",
        "patientId": patient_id,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{order['id']}"]
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}


def _service_url(service_id: str) -> str:
    """Return the service URL the signed call goes to (and its JWT audience)."""
    public = current_app.config.get("PUBLIC_URL")
    base = str(public).rstrip("/") if public else request.host_url.rstrip("/") + request.script_root
    return f"{base}/cds-services/{service_id}"


@bp.route("/cds-sandbox", methods=["GET", "POST"])
def page() -> ResponseReturnValue:
    """Show the form; on POST sign and send an order-sign call and show the cards that came back."""
    manifest = _manifest()
    patients = manifest.get("patients", [])
    form = {
        "patient": patients[0]["id"] if patients else "",
        "value": "480",
        "unit": "ug/d",
        "hook": "order-sign",
    }
    answer: dict[str, Any] | None = None
    if request.method == "POST":
        require_csrf(_CSRF_SCOPE)
        form.update({k: request.form.get(k, v) for k, v in form.items()})
        answer = _send(form, patients, manifest)
    return render_template("cds_sandbox.html", patients=patients, form=form, units=UNITS, answer=answer,
                           csrf=csrf_token(_CSRF_SCOPE))  # fmt: skip


def _send(form: dict[str, str], patients: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """Build, sign and POST the hook call; return the status and cards (or the error) for the page."""
    chosen = next((p for p in patients if p["id"] == form["patient"]), None)
    try:
        value = float(form["value"])
    except ValueError:
        return {"error": "The dose must be a number."}
    if chosen is None or form["unit"] not in UNITS or form["hook"] not in ("order-sign", "order-select"):
        return {"error": "Pick a patient, a unit and a hook from the lists."}
    now = datetime.now(UTC)
    anchor = datetime.fromisoformat(str(manifest["anchor"]).replace("Z", "+00:00"))
    body = hook_request(form["hook"], chosen["id"], draft_order(chosen["id"], value, form["unit"]),
                        prefetch_for(SANDBOX_DIR / chosen["file"], anchor, now))  # fmt: skip
    url = _service_url(SIGN_SERVICE_ID if form["hook"] == "order-sign" else SELECT_SERVICE_ID)
    key = key_from_private_jwk(json.loads(_key_path(current_app).read_text(encoding="utf-8")))
    token = sign_es384(key, SANDBOX_KID, client_claims(SANDBOX_ISS, url, now))
    try:
        headers = {"Authorization": f"Bearer {token}"}
        response = requests.post(url, json=body, headers=headers, timeout=(3.05, 20))
    except requests.RequestException as error:
        return {"error": f"The service could not be reached ({type(error).__name__})."}
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    return {"status": response.status_code, "cards": payload.get("cards", []), "payload": payload, "url": url}
