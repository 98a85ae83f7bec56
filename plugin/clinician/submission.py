"""Turn a checked proposal and the clinician's answers into a documented, queued dose change.

The check is always re-run here on the server's chart: what the browser showed is never trusted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from plugin.clinician.models import DoseChangeRecord
from plugin.clinician.picture import build_picture
from plugin.domain.chart import Chart
from plugin.domain.result import CheckResult, Verdict
from plugin.domain.rules_config import Rules
from plugin.domain.rules_reservoir import pump_concentration, reservoir_projection
from plugin.launches.models import Launch
from plugin.verification.queue import on_dose_change_submitted
from plugin.writeback.codes import override_reason_display
from plugin.writeback.note import NoteInput
from plugin.writeback.outbox import enqueue_submission
from plugin.writeback.resources import WriteBackSettings, WriteContext
from plugin.writeback.submission import build_submission

OVERRIDE_VERDICTS = (Verdict.WARN, Verdict.BLOCK, Verdict.CANNOT_CHECK)


class SubmissionFormError(ValueError):
    """What the clinician must still fill in before the note can be filed (one plain sentence)."""


@dataclass(frozen=True, slots=True)
class NoteAnswers:
    """The clinician's free-text answers and override, as typed."""

    rationale: str = ""
    side_effects_reviewed: str = ""
    education_given: bool = False
    rescue_plan: str = ""
    monitoring_plan: str = ""
    override_reason: str = ""
    override_comment: str = ""
    attested: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> NoteAnswers:
        """Read the answers from form data."""
        return cls(
            rationale=(data.get("rationale") or "").strip(),
            side_effects_reviewed=(data.get("side_effects_reviewed") or "").strip(),
            education_given=data.get("education_given") == "yes",
            rescue_plan=(data.get("rescue_plan") or "").strip(),
            monitoring_plan=(data.get("monitoring_plan") or "").strip(),
            override_reason=(data.get("override_reason") or "").strip(),
            override_comment=(data.get("override_comment") or "").strip(),
            attested=data.get("attest") == "yes",
        )


def require_override(result: CheckResult, answers: NoteAnswers) -> None:
    """Refuse a warn, block or cannot-check without a coded reason and comment (and attestation for block)."""
    if result.verdict not in OVERRIDE_VERDICTS:
        return
    if not answers.override_reason or override_reason_display(answers.override_reason) is None:
        raise SubmissionFormError("This change needs a coded override reason: choose one from the list.")
    if not answers.override_comment:
        raise SubmissionFormError("Add a comment explaining the override.")
    if result.verdict is Verdict.BLOCK and not answers.attested:
        raise SubmissionFormError(
            "A blocked change needs your explicit attestation: tick the box to confirm."
        )


def chart_summary(chart: Chart, result: CheckResult, rules: Rules, now: datetime) -> dict[str, Any]:
    """Return the note's reservoir and score numbers, the alarm date at the *new* dose."""
    concentration, _ = pump_concentration(chart)
    pump = chart.pump
    projection = None
    if pump is not None:
        projection = reservoir_projection(
            pump, result.current_daily_dose_ug, result.proposed_daily_dose_ug, concentration, now, rules
        )
    picture = build_picture(chart, rules, now)
    return {
        "concentration_ug_per_ml": concentration,
        "reservoir_volume_ml": pump.fill_volume_ml if pump else None,
        "volume_remaining_ml": projection.remaining_volume_ml if projection else None,
        "alarm_volume_ml": projection.low_reservoir_alarm_volume_ml if projection else None,
        "low_reservoir_alarm_date": projection.low_reservoir_alarm_date if projection else None,
        "next_refill_date": pump.next_refill_date if pump else None,
        "scores": [
            {"code": s.code, "display": s.display, "effective": s.effective, "source": s.source}
            for s in picture.latest_scores
        ],
    }


def note_input(
    chart: Chart, result: CheckResult, answers: NoteAnswers, launch: Launch, rules: Rules, now: datetime
) -> NoteInput:
    """Assemble everything the note says."""
    return NoteInput(
        check_result=result.to_json(),
        chart_summary=chart_summary(chart, result, rules, now),
        rationale=answers.rationale,
        side_effects_reviewed=answers.side_effects_reviewed,
        education_given=answers.education_given,
        rescue_plan=answers.rescue_plan,
        monitoring_plan=answers.monitoring_plan,
        author_display=launch.fhir_user or "the launching user",
        patient_display=chart.patient.name or chart.patient.reference,
        override_reason_code=answers.override_reason or None,
        override_reason_display=override_reason_display(answers.override_reason)
        if answers.override_reason
        else None,
        override_comment=answers.override_comment or None,
        # The attestation checkbox belongs to a block only: a stray "attest" on another verdict
        # must not make the note or the DetectedIssues claim an attestation.
        attested=answers.attested and result.verdict is Verdict.BLOCK,
        documented_at=now,
    )


def submit_dose_change(
    session: Session,
    *,
    submit_key: str,
    launch: Launch,
    note: NoteInput,
    note_text: str,
    result: CheckResult,
    capabilities: Mapping[str, Any],
    settings: WriteBackSettings,
    now: datetime,
) -> tuple[DoseChangeRecord, bool]:
    """Queue the note and check for the EHR and record the dose change, once per submit key; return the
    record and whether this call created it."""
    existing = session.get(DoseChangeRecord, submit_key)
    if existing is not None:
        return existing, False  # a double click or a retried POST: the first submission stands
    context = WriteContext(launch.iss, str(launch.patient_id), launch.fhir_user, launch.encounter_id, now)
    resources = build_submission(note, context=context, settings=settings)
    submission_id = enqueue_submission(
        session,
        launch_id=launch.id,
        iss=launch.iss,
        patient_id=str(launch.patient_id),
        resources=resources,
        capabilities=capabilities,
        author_ref=launch.fhir_user,
        now=now,
    )
    record = DoseChangeRecord(
        id=submit_key,
        launch_id=launch.id,
        iss=launch.iss,
        patient_id=str(launch.patient_id),
        prescriber=launch.fhir_user,
        submitted_at=now,
        current_dose_ug_per_day=result.current_daily_dose_ug,
        proposed_dose_ug_per_day=result.proposed_daily_dose_ug,
        verdict=result.verdict.value,
        finding_codes=json.dumps([f.code for f in result.findings]),
        check_json=json.dumps(result.to_json()),
        note_text=note_text,
        override_reason_code=note.override_reason_code,
        override_comment=note.override_comment,
        attested=note.attested,
        outbox_submission_id=submission_id,
        status="proposed",
    )
    session.add(record)
    on_dose_change_submitted(session, record, note)  # older proposals of this patient are superseded
    return record, True
