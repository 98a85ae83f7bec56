"""Assemble every resource of one dose-change submission, in the order they must be filed."""

from __future__ import annotations

from typing import Any

from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import NoteInput, render_note
from plugin.writeback.questionnaire import questionnaire_response
from plugin.writeback.resources import (
    WriteBackSettings,
    WriteContext,
    build_detected_issue,
    build_document_reference,
    build_provenance,
    new_write_id,
    placeholder,
    validate_resource,
    write_identifier,
)


def build_questionnaire_response(
    note: NoteInput, *, write_id: str, context: WriteContext, settings: WriteBackSettings
) -> dict[str, Any]:
    """Return the filled template as a QuestionnaireResponse carrying the write identifier."""
    response = questionnaire_response(
        note,
        subject_reference=context.patient_reference,
        author_reference=context.author_reference,
        authored=context.now,
        encounter_reference=f"Encounter/{context.encounter_id}" if context.encounter_id else None,
        templates_dir=settings.templates_dir,
    )
    response["identifier"] = write_identifier(write_id)  # 0..1 in R4, not a list
    return validate_resource(response)


def build_submission(
    note: NoteInput, *, context: WriteContext, settings: WriteBackSettings
) -> list[dict[str, Any]]:
    """Return the note (DocumentReference) first, then DetectedIssues, QuestionnaireResponse, Provenance."""
    if note.check_result.get("patient") != context.patient_reference:
        # The check must be about the launch's patient: never file one patient's check on another chart.
        raise WriteBackInputError("the check result is about another patient than the launch")
    rendered = render_note(note, templates_dir=settings.templates_dir)
    doc_id = new_write_id()
    resources = [build_document_reference(rendered, write_id=doc_id, context=context, settings=settings)]
    targets = [placeholder(doc_id)]
    if settings.detected_issues:
        for finding in note.findings:
            issue_id = new_write_id()
            resources.append(build_detected_issue(note, finding, write_id=issue_id, context=context))
            targets.append(placeholder(issue_id))
    if settings.questionnaire_response:
        response_id = new_write_id()
        resources.append(
            build_questionnaire_response(note, write_id=response_id, context=context, settings=settings)
        )
        targets.append(placeholder(response_id))
    if settings.provenance and context.author_reference:
        resources.append(build_provenance(write_id=new_write_id(), targets=targets, context=context))
    return resources
