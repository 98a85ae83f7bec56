"""Build the FHIR R4 resources one dose-change submission writes, validated with ``fhir.resources.R4B``.

Every resource carries an app-minted identifier (``WRITE_IDENTIFIER_SYSTEM`` | UUID4) that becomes its
outbox row id, so retries are idempotent. References between resources of one submission are written as
``urn:uuid:<write id>`` placeholders (as in a transaction Bundle); the outbox replaces them with the
server's ids once those are known, because neither Epic nor Oracle Health accepts transactions.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from plugin.writeback.codes import (
    DATA_OPERATION,
    FINDING_SYSTEM,
    LOINC,
    MITIGATION_SYSTEM,
    NOTE_TYPES,
    OVERRIDE_REASON_SYSTEM,
    PROVENANCE_PARTICIPANT,
    US_CORE_DOC_CATEGORY,
    WRITE_IDENTIFIER_SYSTEM,
)
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import NoteInput, RenderedNote

PLACEHOLDER_PREFIX = "urn:uuid:"
# DetectedIssue.severity from the finding's severity (cannot-check is shown like a warning, CONTRACT §6).
ISSUE_SEVERITY = {"block": "high", "warn": "moderate", "cannot-check": "moderate", "info": "low"}
OVERRIDABLE = frozenset({"block", "warn", "cannot-check"})
# Types without an identifier element in R4: their write id is a meta.tag instead.
TAGGED_TYPES = frozenset({"Provenance"})


@dataclass(frozen=True, slots=True)
class WriteContext:
    """Who writes about whom, from the launch: patient id, fhirUser, encounter in context, and when."""

    iss: str
    patient_id: str
    fhir_user: str | None
    encounter_id: str | None
    now: datetime

    @property
    def patient_reference(self) -> str:
        """Return ``Patient/{id}``."""
        return f"Patient/{self.patient_id}"

    @property
    def author_reference(self) -> str | None:
        """Return fhirUser relative to the server (Epic sends an absolute URL)."""
        return relative_reference(self.fhir_user, self.iss) if self.fhir_user else None


@dataclass(frozen=True, slots=True)
class WriteBackSettings:
    """Site choices for the note: its LOINC type, title, and which extra resources to write."""

    note_type_loinc: str = "11506-3"
    note_type_display: str | None = None
    note_title: str = "Intrathecal baclofen dose change"
    html_attachment: bool = True  # Oracle Health keeps one content entry; Epic keeps the first
    detected_issues: bool = True
    questionnaire_response: bool = True
    provenance: bool = True
    templates_dir: Path | None = None


def new_write_id() -> str:
    """Return a fresh write id (a UUID4 string): the identifier value and the outbox row id."""
    return str(uuid.uuid4())


def write_identifier(write_id: str) -> dict[str, str]:
    """Return the app-minted Identifier for one written resource."""
    return {"system": WRITE_IDENTIFIER_SYSTEM, "value": write_id}


def placeholder(write_id: str) -> str:
    """Return the reference standing for a resource of this submission until the server names it."""
    return f"{PLACEHOLDER_PREFIX}{write_id}"


def relative_reference(reference: str, iss: str) -> str:
    """Return ``Type/id`` for an absolute reference on this server; other references unchanged."""
    base = iss.rstrip("/") + "/"
    return reference[len(base) :] if reference.startswith(base) else reference


def validate_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a resource with R4B and return it as JSON; raise WriteBackInputError when invalid."""
    type_name = resource.get("resourceType")
    if not isinstance(type_name, str):
        raise WriteBackInputError("a resource without resourceType")
    try:
        model = get_fhir_model_class(type_name)
        dumped: dict[str, Any] = model.model_validate(dict(resource)).model_dump(
            mode="json", exclude_none=True
        )
    except (KeyError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[:3]
        raise WriteBackInputError(f"invalid {type_name}: {' '.join(first)}") from exc
    return dumped


def write_key(resource_type: str, write_id: str) -> tuple[str, str]:
    """Return the search parameter and value that find a resource by its write id."""
    if resource_type in TAGGED_TYPES:
        return "_tag", f"{WRITE_IDENTIFIER_SYSTEM}|{write_id}"
    return "identifier", f"{WRITE_IDENTIFIER_SYSTEM}|{write_id}"


def write_id_of(resource: Mapping[str, Any]) -> str | None:
    """Return the app's write id from a resource's identifier(s) (or meta.tag), or None."""
    for tag in (resource.get("meta") or {}).get("tag") or ():
        if tag.get("system") == WRITE_IDENTIFIER_SYSTEM and tag.get("code"):
            return str(tag["code"])
    identifiers = resource.get("identifier")
    if isinstance(identifiers, Mapping):  # DetectedIssue.identifier is a list, but be lenient
        identifiers = [identifiers]
    for ident in identifiers or ():
        if ident.get("system") == WRITE_IDENTIFIER_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


def _b64(text: str) -> str:
    """Return UTF-8 text as base64."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def build_document_reference(
    rendered: RenderedNote, *, write_id: str, context: WriteContext, settings: WriteBackSettings
) -> dict[str, Any]:
    """Return the note as a DocumentReference: plain text first (Epic files only the first attachment)."""
    when = context.now.isoformat()  # Oracle Health: every date needs a time component
    display = settings.note_type_display or NOTE_TYPES.get(settings.note_type_loinc, "Note")
    content = [
        {
            "attachment": {
                "contentType": "text/plain",
                "data": _b64(rendered.text),
                "title": settings.note_title,
                "creation": when,
            }
        }
    ]
    if settings.html_attachment:
        content.append(
            {
                "attachment": {
                    "contentType": "text/html",
                    "data": _b64(rendered.html),
                    "title": settings.note_title,
                    "creation": when,
                }
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [write_identifier(write_id)],
        "status": "current",
        "docStatus": "final",
        "type": {
            "coding": [{"system": LOINC, "code": settings.note_type_loinc, "display": display}],
            "text": display,
        },
        "category": [
            {
                "coding": [
                    {"system": US_CORE_DOC_CATEGORY, "code": "clinical-note", "display": "Clinical Note"}
                ]
            }
        ],
        "subject": {"reference": context.patient_reference},
        "date": when,
        "description": settings.note_title,
        "content": content,
    }
    if context.author_reference:
        resource["author"] = [{"reference": context.author_reference}]
    if context.encounter_id:
        resource["context"] = {"encounter": [{"reference": f"Encounter/{context.encounter_id}"}]}
    return validate_resource(resource)


def build_detected_issue(
    note: NoteInput, finding: Mapping[str, Any], *, write_id: str, context: WriteContext
) -> dict[str, Any]:
    """Return one finding of the check as a DetectedIssue, with the override as its mitigation."""
    result = note.check_result
    code = str(finding.get("code", ""))
    severity = str(finding.get("severity", "info"))
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "identifier": [write_identifier(write_id)],
        "status": "final",
        "code": {"coding": [{"system": FINDING_SYSTEM, "code": code}], "text": code},
        "severity": ISSUE_SEVERITY.get(severity, "low"),
        "patient": {"reference": context.patient_reference},
        "identifiedDateTime": str(result.get("evaluated_at") or context.now.isoformat()),
        "author": {"display": f"ITB Dose Check rules {result.get('rules_version', '')}".strip()},
        "detail": str(finding.get("message", "")),
    }
    source = (result.get("current_dose") or {}).get("source")
    if source:
        resource["implicated"] = [{"reference": source}]
    evidence = [{"reference": ref} for ref in finding.get("evidence") or ()]
    resource["evidence"] = [{"code": [resource["code"]], **({"detail": evidence} if evidence else {})}]
    if note.overridden and severity in OVERRIDABLE:
        resource["mitigation"] = [override_mitigation(note, context)]
    return validate_resource(resource)


def override_mitigation(note: NoteInput, context: WriteContext) -> dict[str, Any]:
    """Return the clinician's override as a DetectedIssue mitigation.

    "override-attested" only when the block attestation was ticked; a warn or cannot-check override
    (coded reason and comment, no attestation asked) is an "override", never called attested.
    """
    reason = note.override_reason_display or note.override_reason_code
    if note.block_attested:
        code, display, text = "override-attested", "Clinician attested an override", "Override attested"
    else:
        code, display, text = "override", "Clinician overrode the check", "Override"
    text = f"{text} by {note.author_display}: {reason}"
    if note.override_comment:
        text += f". {note.override_comment}"
    mitigation: dict[str, Any] = {
        "action": {
            "coding": [
                {"system": MITIGATION_SYSTEM, "code": code, "display": display},
                {
                    "system": OVERRIDE_REASON_SYSTEM,
                    "code": note.override_reason_code,
                    **({"display": note.override_reason_display} if note.override_reason_display else {}),
                },
            ],
            "text": text,
        },
        "date": context.now.isoformat(),
    }
    if context.author_reference:
        mitigation["author"] = {"reference": context.author_reference}
    return mitigation


def build_provenance(*, write_id: str, targets: list[str], context: WriteContext) -> dict[str, Any]:
    """Return a Provenance saying the launch's user created ``targets`` (placeholders allowed)."""
    if not context.author_reference:
        raise WriteBackInputError("a Provenance needs the launch's fhirUser")
    resource = {
        "resourceType": "Provenance",
        # R4 Provenance has no identifier element: the write id travels as a meta.tag, which is
        # searchable (``_tag=system|value``) and so still makes retries idempotent.
        "meta": {"tag": [{"system": WRITE_IDENTIFIER_SYSTEM, "code": write_id}]},
        "target": [{"reference": target} for target in targets],
        "recorded": context.now.isoformat(),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [
            {
                "type": {
                    "coding": [{"system": PROVENANCE_PARTICIPANT, "code": "author", "display": "Author"}]
                },
                "who": {"reference": context.author_reference},
            }
        ],
    }
    return validate_resource(resource)
