"""Note preview, submission and the truthful confirmation of what reached the EHR.

Nothing the clinician submitted is lost: once a note has been previewed, pressing submit stores it in
the outbox even when the EHR is down or slow. The chart comes from the per-launch cache, or from the EHR
within ``CHART_READ_BUDGET_SECONDS``, or else from the copy the preview was built on; the EHR's
CapabilityStatement is waited for at most ``CAPABILITIES_BUDGET_SECONDS`` (without it every row is queued
and the sender decides what the EHR can store when it sends); and the first attempt to file waits at
most ``SEND_BUDGET_SECONDS``, leaving the rest to the outbox runner. The budgets together stay well
under the gunicorn worker timeout (``WORKER_TIMEOUT_SECONDS``, 60 s) whatever the EHR does.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from plugin.audit.app_events import audit, entry
from plugin.audit.log import AuditEntry, audited_session
from plugin.clinician.charts import cached_chart, chart_for_launch, previewed_chart, remember_preview
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
from plugin.writeback.note import NoteInput, render_note
from plugin.writeback.outbox import retry, submission_status
from plugin.writeback.resources import WriteBackSettings
from plugin.writeback.sender import run_once
from smart_launch.fhir_client import FhirError

bp = launch_blueprint("notes", __name__)
log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a preview or submit waits for the EHR (seconds). An EHR read can take the client's 20 s read
# timeout several times over (GETs are retried), so each wait is bounded; the work itself goes on in the
# background (a chart read then fills the cache, a send finishes the row it holds the lease of).
CHART_READ_BUDGET_SECONDS = 15.0  # a healthy EHR returns the chart in a few seconds
CAPABILITIES_BUDGET_SECONDS = 5.0  # usually cached for an hour: the chart read fetched it
SEND_BUDGET_SECONDS = 5.0  # the first attempt to file; the outbox runner retries whatever is left

# What the outbox is told the EHR can store when the EHR cannot say: every type the app writes. The
# sender reads the real CapabilityStatement before a row's first send and holds what the EHR cannot store.
_WRITTEN_TYPES = ("DocumentReference", "DetectedIssue", "QuestionnaireResponse", "Provenance")
DECIDE_WHEN_SENDING: Mapping[str, Any] = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "mode": "server",
            "resource": [{"type": t, "interaction": [{"code": "create"}]} for t in _WRITTEN_TYPES],
        }
    ],
}

_background: set[threading.Thread] = set()
_background_lock = threading.Lock()


class NoChart(Exception):
    """The EHR cannot be read and neither this process nor the app's database has the previewed chart."""


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
    submit_key: str  # as posted ("" from the clinician page, before the first preview)
    from_preview: bool  # the chart is the preview's copy: the EHR could not be read


def posted() -> Posted:
    """Re-run the check for the posted proposal (after the CSRF check) and read the answers.

    Raises NoChart when the EHR cannot be read and there is no previewed chart to fall back on.
    """
    launch = current_launch()
    require_csrf(launch.id)
    submit_key = request.form.get("submit_key") or ""
    chart, from_preview = _chart_for_note(launch, submit_key)
    form = ProposalForm.from_mapping(request.form)
    now = datetime.now(UTC)
    result, form_error = run_check(chart, form, now)
    answers = NoteAnswers.from_mapping(request.form)
    return Posted(launch, chart, form, result, form_error, answers, now, submit_key, from_preview)


def _chart_for_note(launch: Launch, submit_key: str) -> tuple[Chart, bool]:
    """Return the chart to build the note on, and whether it is the preview's copy.

    The cached chart while fresh, else a fresh read within CHART_READ_BUDGET_SECONDS; when the EHR does
    not answer, the chart this note's preview was built on (so the note filed is the one previewed).
    """
    chart = cached_chart(launch.id)
    if chart is not None:
        return chart, False
    try:
        return _bounded(
            lambda: chart_for_launch(launch.id, str(launch.patient_id)), CHART_READ_BUDGET_SECONDS, "chart"
        ), False
    except FhirError as error:
        kept = previewed_chart(launch.id, submit_key)
        if kept is None:
            raise NoChart(
                f"The EHR could not be read ({error.safe_message}) and ITB Dose Check has no copy of the chart "
                "this note needs, so nothing was filed. Your text is kept below: preview it again in a "
                "few minutes."
            ) from None
        log.warning(
            "EHR unreadable; using the chart the preview was built on",
            extra={"event": "chart.preview_copy", "status": error.status},
        )
        return kept, True


@bp.post("/preview")
def preview() -> ResponseReturnValue:
    """Show the rendered note with its editable fields, once the override rules are met."""
    try:
        post = posted()
    except NoChart as refusal:
        return _not_filed(str(refusal))
    if post.result is None:
        return render_page(post.form, status=422)
    try:
        require_override(post.result, post.answers)
    except SubmissionFormError as error:
        return render_page(post.form, status=422, form_error=str(error), answers=post.answers)
    notice = PREVIEW_COPY if post.from_preview else None
    return _preview_page(post, post.result, post.submit_key or str(uuid.uuid4()), notice=notice)


def _preview_page(
    post: Posted, result: CheckResult, submit_key: str, *, notice: str | None = None, status: int = 200
) -> ResponseReturnValue:
    """Render the preview of the note built on ``post.chart``, and keep that chart for the submit."""
    remember_preview(post.launch, submit_key, post.chart, now=post.now)
    note = note_input(post.chart, result, post.answers, post.launch, load_rules(), post.now)
    values = {
        "form": post.form,
        "answers": post.answers,
        "result": result,
        "note": render_note(note, draft=True),
        "submit_key": submit_key,
        "csrf_token": csrf_token(post.launch.id),
        "override_reasons": override_reasons(),
    }
    if notice is None:
        return render_template("preview.html", **values), status
    return render_template("preview_notice.html", notice=notice, **values), status


@bp.post("/submit")
def submit() -> ResponseReturnValue:
    """File the note and the check: queue them, try to send now, and show what happened."""
    launch = current_launch()
    require_csrf(launch.id)
    earlier = _earlier_submission(launch)
    if earlier is not None:  # a double click, or a POST retried after a timeout: the first one stands
        return redirect(url_for("notes.confirmation", change_id=earlier), code=303)
    try:
        post = posted()
    except NoChart as refusal:
        return _not_filed(str(refusal))
    if post.result is None:
        return render_page(post.form, status=422)
    try:
        note = note_input(post.chart, post.result, post.answers, post.launch, load_rules(), post.now)
        if not post.from_preview and _changed_since_preview(post, note):
            return _preview_page(post, post.result, post.submit_key, notice=CHART_CHANGED, status=409)
        require_override(post.result, post.answers)
        submit_key = _submit_key()
        capabilities = _capabilities_for_queue(post.launch)
        # The dose change, its outbox rows and its audit records commit together: a process killed in
        # between cannot leave a change that the audit log does not show.
        with audited_session(get_db(), now=post.now) as write:
            record, first = submit_dose_change(
                write.session,
                submit_key=submit_key,
                launch=post.launch,
                note=note,
                note_text=render_note(note).text,
                result=post.result,
                capabilities=capabilities,
                settings=writeback_settings(),
                now=post.now,
            )
            if first:  # not a retried POST: the first submission stands, and it alone is audited
                write.entries.extend(
                    submission_entries(
                        post.launch, record, post.result, post.answers, from_preview=post.from_preview
                    )
                )
    except (SubmissionFormError, WriteBackInputError) as error:
        return render_page(post.form, status=422, form_error=str(error), answers=post.answers)
    log.info(
        "dose change submitted",
        extra={
            "event": "dose_change.submitted",
            "verdict": post.result.verdict.value,
            "chart": "preview copy" if post.from_preview else "ehr",
        },
    )
    send_now(record.outbox_submission_id)
    if first:  # a retried POST that found the first submission stored tells the log nothing new
        audit_filing(post.launch, record)
    return redirect(url_for("notes.confirmation", change_id=record.id), code=303)


PREVIEW_COPY = (
    "The EHR is not answering: this preview uses the chart of your earlier preview. Filing saves the note "
    "here, and it is sent to the EHR when the EHR answers again."
)
CHART_CHANGED = (
    "The patient's chart changed in the EHR since your preview, so nothing was filed. The check and the "
    "note below are updated: review them, then file again."
)


def _earlier_submission(launch: Launch) -> str | None:
    """Return the id of the dose change already filed under the posted submit key in this launch."""
    key = request.form.get("submit_key") or ""
    if not key:
        return None
    with get_db().session() as session:
        record = session.get(DoseChangeRecord, key)
        return record.id if record is not None and record.launch_id == launch.id else None


def _changed_since_preview(post: Posted, note: NoteInput) -> bool:
    """Whether a chart read since the preview makes a different note than the one previewed (both are
    built now, so only the chart can differ); False when neither this process nor the database has the
    previewed chart."""
    kept = previewed_chart(post.launch.id, post.submit_key)
    if kept is None or kept is post.chart:
        return False
    previewed, _ = run_check(kept, post.form, post.now)
    if previewed is None:
        return True
    return note_input(kept, previewed, post.answers, post.launch, load_rules(), post.now) != note


def _capabilities_for_queue(launch: Launch) -> Mapping[str, Any]:
    """Return the EHR's CapabilityStatement, or DECIDE_WHEN_SENDING when it does not give one in time."""
    client = fhir_client_for_launch(launch.id)
    try:
        return _bounded(client.capabilities, CAPABILITIES_BUDGET_SECONDS, "capabilities")
    except FhirError as error:
        log.warning(
            "EHR capabilities unavailable at submit; the sender decides what the EHR can store",
            extra={"event": "ehr.capabilities_unavailable", "status": error.status},
        )
        return DECIDE_WHEN_SENDING


def _not_filed(message: str) -> ResponseReturnValue:
    """Refuse for now, with the reason and the clinician's text in a form to preview again (503)."""
    form = request.form
    hidden = [
        (name, form.get(name, ""))
        for name in (
            "submit_key",
            "dose_value",
            "dose_mode",
            "phase",
            "origin",
            "origin_reason",
            "override_reason",
            "override_comment",
        )
    ]
    if form.get("attest") == "yes":
        hidden.append(("attest", "yes"))
    texts = [(name, label, form.get(name, "")) for name, label in _NOTE_TEXTS]
    page = render_template(
        "not_filed.html",
        message=message,
        hidden=hidden,
        texts=texts,
        education_given=form.get("education_given") == "yes",
        csrf_token=csrf_token(current_launch().id),
    )
    return page, 503, {"Retry-After": "60"}


_NOTE_TEXTS = (
    ("rationale", "Rationale"),
    ("side_effects_reviewed", "Side effects reviewed"),
    ("rescue_plan", "Oral baclofen rescue plan"),
    ("monitoring_plan", "Monitoring plan"),
)


def submission_entries(
    launch: Launch,
    record: DoseChangeRecord,
    result: CheckResult,
    answers: NoteAnswers,
    *,
    from_preview: bool = False,
) -> list[AuditEntry]:
    """Return the audit entries of a submission: the check, the proposal and any override."""
    related = [f"DoseChange/{record.id}"]
    detail: dict[str, object] | None = (
        {"chart": "the preview's copy: the EHR did not answer at submit"} if from_preview else None
    )
    entries = [
        entry(launch, "check.run", result=result, related=related, detail=detail),
        entry(launch, "dose-change.propose", result=result, related=related),
    ]
    if answers.override_reason:
        entries.append(
            entry(
                launch,
                "dose-change.override",
                result=result,
                related=related,
                override_code=answers.override_reason,
                override_text=answers.override_comment,
            )
        )
    return entries


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
    answers; other submissions are the outbox runner's (a submit must not file everyone's rows).

    The rows are already committed. The attempt gets SEND_BUDGET_SECONDS: no row is claimed after that,
    the row being sent then is finished in the background under its lease, and the outbox runner files
    the rest (the confirmation says so)."""
    factory = current_app.extensions["itb.client_factory"]
    db = get_db()
    deadline = time.monotonic() + SEND_BUDGET_SECONDS
    owner = f"web-{uuid.uuid4().hex[:8]}"

    def attempt() -> None:
        run_once(
            db, factory, now=datetime.now(UTC), owner=owner, submission_id=submission_id, deadline=deadline
        )

    try:
        _bounded(attempt, SEND_BUDGET_SECONDS, "send")
    except FhirError:
        log.info("the EHR is slow: the outbox files the rest", extra={"event": "writeback.left_to_runner"})
    except Exception as exc:  # the rows are safe in the outbox; the confirmation shows their state
        # Only the type: database errors can quote statement parameters (the note itself).
        log.error("first attempt to file failed: %s", type(exc).__name__)


def _bounded(work: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``work`` (with the app context) for at most ``seconds``: return its result or raise its error;
    raise FhirError (status 0) when it takes longer; it then finishes in the background."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    outcome: list[tuple[bool, Any]] = []
    done, gave_up = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with app.app_context():
                outcome.append((True, work()))
        except Exception as exc:  # handed to the request, or logged when it no longer waits
            outcome.append((False, exc))
            if gave_up.is_set():
                log.warning("background EHR %s failed: %s", what, type(exc).__name__)
        finally:
            done.set()
            with _background_lock:
                _background.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=f"itb-{what}", daemon=True)
    with _background_lock:
        _background.add(thread)
    thread.start()
    if not done.wait(seconds):
        gave_up.set()
        log.warning(
            "the EHR %s takes longer than %.1f s; going on without it",
            what,
            seconds,
            extra={"event": "ehr.too_slow"},
        )
        raise FhirError(0, f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result


def wait_for_background(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for EHR work that requests stopped waiting for; True when none is
    left (for tests and an orderly shutdown)."""
    end = time.monotonic() + timeout
    while True:
        with _background_lock:
            threads = list(_background)
        if not threads:
            return True
        remaining = end - time.monotonic()
        if remaining <= 0:
            return False
        threads[0].join(remaining)


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
