"""The pharmacist's verification note and the FHIR resources that file it through the outbox.

The note is rendered from its own site-editable templates (``config/templates/pharmacist-verification-
note.txt.j2`` and ``.html.j2``) and filed as a DocumentReference that ``appends`` the clinician's note,
with a Provenance naming the pharmacist as ``verifier``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from plugin.verification.compare import Calculation, CheckDiff
from plugin.writeback.codes import (
    DATA_OPERATION,
    PROVENANCE_PARTICIPANT,
    TEMPLATES_DIR,
    WRITE_IDENTIFIER_SYSTEM,
)
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import RenderedNote, _environment
from plugin.writeback.resources import (
    WriteBackSettings,
    WriteContext,
    build_document_reference,
    new_write_id,
    placeholder,
    validate_resource,
)

TEXT_TEMPLATE = "pharmacist-verification-note.txt.j2"
HTML_TEMPLATE = "pharmacist-verification-note.html.j2"
OUTCOMES = {"verify": "VERIFIED", "reject": "REJECTED", "undo": "VERIFICATION WITHDRAWN"}
TITLE = "Pharmacist verification of an intrathecal baclofen dose change"


@dataclass(frozen=True, slots=True)
class ClinicianNote:
    """The clinician's note in the EHR: its write id (always known) and server id (once filed)."""

    write_id: str
    server_id: str | None

    @property
    def reference(self) -> str | None:
        """Return ``DocumentReference/{id}`` once the EHR has named it."""
        return f"DocumentReference/{self.server_id}" if self.server_id else None


@dataclass(frozen=True, slots=True)
class VerificationNoteInput:
    """Everything the verification note says."""

    action: str  # verify | reject | undo
    pharmacist: str
    patient: str
    decided_at: datetime
    change_id: str
    prescriber: str | None
    submitted_at: datetime
    submitted_check: dict[str, Any]
    rerun_check: dict[str, Any] | None
    diff: CheckDiff | None
    calculation: Calculation
    reason: str | None
    comment: str | None
    clinician_note: ClinicianNote | None


def note_context(note: VerificationNoteInput) -> dict[str, Any]:
    """Return the template variables."""
    calc = note.calculation
    submitted = note.submitted_check
    return {
        "outcome": OUTCOMES[note.action],
        "action": note.action,
        "pharmacist": note.pharmacist,
        "patient": note.patient,
        "decided_at": note.decided_at,
        "change_id": note.change_id,
        "prescriber": note.prescriber or "unknown",
        "submitted_at": note.submitted_at,
        "clinician_note": (note.clinician_note.reference or "not yet filed")
        if note.clinician_note
        else "unknown",
        "current_dose_ug_per_d": calc.current_ug_per_day,
        "current_dose_ug_per_h": calc.current_ug_per_hour,
        "new_dose_ug_per_d": calc.proposed_ug_per_day,
        "new_dose_ug_per_h": calc.proposed_ug_per_hour,
        "change_percent": submitted.get("change_percent"),
        "submitted_verdict": submitted.get("verdict"),
        "submitted_findings": list(submitted.get("findings") or ()),
        "rerun": note.rerun_check is not None,
        "rerun_verdict": (note.rerun_check or {}).get("verdict"),
        "rerun_at": (note.rerun_check or {}).get("evaluated_at"),
        "differences": _differences(note.diff),
        "concentration_ug_per_ml": calc.concentration_ug_per_ml,
        "current_ml_per_d": calc.current_ml_per_day,
        "new_ml_per_d": calc.proposed_ml_per_day,
        "days_to_alarm": calc.days_to_alarm,
        "alarm_date": calc.alarm_date,
        "next_refill_date": calc.next_refill_date,
        "calc_as_of": calc.as_of,
        "reason": note.reason,
        "comment": note.comment,
    }


def _differences(diff: CheckDiff | None) -> list[str]:
    """Return the re-run's differences as short lines."""
    if diff is None:
        return []
    lines = []
    if diff.verdict_changed:
        lines.append(f"verdict {diff.verdict_before} -> {diff.verdict_after}")
    if diff.current_changed:
        lines.append(f"current dose {diff.current_before} -> {diff.current_after} ug/d")
    lines += [f"new finding {f.get('code')} ({f.get('severity')})" for f in diff.added]
    lines += [f"finding no longer present {f.get('code')}" for f in diff.removed]
    lines += [f"finding {code}: {old} -> {new}" for code, old, new in diff.severity_changed]
    return lines


def render_verification_note(
    note: VerificationNoteInput, *, templates_dir: Path | None = None
) -> RenderedNote:
    """Render the verification note as text and HTML; reject and undo need a reason."""
    if note.action not in OUTCOMES:
        raise WriteBackInputError(f"unknown verification action {note.action!r}")
    if note.action in ("reject", "undo") and not (note.reason or "").strip():
        raise WriteBackInputError(f"a {note.action} needs a reason")
    env = _environment(templates_dir or TEMPLATES_DIR)
    context = note_context(note)
    return RenderedNote(
        text=env.get_template(TEXT_TEMPLATE).render(context),
        html=env.get_template(HTML_TEMPLATE).render(context),
    )


def relates_to(clinician_note: ClinicianNote) -> dict[str, Any]:
    """Return the ``appends`` relation to the clinician's note (by server id and by its write identifier)."""
    target: dict[str, Any] = {
        "identifier": {"system": WRITE_IDENTIFIER_SYSTEM, "value": clinician_note.write_id}
    }
    if clinician_note.reference:
        target["reference"] = clinician_note.reference
    return {"code": "appends", "target": target}


def build_verifier_provenance(*, write_id: str, targets: list[str], context: WriteContext) -> dict[str, Any]:
    """Return a Provenance naming the pharmacist as ``verifier`` of ``targets``."""
    if not context.author_reference:
        raise WriteBackInputError("a verification needs the pharmacist's fhirUser")
    return validate_resource(
        {
            "resourceType": "Provenance",
            "meta": {"tag": [{"system": WRITE_IDENTIFIER_SYSTEM, "code": write_id}]},
            "target": [{"reference": target} for target in targets],
            "recorded": context.now.isoformat(),
            "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}]},
            "agent": [
                {
                    "type": {
                        "coding": [
                            {"system": PROVENANCE_PARTICIPANT, "code": "verifier", "display": "Verifier"}
                        ]
                    },
                    "who": {"reference": context.author_reference},
                }
            ],
        }
    )


def build_verification_resources(
    rendered: RenderedNote,
    *,
    action: str,
    clinician_note: ClinicianNote | None,
    context: WriteContext,
    settings: WriteBackSettings,
) -> list[dict[str, Any]]:
    """Return the verification DocumentReference (appending the clinician's note), then its Provenance."""
    doc_id = new_write_id()
    note_settings = replace(settings, note_title=f"{TITLE}: {OUTCOMES[action].lower()}")
    document = build_document_reference(rendered, write_id=doc_id, context=context, settings=note_settings)
    if clinician_note is not None:
        document["relatesTo"] = [relates_to(clinician_note)]
    resources = [validate_resource(document)]
    if settings.provenance and context.author_reference:
        targets = [placeholder(doc_id)]
        if clinician_note is not None and clinician_note.reference:
            targets.append(clinician_note.reference)
        resources.append(build_verifier_provenance(write_id=new_write_id(), targets=targets, context=context))
    return resources
