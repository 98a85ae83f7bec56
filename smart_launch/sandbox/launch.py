"""The sandbox's launch page: pick a tenant, a user and a patient, and launch the app the way an EHR
does (``{app_launch_url}?iss=...&launch=...``). Also JSON helpers for tests: the patient list and a
launch-creating endpoint."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue

from .auth import LaunchContext
from .config import TENANTS
from .context import fhir_base, known_tenant, sandbox
from .users import USERS

bp = Blueprint("sandbox_launch", __name__, template_folder="templates")


def _display_name(patient: dict[str, Any]) -> str:
    """A patient's name for the list (text, else given + family)."""
    for name in patient.get("name", []):
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("given", []), name.get("family", "")]
        if any(parts):
            return " ".join(p for p in parts if p)
    return str(patient.get("id"))


def _age(birth_date: str | None, today: date) -> int | None:
    """Age in whole years on ``today``."""
    if not birth_date or len(birth_date) < 10:
        return None
    born = date.fromisoformat(birth_date[:10])
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient_rows(tenant: str) -> list[dict[str, Any]]:
    """The tenant's patients with name, age and scenario summary, for the pages and the JSON list."""
    context = sandbox()
    today = context.auth.clock().date()
    rows = []
    for record in context.store.tenant(tenant).current("Patient"):
        patient = record.resource
        rows.append(
            {
                "id": patient["id"],
                "name": _display_name(patient),
                "birthDate": patient.get("birthDate"),
                "age": _age(patient.get("birthDate"), today),
                "gender": patient.get("gender"),
                "summary": context.summaries.get(patient["id"], ""),
            }
        )
    return rows


def _create_launch(tenant: str, patient_id: str, user_id: str, embedded: bool) -> str:
    """Validate the choices and record a launch; return its id."""
    if not known_tenant(tenant) or user_id not in USERS:
        abort(400)
    if sandbox().store.tenant(tenant).read("Patient", patient_id) is None:
        abort(400)
    return sandbox().auth.create_launch(LaunchContext(tenant, user_id, patient_id, embedded=embedded))


@bp.get("/")
def launch_page() -> ResponseReturnValue:
    """List patients and users with a Launch button per patient."""
    tenant = request.args.get("tenant", "full")
    if not known_tenant(tenant):
        abort(404)
    return render_template(
        "launch.html",
        tenant=tenant,
        tenants=TENANTS,
        users=USERS.values(),
        patients=patient_rows(tenant),
        app_launch_url=sandbox().config.app_launch_url,
        iss=fhir_base(tenant),
    )


@bp.get("/launch")
@bp.get("/_sandbox/launch")
def launch() -> ResponseReturnValue:
    """Create a launch from the page's form and send the browser to the app's launch URL."""
    tenant = request.args.get("tenant", "full")
    launch_id = _create_launch(
        tenant,
        request.args.get("patient", ""),
        request.args.get("user", "clinician-1"),
        request.args.get("embedded") == "1",
    )
    query = urlencode({"iss": fhir_base(tenant), "launch": launch_id})
    return redirect(f"{sandbox().config.app_launch_url}?{query}", code=302)


@bp.post("/_sandbox/launches")
def create_launch_json() -> ResponseReturnValue:
    """Create a launch for tests: JSON {tenant, patient, user, embedded} -> {launch, iss, launch_url}."""
    data = request.get_json(force=True) or {}
    tenant = str(data.get("tenant", "full"))
    launch_id = _create_launch(
        tenant,
        str(data.get("patient", "")),
        str(data.get("user", "clinician-1")),
        bool(data.get("embedded", False)),
    )
    iss = fhir_base(tenant)
    query = urlencode({"iss": iss, "launch": launch_id})
    return jsonify(
        {"launch": launch_id, "iss": iss, "launch_url": f"{sandbox().config.app_launch_url}?{query}"}
    ), 201


@bp.get("/_sandbox/patients")
def patients_json() -> ResponseReturnValue:
    """The patient list as JSON (``?tenant=``, default full)."""
    tenant = request.args.get("tenant", "full")
    if not known_tenant(tenant):
        abort(404)
    return jsonify(
        {
            "tenant": tenant,
            "iss": fhir_base(tenant),
            "patients": patient_rows(tenant),
            "users": [{"id": u.id, "name": u.name, "role": u.role} for u in USERS.values()],
        }
    )
