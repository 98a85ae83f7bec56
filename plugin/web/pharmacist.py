"""The pharmacist's pages: the verification queue across patients, one change in review, and the
verify / reject / undo forms.

The role comes from the launch (``launch.role``, set from the EHR registry's fhirUser -> role mapping at
launch); a PractitionerRole is not read. The queue lists every proposed change at the launch's EHR, but
the launch's token only reaches its own patient (SMART ``patient/`` scopes): the check is re-run, and a
decision filed, only for changes of the launch's patient; for others the page shows the stored check
and asks the pharmacist to open that patient's chart.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from plugin.audit.app_events import audit, entry
from plugin.audit.log import audited_session
from plugin.clinician.charts import chart_for_launch
from plugin.clinician.models import DoseChangeRecord
from plugin.db import get_db
from plugin.domain.chart import Chart
from plugin.domain.rules_config import load_rules
from plugin.launches.models import Launch
from plugin.launches.tokens import fhir_client_for_launch
from plugin.verification.queue import decisions_for, inputs_for, pending_changes, recent_decisions
from plugin.verification.review import Review, build_review
from plugin.verification.service import (
    Decision,
    VerificationConflict,
    VerificationRefused,
    decide,
    last_decision,
    require_pharmacist,
    same_user,
)
from plugin.web.csrf import csrf_token, require_csrf
from plugin.web.launch_scope import current_launch, launch_blueprint
from plugin.web.notes import send_now, writeback_settings
from plugin.writeback.outbox import submission_status

bp = launch_blueprint("pharmacist", __name__)
log = logging.getLogger(__name__)
AUDIT_ACTIONS = {
    "verify": "verification.verify",
    "reject": "verification.reject",
    "undo": "verification.undo",
}


def refuse(
    launch: Launch, error: VerificationRefused, action: str, change_id: str | None = None
) -> ResponseReturnValue:
    """Audit a refused action and show why it was refused."""
    related = [f"DoseChange/{change_id}"] if change_id else []
    audit(launch, "action.refused", related=related, detail={"action": action, "reason": error.message[:300]})
    return render_template(
        "pharmacist_refused.html", message=error.message, change_id=change_id
    ), error.status


def fresh_chart(launch: Launch, record: DoseChangeRecord) -> Chart | None:
    """Re-read the change's patient's chart from the EHR, or None when it is not this launch's patient."""
    if str(launch.patient_id) != record.patient_id:
        return None
    return chart_for_launch(launch.id, record.patient_id, refresh=True)


def ehr_capabilities(launch: Launch) -> dict[str, object]:
    """Return the EHR's CapabilityStatement (which types it can store)."""
    return dict(fhir_client_for_launch(launch.id).capabilities())


def load_change(launch: Launch, change_id: str) -> DoseChangeRecord | None:
    """Return a change at the launch's EHR, or None."""
    with get_db().session() as session:
        record = session.get(DoseChangeRecord, change_id)
    return record if record is not None and record.iss == launch.iss else None


def review_for(launch: Launch, record: DoseChangeRecord) -> Review:
    """Assemble the stored check, the re-run and the calculators for one change."""
    with get_db().session() as session:
        summary = inputs_for(session, record.id)
    return build_review(record, summary, fresh_chart(launch, record), load_rules(), datetime.now(UTC))


@bp.get("/pharmacist/")
def queue() -> ResponseReturnValue:
    """List the proposed dose changes at this EHR, most severe first, then oldest."""
    launch = current_launch()
    try:
        require_pharmacist(launch)
    except VerificationRefused as error:
        return refuse(launch, error, "verification.queue")
    with get_db().session() as session:
        changes = pending_changes(session, launch.iss)
        recent = recent_decisions(session, launch.iss, str(launch.fhir_user))
    return render_template(
        "pharmacist_queue.html", launch=launch, changes=changes, recent=recent, now=datetime.now(UTC)
    )


@bp.get("/pharmacist/changes/<change_id>")
def change(change_id: str) -> ResponseReturnValue:
    """Show one change: the check as submitted and re-run, their differences, the calculator and the note."""
    launch = current_launch()
    try:
        require_pharmacist(launch)
    except VerificationRefused as error:
        return refuse(launch, error, "verification.review", change_id)
    record = load_change(launch, change_id)
    if record is None:
        return render_template("error.html", message="No such dose change at this EHR."), 404
    return render_change(launch, record, review_for(launch, record))


def render_change(
    launch: Launch, record: DoseChangeRecord, review: Review, status: int = 200, message: str | None = None
) -> ResponseReturnValue:
    """Render the review page for one change."""
    with get_db().session() as session:
        actions = decisions_for(session, record.id)
        previous = last_decision(session, record.id)
        filings = {
            a.id: submission_status(session, a.outbox_submission_id)
            for a in actions
            if a.outbox_submission_id
        }
    return render_template(
        "pharmacist_change.html",
        launch=launch,
        record=record,
        review=review,
        actions=actions,
        filings=filings,
        own_change=same_user(record.prescriber, launch.fhir_user, record.iss),
        this_chart=str(launch.patient_id) == record.patient_id,
        can_undo=previous is not None
        and record.status in ("verified", "rejected")
        and same_user(previous.actor, launch.fhir_user, record.iss),
        message=message,
        csrf_token=csrf_token(launch.id),
    ), status


@bp.post("/pharmacist/changes/<change_id>/<action>")
def act(change_id: str, action: str) -> ResponseReturnValue:
    """Verify, reject or undo one change (compare-and-set on the version the pharmacist saw)."""
    launch = current_launch()
    require_csrf(launch.id)
    if action not in AUDIT_ACTIONS:
        return render_template("error.html", message="Unknown action."), 404
    try:
        require_pharmacist(launch)
    except VerificationRefused as error:
        return refuse(launch, error, AUDIT_ACTIONS[action], change_id)
    record = load_change(launch, change_id)
    if record is None:
        return render_template("error.html", message="No such dose change at this EHR."), 404
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        return render_template("error.html", message="This form is incomplete: reload the page."), 400
    decision = Decision(
        change_id, version, action, request.form.get("reason") or "", request.form.get("comment") or ""
    )
    review = review_for(launch, record)
    try:
        capabilities = ehr_capabilities(launch) if str(launch.patient_id) == record.patient_id else {}
        now = datetime.now(UTC)
        # The decision and its audit record commit together (or neither does).
        with audited_session(get_db(), now=now) as write:
            done = decide(
                write.session,
                launch=launch,
                decision=decision,
                review=review,
                capabilities=capabilities,
                settings=writeback_settings(),
                now=now,
            )
            write.entries.append(
                entry(
                    launch,
                    AUDIT_ACTIONS[action],
                    dose_before=record.current_dose_ug_per_day,
                    dose_after=record.proposed_dose_ug_per_day,
                    related=[f"DoseChange/{change_id}"],
                    detail={
                        "status_before": done.status_before,
                        "status_after": done.status_after,
                        "reason": done.reason or "",
                        "comment": done.comment or "",
                        "rerun_verdict": (review.rerun or {}).get("verdict", "not re-run"),
                    },
                )
            )
    except VerificationRefused as error:
        return refuse(launch, error, AUDIT_ACTIONS[action], change_id)
    except VerificationConflict as error:
        audit(
            launch,
            "action.refused",
            related=[f"DoseChange/{change_id}"],
            detail={"action": AUDIT_ACTIONS[action], "reason": error.message[:300], "conflict": True},
        )
        return render_template("pharmacist_conflict.html", message=error.message, change_id=change_id), 409
    log.info("dose change %s", done.status_after, extra={"event": AUDIT_ACTIONS[action]})
    if done.outbox_submission_id:
        send_now(done.outbox_submission_id)
    return redirect(url_for("pharmacist.change", change_id=change_id), code=303)
