"""Render the dose-change note (clinical.md §8 fields) from site-editable Jinja2 templates.

The same ``NoteInput`` feeds the plain-text note (first attachment: Epic keeps only that one), the HTML
note and the QuestionnaireResponse, so what the chart shows and what the app stores cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypedDict

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from plugin.writeback.codes import TEMPLATES_DIR
from plugin.writeback.errors import WriteBackInputError

TEXT_TEMPLATE = "dose-change-note.txt.j2"
HTML_TEMPLATE = "dose-change-note.html.j2"
# Verdicts that need the clinician's override (a coded reason and a comment) before the change can be
# documented. cannot-check is included: documenting a change the app could not check is itself an
# override. Only block also needs the explicit attestation (the checkbox), see ATTESTATION_VERDICTS.
OVERRIDE_VERDICTS = frozenset({"warn", "block", "cannot-check"})
ATTESTATION_VERDICTS = frozenset({"block"})
SCORE_LABELS = {
    "mas": "Modified Ashworth Scale (Bohannon & Smith: 0, 1, 1+, 2, 3, 4)",
    "psfs-frequency": "Penn Spasm Frequency Scale, frequency (0-4)",
    "psfs-severity": "Penn Spasm Frequency Scale, severity (1-3)",
    "spasticity-nrs": "Spasticity numeric rating scale (0-10)",
}


class ScoreSummary(TypedDict, total=False):
    """One latest spasticity score: ``code`` (mas, psfs-frequency, ...), ``display`` as recorded, date."""

    code: str
    display: str
    effective: datetime | date | str
    source: str


class ChartSummary(TypedDict, total=False):
    """Plain values the caller computed from the chart and the proposal (any may be missing)."""

    concentration_ug_per_ml: float | None
    reservoir_volume_ml: float | None
    volume_remaining_ml: float | None
    alarm_volume_ml: float | None
    low_reservoir_alarm_date: date | datetime | str | None  # at the *new* dose
    next_refill_date: date | datetime | str | None
    scores: Sequence[ScoreSummary]


@dataclass(frozen=True)
class NoteInput:
    """What the note says: the check result (CONTRACT §3 JSON), chart numbers, the clinician's answers."""

    check_result: Mapping[str, Any]
    chart_summary: Mapping[str, Any]
    rationale: str
    side_effects_reviewed: str
    education_given: bool
    rescue_plan: str
    monitoring_plan: str
    author_display: str
    patient_display: str
    override_reason_code: str | None = None
    override_reason_display: str | None = None
    override_comment: str | None = None
    attested: bool = False
    # When the clinician documented (and so overrode) the change; the check time when not given.
    documented_at: datetime | None = None
    findings: Sequence[Mapping[str, Any]] = field(default=(), init=False)

    def __post_init__(self) -> None:
        """Keep the findings handy; they are read by every output."""
        object.__setattr__(self, "findings", tuple(self.check_result.get("findings") or ()))

    @property
    def verdict(self) -> str:
        """Return the check's verdict (pass, warn, block, cannot-check)."""
        return str(self.check_result.get("verdict", "cannot-check"))

    @property
    def needs_override(self) -> bool:
        """Whether the verdict requires an override (coded reason and comment) to document the change."""
        return self.verdict in OVERRIDE_VERDICTS

    @property
    def needs_attestation(self) -> bool:
        """Whether the verdict also requires the explicit attestation (block only)."""
        return self.verdict in ATTESTATION_VERDICTS

    @property
    def block_attested(self) -> bool:
        """Whether the clinician ticked the block attestation; never true for another verdict."""
        return self.needs_attestation and self.attested

    @property
    def overridden(self) -> bool:
        """Whether the clinician documented a complete override (reason, and attestation for block)."""
        if not self.needs_override or not self.override_reason_code:
            return False
        return self.block_attested or not self.needs_attestation


@dataclass(frozen=True, slots=True)
class RenderedNote:
    """The note as plain text (for the EHR's first attachment) and as HTML."""

    text: str
    html: str


def check_note_input(note: NoteInput, *, draft: bool = False) -> None:
    """Raise WriteBackInputError when the note cannot be documented as submitted.

    A ``draft`` (the preview the clinician is still editing) may lack the rationale; the override
    rules apply to drafts too, since the preview is only offered once they are met. Warn, block and
    cannot-check need a coded reason and a comment; block also needs the explicit attestation (issue 6).
    """
    problems = []
    if not note.check_result.get("patient"):
        problems.append("the check result names no patient")
    if not draft and not note.rationale.strip():
        problems.append("a rationale is required")
    if note.needs_override:
        if note.needs_attestation and not note.attested:
            problems.append(f"a {note.verdict} verdict needs the override attestation")
        if not note.override_reason_code:
            problems.append(f"a {note.verdict} verdict needs a coded override reason")
        if not (note.override_comment or "").strip():
            problems.append(f"a {note.verdict} verdict needs an override comment")
    if problems:
        raise WriteBackInputError("; ".join(problems))


def format_number(value: Any, digits: int = 2) -> str:
    """Return a number without trailing zeros (480.0 -> "480", 16.6667 -> "16.67"), or "not recorded"."""
    if value is None or value == "":
        return "not recorded"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_when(value: Any) -> str:
    """Return a date as YYYY-MM-DD and a datetime as YYYY-MM-DD HH:MM UTC, or "not recorded"."""
    if value is None or value == "":
        return "not recorded"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def note_context(note: NoteInput) -> dict[str, Any]:
    """Return the template variables: every §8 field as a plain value."""
    result = note.check_result
    summary = note.chart_summary
    current = result.get("current_dose") or {}
    proposed = result.get("proposed_dose") or {}
    current_ug_d = current.get("value")
    new_ug_d = proposed.get("value")
    scores = [
        {
            "code": s.get("code", ""),
            "label": SCORE_LABELS.get(str(s.get("code")), str(s.get("code"))),
            "display": s.get("display", ""),
            "effective": s.get("effective"),
        }
        for s in summary.get("scores") or ()
    ]
    return {
        "patient_display": note.patient_display,
        "author_display": note.author_display,
        "evaluated_at": result.get("evaluated_at"),
        "rules_version": result.get("rules_version"),
        "current_dose_ug_per_d": current_ug_d,
        "current_dose_ug_per_h": None if current_ug_d is None else current_ug_d / 24,
        "new_dose_ug_per_d": new_ug_d,
        "new_dose_ug_per_h": None if new_ug_d is None else new_ug_d / 24,
        "change_percent": result.get("change_percent"),
        "phase": result.get("phase"),
        "origin": result.get("origin"),
        "concentration_ug_per_ml": summary.get("concentration_ug_per_ml"),
        "reservoir_volume_ml": summary.get("reservoir_volume_ml"),
        "volume_remaining_ml": summary.get("volume_remaining_ml"),
        "alarm_volume_ml": summary.get("alarm_volume_ml"),
        "low_reservoir_alarm_date": summary.get("low_reservoir_alarm_date"),
        "next_refill_date": summary.get("next_refill_date"),
        "scores": scores,
        "rationale": note.rationale,
        "side_effects_reviewed": note.side_effects_reviewed,
        "education_given": note.education_given,
        "rescue_plan": note.rescue_plan,
        "monitoring_plan": note.monitoring_plan,
        "verdict": note.verdict,
        "findings": [
            {"code": f.get("code", ""), "severity": f.get("severity", ""), "message": f.get("message", "")}
            for f in note.findings
        ],
        "needs_override": note.needs_override,
        "needs_attestation": note.needs_attestation,
        # Only the block attestation checkbox: a warn or cannot-check override is never "attested".
        "attested": note.block_attested,
        "documented_at": note.documented_at or result.get("evaluated_at"),
        "override_reason_code": note.override_reason_code,
        "override_reason_display": note.override_reason_display,
        "override_comment": note.override_comment,
    }


def _environment(templates_dir: Path) -> SandboxedEnvironment:
    """Build a sandboxed Jinja2 environment: templates are site-editable, so they get no Python access."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["when"] = format_when
    env.filters["text"] = lambda value: "not recorded" if value in (None, "") else value
    return env


def render_note(note: NoteInput, *, templates_dir: Path | None = None, draft: bool = False) -> RenderedNote:
    """Render the note as plain text and HTML; refuse a note that lacks a required override."""
    check_note_input(note, draft=draft)
    env = _environment(templates_dir or TEMPLATES_DIR)
    context = note_context(note)
    text = env.get_template(TEXT_TEMPLATE).render(context)
    html = env.get_template(HTML_TEMPLATE).render(context)
    return RenderedNote(text=text, html=html)
