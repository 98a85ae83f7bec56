"""Note preview, submission and the truthful confirmation of what reached the EHR."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from plugin.audit.app_events import audit
from plugin.clinician.charts import chart_for_launch
from plugin.clinician.models import DoseChangeRecord
from plugin.clinician.proposal_form import ProposalForm
from plugin.clinician.submission import (
    NoteAnswers,
    SubmissionFormError,
    note_input,
    require_override,
    submit_dose_change,
)
from plugin.db import get_db
from plugin.domain.chart import Chart
from plugin.domain.result import CheckResult
from plugin.domain.rules_config import load_rules
from plugin.launches.models import Launch
from plugin.launches.tokens import fhir_client_for_launch
from plugin.web.clinician import render_page, run_check
from plugin.web.csrf import csrf_token, require_csrf
from plugin.web.launch_scope import current_launch, launch_blueprint
from plugin.writeback.codes import override_reasons
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import render_note
from plugin.writeback.outbox import retry, submission_status
from plugin.writeback.resources import WriteBackSettings
from plugin.writeback.sender import run_once

bp = launch_blueprint("notes", __name__)
log = logging.getLogger(__name__)


def writeback_settings() -> WriteBackSettings:
    """Return the site's write-back choices from settings."""
    return WriteBackSettings(note_type_loinc=str(current_app.config["NOTE_TYPE_LOINC"]))


@dataclass(frozen=True, slots=True)
class Posted:
    """A posted proposal, re-checked on the server, with the clinician's answers."""

    launch: Launch
    chart: Chart
    form: ProposalForm
    result: CheckResult | None
    form_error: str | None
    answers: NoteAnswers
    now: datetime


def posted() -> Posted:
    """Re-run the check for the posted proposal (after the CSRF check) and read the answers."""
    launch = current_launch()
    require_csrf(launch.id)
    chart = chart_for_launch(launch.id, str(launch.patient_id))
    form = ProposalForm.from_mapping(request.form)
    now = datetime.now(UTC)
    result, form_error = run_check(chart, form, now)
    return Posted(launch, chart, form, result, form_error, NoteAnswers.from_mapping(request.form), now)


@bp.post("/preview")
def preview() -> ResponseReturnValue:
    """Show the rendered note with its editable fields, once the override rules are met."""
    post = posted()
    if post.result is None:
        return render_page(post.form, status=422)
    try:
        require_override(post.result, post.answers)
    except SubmissionFormError as error:
        return render_page(post.form, status=422, form_error=str(error), answers=post.answers)
    note = note_input(post.chart, post.result, post.answers, post.launch, load_rules(), post.now)
    return render_template(
        "preview.html",
        form=post.form,
        answers=post.answers,
        result=post.result,
        note=render_note(note, draft=True),
        submit_key=request.form.get("submit_key") or str(uuid.uuid4()),
        csrf_token=csrf_token(post.launch.id),
        override_reasons=override_reasons(),
    )


@bp.post("/submit")
def submit() -> ResponseReturnValue:
    """File the note and the check: queue them, try to send now, and show what happened."""
    post = posted()
    if post.result is None:
        return render_page(post.form, status=422)
    try:
        require_override(post.result, post.answers)
        note = note_input(post.chart, post.result, post.answers, post.launch, load_rules(), post.now)
        client = fhir_client_for_launch(post.launch.id)
        with get_db().session() as session:
            record = submit_dose_change(
                session,
                submit_key=_submit_key(),
                launch=post.launch,
                note=note,
                note_text=render_note(note).text,
                result=post.result,
                capabilities=client.capabilities(),
                settings=writeback_settings(),
                now=post.now,
            )
    except (SubmissionFormError, WriteBackInputError) as error:
        return render_page(post.form, status=422, form_error=str(error), answers=post.answers)
    log.info(
        "dose change submitted",
        extra={"event": "dose_change.submitted", "verdict": post.result.verdict.value},
    )
    audit_submission(post.launch, record, post.result, post.answers)
    send_now(record.outbox_submission_id)
    audit_filing(post.launch, record)
    return redirect(url_for("notes.confirmation", change_id=record.id), code=303)


def audit_submission(
    launch: Launch, record: DoseChangeRecord, result: CheckResult, answers: NoteAnswers
) -> None:
    """Record the check, the proposal and any override in the audit log."""
    related = [f"DoseChange/{record.id}"]
    audit(launch, "check.run", result=result, related=related)
    audit(launch, "dose-change.propose", result=result, related=related)
    if answers.override_reason:
        audit(
            launch,
            "dose-change.override",
            result=result,
            related=related,
            override_code=answers.override_reason,
            override_text=answers.override_comment,
        )


def audit_filing(launch: Launch, record: DoseChangeRecord) -> None:
    """Record what became of the write-back right after the first attempt."""
    with get_db().session() as session:
        status = submission_status(session, record.outbox_submission_id)
    action = {"filed": "writeback.filed", "failed": "writeback.refused"}.get(status.state, "writeback.queued")
    related = [f"{i.resource_type}/{i.server_id}" for i in status.items if i.server_id]
    audit(
        launch,
        action,
        dose_before=record.current_dose_ug_per_day,
        dose_after=record.proposed_dose_ug_per_day,
        related=[f"DoseChange/{record.id}", *related],
        detail={"filing": status.state, "message": status.message[:300]},
    )


def _submit_key() -> str:
    key = request.form.get("submit_key") or ""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        raise SubmissionFormError(
            "This form is incomplete; open the preview again before submitting."
        ) from None


def send_now(submission_id: str) -> None:
    """Try this submission's rows once right away, so the confirmation can say 'filed' when the EHR
    answers; other submissions are the outbox runner's (a submit must not file everyone's rows)."""
    factory = current_app.extensions["itb.client_factory"]
    run_once(
        get_db(),
        factory,
        now=datetime.now(UTC),
        owner=f"web-{uuid.uuid4().hex[:8]}",
        submission_id=submission_id,
    )


@bp.get("/changes/<change_id>")
def confirmation(change_id: str) -> ResponseReturnValue:
    """Show exactly what was filed, queued or refused for one dose change."""
    launch = current_launch()
    with get_db().session() as session:
        record = session.get(DoseChangeRecord, change_id)
        if record is None or record.launch_id != launch.id:
            return render_template("error.html", message="No such dose change in this launch."), 404
        status = submission_status(session, record.outbox_submission_id)
    return render_template(
        "confirmation.html", record=record, status=status, csrf_token=csrf_token(launch.id)
    )


@bp.post("/changes/<change_id>/retry")
def retry_change(change_id: str) -> ResponseReturnValue:
    """Retry the refused parts of a dose change at the person's explicit request."""
    launch = current_launch()
    require_csrf(launch.id)
    with get_db().session() as session:
        record = session.get(DoseChangeRecord, change_id)
        if record is None or record.launch_id != launch.id:
            return render_template("error.html", message="No such dose change in this launch."), 404
        for item in submission_status(session, record.outbox_submission_id).items:
            if item.status == "failed":
                retry(session, item.id)
        submission_id = record.outbox_submission_id
    send_now(submission_id)
    audit_filing(launch, record)
    return redirect(url_for("notes.confirmation", change_id=change_id), code=303)
