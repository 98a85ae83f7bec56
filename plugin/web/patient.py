"""The launched patient's first page: banner, launch context and the current intrathecal dose as read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from plugin.domain.codes import load_code_sets
from plugin.domain.loader import load_chart
from plugin.launches.service import LaunchExpired, fhir_client_for_launch, launch_context, launch_for_handle
from plugin.web.launch import error_page
from smart_launch.fhir_client import FhirError

bp = Blueprint("patient", __name__)
log = logging.getLogger(__name__)


@bp.get("/l/<handle>/")
def home(handle: str) -> ResponseReturnValue:
    """Show who is launched and the current intrathecal baclofen regimen as the EHR records it."""
    try:
        launch = launch_for_handle(handle)
        client = fhir_client_for_launch(launch.id)
    except LaunchExpired as error:
        return error_page(error.safe_message, 401)
    now = datetime.now(UTC)
    try:
        chart = load_chart(client, str(launch.patient_id), codes=load_code_sets(), now=now)
    except LaunchExpired as error:
        return error_page(error.safe_message, 401)
    except FhirError as error:
        log.warning("chart could not be read", extra={"event": "chart.load_failed", "status": error.status})
        return error_page(f"The patient's record could not be read from the EHR: {error.safe_message}", 502)
    finally:
        client.close()
    return render_template("patient.html", launch=launch, context=launch_context(launch), chart=chart)
