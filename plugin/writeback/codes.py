"""Code systems and identifiers the write-back uses, and the site-editable override-reason list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "config" / "templates"

# Every resource the app writes carries one identifier in this system; the value is the outbox row id,
# so a retry can find (or conditionally create) exactly the resource it may already have stored.
WRITE_IDENTIFIER_SYSTEM = "http://itb-dose-check.org/fhir/identifier/write"
# An element the app appends to a resource filed earlier (a DetectedIssue's mitigation) carries this
# extension with the update row's write id, so a retried update can tell it is already there.
WRITE_ID_EXTENSION = "http://itb-dose-check.org/fhir/StructureDefinition/write-id"
FINDING_SYSTEM = "http://itb-dose-check.org/CodeSystem/finding"
OVERRIDE_REASON_SYSTEM = "http://itb-dose-check.org/CodeSystem/override-reason"
MITIGATION_SYSTEM = "http://itb-dose-check.org/CodeSystem/mitigation"
VERDICT_SYSTEM = "http://itb-dose-check.org/CodeSystem/verdict"
QUESTIONNAIRE_URL = "http://itb-dose-check.org/Questionnaire/dose-change-note"

LOINC = "http://loinc.org"
US_CORE_DOC_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

# Note types from standards.md §3.2 (C-CDA on FHIR / US Core clinical notes); sites pick one in settings.
NOTE_TYPES: dict[str, str] = {
    "11506-3": "Progress note",
    "11488-4": "Consult note",
    "28570-0": "Procedure note",
    "18776-5": "Plan of care note",
    "34132-1": "Pharmacy Outpatient Progress note",
}


@dataclass(frozen=True, slots=True)
class OverrideReason:
    """One coded reason a clinician may give for going ahead despite a warn or block."""

    code: str
    display: str


@lru_cache(maxsize=8)
def _code_system(path: Path) -> dict[str, Any]:
    """Read a CodeSystem JSON file once."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def override_reasons(templates_dir: Path | None = None) -> tuple[OverrideReason, ...]:
    """Return the site's override reasons from ``config/templates/override-reasons.json``."""
    code_system = _code_system((templates_dir or TEMPLATES_DIR) / "override-reasons.json")
    return tuple(OverrideReason(c["code"], c["display"]) for c in code_system.get("concept", []))


def override_reason_display(code: str, templates_dir: Path | None = None) -> str | None:
    """Return the display of an override reason code, or None when the site does not list it."""
    for reason in override_reasons(templates_dir):
        if reason.code == code:
            return reason.display
    return None
