"""Fill the dose-change Questionnaire (config/templates) from a ``NoteInput`` as an R4 QuestionnaireResponse.

The response is built by walking the Questionnaire's own items, so a site that edits item texts gets
them echoed in the response, and the answer type always matches the item type.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from plugin.writeback.codes import (
    FINDING_SYSTEM,
    OVERRIDE_REASON_SYSTEM,
    TEMPLATES_DIR,
    VERDICT_SYSTEM,
)
from plugin.writeback.note import NoteInput, check_note_input, note_context

QUESTIONNAIRE_FILE = "dose-change-questionnaire.json"


def load_questionnaire(templates_dir: Path | None = None) -> dict[str, Any]:
    """Return the site's dose-change Questionnaire."""
    path = (templates_dir or TEMPLATES_DIR) / QUESTIONNAIRE_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _coding(system: str, code: str | None, display: str | None = None) -> dict[str, str] | None:
    """Return a Coding, or None when there is no code."""
    if not code:
        return None
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _answer_values(note: NoteInput) -> dict[str, Any]:
    """Return the answer for every non-repeating linkId (None when unknown)."""
    ctx = note_context(note)
    option_system = "http://itb-dose-check.org/CodeSystem/"
    return {
        "current-dose-ug-per-d": ctx["current_dose_ug_per_d"],
        "current-dose-ug-per-h": ctx["current_dose_ug_per_h"],
        "new-dose-ug-per-d": ctx["new_dose_ug_per_d"],
        "new-dose-ug-per-h": ctx["new_dose_ug_per_h"],
        "change-percent": ctx["change_percent"],
        "phase": _coding(option_system + "phase", ctx["phase"], ctx["phase"]),
        "origin": _coding(option_system + "origin", ctx["origin"], ctx["origin"]),
        "concentration-ug-per-ml": ctx["concentration_ug_per_ml"],
        "reservoir-volume-ml": ctx["reservoir_volume_ml"],
        "volume-remaining-ml": ctx["volume_remaining_ml"],
        "alarm-volume-ml": ctx["alarm_volume_ml"],
        "low-reservoir-alarm-date": ctx["low_reservoir_alarm_date"],
        "next-refill-date": ctx["next_refill_date"],
        "rationale": ctx["rationale"],
        "side-effects-reviewed": ctx["side_effects_reviewed"],
        "education-given": ctx["education_given"],
        "rescue-plan": ctx["rescue_plan"],
        "monitoring-plan": ctx["monitoring_plan"],
        "verdict": _coding(VERDICT_SYSTEM, ctx["verdict"], ctx["verdict"]),
        # Asked for a block only (enableWhen in the Questionnaire): a warn override is not attested.
        "attested": ctx["attested"] if ctx["verdict"] == "block" else None,
        "override-reason": _coding(
            OVERRIDE_REASON_SYSTEM, ctx["override_reason_code"], ctx["override_reason_display"]
        )
        if ctx["needs_override"]
        else None,
        "override-comment": ctx["override_comment"] if ctx["needs_override"] else None,
    }


def _repeats(note: NoteInput) -> dict[str, list[dict[str, Any]]]:
    """Return the values of each repeating group: one dict of linkId -> value per occurrence."""
    ctx = note_context(note)
    return {
        "score": [
            {"score-code": s["code"], "score-value": s["display"], "score-date": s["effective"]}
            for s in ctx["scores"]
        ],
        "finding": [
            {"finding-code": _coding(FINDING_SYSTEM, f["code"]), "finding-message": f["message"]}
            for f in ctx["findings"]
        ],
    }


def _answer(item_type: str, value: Any) -> dict[str, Any] | None:
    """Return one QuestionnaireResponse answer of the item's type, or None for a missing value."""
    if value is None or value == "":
        return None
    if item_type == "boolean":
        return {"valueBoolean": bool(value)}
    if item_type == "decimal":
        return {"valueDecimal": round(float(value), 4)}
    if item_type == "integer":
        return {"valueInteger": int(value)}
    if item_type == "date":
        if isinstance(value, datetime):
            value = value.date()
        return {"valueDate": value.isoformat() if isinstance(value, date) else str(value)[:10]}
    if item_type == "dateTime":
        if isinstance(value, datetime):
            return {"valueDateTime": value.isoformat()}
        return {"valueDateTime": value.isoformat() if isinstance(value, date) else str(value)}
    if item_type in ("choice", "open-choice"):
        return {"valueCoding": value} if isinstance(value, dict) else {"valueString": str(value)}
    return {"valueString": str(value)}


def _fill(
    items: list[dict[str, Any]], values: dict[str, Any], repeats: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Return response items for these Questionnaire items; unanswered items and empty groups are left out."""
    filled: list[dict[str, Any]] = []
    for item in items:
        link_id = item["linkId"]
        base = {"linkId": link_id, "text": item["text"]} if item.get("text") else {"linkId": link_id}
        if item["type"] == "group":
            occurrences = repeats.get(link_id) if item.get("repeats") else [values]
            for occurrence in occurrences or ():
                children = _fill(item.get("item", []), {**values, **occurrence}, repeats)
                if children:
                    filled.append({**base, "item": children})
        elif item["type"] != "display":
            answer = _answer(item["type"], values.get(link_id))
            if answer is not None:
                filled.append({**base, "answer": [answer]})
    return filled


def questionnaire_response(
    note: NoteInput,
    *,
    subject_reference: str,
    author_reference: str | None,
    authored: datetime,
    encounter_reference: str | None = None,
    templates_dir: Path | None = None,
) -> dict[str, Any]:
    """Return a completed QuestionnaireResponse (validated with R4B) for the dose-change note."""
    check_note_input(note)
    if authored.tzinfo is None:
        raise ValueError("authored must be timezone-aware")
    questionnaire = load_questionnaire(templates_dir)
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": subject_reference, "display": note.patient_display},
        "authored": authored.isoformat(),
        "item": _fill(questionnaire["item"], _answer_values(note), _repeats(note)),
    }
    if author_reference:
        response["author"] = {"reference": author_reference, "display": note.author_display}
    if encounter_reference:
        response["encounter"] = {"reference": encounter_reference}
    validated = QuestionnaireResponse.model_validate(response)
    dumped: dict[str, Any] = validated.model_dump(mode="json", exclude_none=True)
    return dumped
