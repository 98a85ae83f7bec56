"""The clinician's page: the ITB picture, the trend plot, the proposal form and the live check.

The check runs on the server for every change of the proposal (``/api/check``, a few lines of
JavaScript call it); without JavaScript the form posts to ``/check`` and the page re-renders.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from plugin.clinician.charts import chart_for_launch
from plugin.clinician.picture import build_picture
from plugin.clinician.proposal_form import DOSE_MODES, ProposalForm, ProposalFormError, proposal_from_form
from plugin.domain.chart import Chart
from plugin.domain.engine import check
from plugin.domain.result import CheckResult
from plugin.domain.rules_config import load_rules
from plugin.launches.models import Launch
from plugin.launches.service import launch_context
from plugin.web.csrf import csrf_token, require_csrf
from plugin.web.launch_scope import current_launch, launch_blueprint
from plugin.web.smart_style import fetch_style_css
from plugin.web.trend_svg import render_trend_svg, trend_rows
from plugin.writeback.codes import override_reasons

bp = launch_blueprint("clinician", __name__)


def current_chart(launch: Launch, *, refresh: bool = False) -> Chart:
    """Return the launch patient's chart (cached per launch for the live check)."""
    return chart_for_launch(launch.id, str(launch.patient_id), refresh=refresh)


def run_check(chart: Chart, form: ProposalForm, now: datetime) -> tuple[CheckResult | None, str | None]:
    """Check the form's proposal; return the result, or a plain reason why it could not be read."""
    if form.is_empty:
        return None, None
    try:
        proposal = proposal_from_form(form, build_picture(chart, load_rules(), now).current_daily_dose_ug)
    except ProposalFormError as error:
        return None, str(error)
    return check(chart, proposal, load_rules(), now), None


def render_page(
    form: ProposalForm, *, status: int = 200, form_error: str | None = None, answers: object | None = None
) -> ResponseReturnValue:
    """Render the whole clinician page for the current launch and form (with an optional error line)."""
    launch = current_launch()
    chart = current_chart(launch, refresh=request.args.get("refresh") == "1")
    now = datetime.now(UTC)
    result, check_error = run_check(chart, form, now)
    form_error = form_error or check_error
    return (
        render_template(
            "clinician.html",
            launch=launch,
            context=launch_context(launch),
            chart=chart,
            picture=build_picture(chart, load_rules(), now),
            trend_svg=render_trend_svg(chart, now),
            trend_table=trend_rows(chart, now),
            form=form,
            dose_modes=DOSE_MODES,
            result=result,
            form_error=form_error,
            override_reasons=override_reasons(),
            answers=answers,
            csrf_token=csrf_token(launch.id),
        ),
        status,
    )


@bp.get("/")
def home() -> ResponseReturnValue:
    """Show the patient's ITB picture and the proposal form (checked when a dose is in the query)."""
    return render_page(ProposalForm.from_mapping(request.args))


@bp.post("/check")
def check_form() -> ResponseReturnValue:
    """Check a proposal posted without JavaScript and show the page with the result."""
    require_csrf(current_launch().id)
    return render_page(ProposalForm.from_mapping(request.form))


@bp.get("/style.css")
def smart_style() -> ResponseReturnValue:
    """Serve the EHR's SMART style (its colours and fonts) as CSS for this launch's pages."""
    launch = current_launch()
    css = fetch_style_css(launch.smart_style_url) if launch.smart_style_url else ""
    return Response(css, mimetype="text/css", headers={"Cache-Control": "private, max-age=300"})


@bp.get("/api/check")
def api_check() -> ResponseReturnValue:
    """Return the check result (CONTRACT §3 JSON) and its rendered panel for the live check."""
    launch = current_launch()
    chart = current_chart(launch)
    form = ProposalForm.from_mapping(request.args)
    result, form_error = run_check(chart, form, datetime.now(UTC))
    panel = render_template(
        "_result.html", result=result, form_error=form_error, form=form, override_reasons=override_reasons()
    )
    body: dict[str, Any] = {
        "result": result.to_json() if result else None,
        "error": form_error,
        "html": panel,
    }
    response: Response = jsonify(body)
    return response, 200 if form_error is None else 422
