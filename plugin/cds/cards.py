"""CDS Hooks cards from a check result: one card per check (CONTRACT §6, standards.md §2.5).

``indicator`` is critical for block, warning for warn and cannot-check, info for pass; ``summary`` stays
under 140 characters; ``detail`` (markdown) lists every finding with its code in backticks; a ``smart``
link opens the app for the same patient. Override reasons come from the same site-editable CodeSystem the
write-back uses (``config/templates/override-reasons.json``), so a card and a note offer the same list.
No card field may be null or empty (spec), so optional fields are only added when they have content.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plugin.domain.result import CheckResult, Finding, Severity, Verdict
from plugin.domain.rules_common import fmt_number, fmt_ug_per_day
from plugin.writeback.codes import OVERRIDE_REASON_SYSTEM, override_reasons

SOURCE_LABEL = "ITB Dose Check"
TOPIC = {
    "system": "http://itb-dose-check.org/CodeSystem/card-topic",
    "code": "itb-dose-change",
    "display": "Intrathecal baclofen dose change",
}
INDICATORS = {
    Verdict.BLOCK: "critical",
    Verdict.WARN: "warning",
    Verdict.CANNOT_CHECK: "warning",
    Verdict.PASS: "info",
}
SUMMARY_LIMIT = 139
# Short words for the summary line; the finding's own message carries the numbers in the detail.
TITLES = {
    "current-dose-unknown": "current dose unknown",
    "conflicting-current-doses": "current doses conflict",
    "unit-unconvertible": "dose unit cannot be converted",
    "unit-scale-suspect": "possible unit slip",
    "dose-above-maximum": "above the maximum studied dose",
    "dose-above-typical": "above the usual range",
    "increase-over-limit": "increase over the {limit} limit",
    "increase-too-soon": "another increase within 24 h",
    "decrease-large": "large decrease (withdrawal risk)",
    "discontinuation": "abrupt stop (withdrawal risk)",
    "origin-unknown": "origin unknown, stricter limits",
    "cns-depressant": "CNS depressant active",
    "oral-baclofen-active": "oral baclofen active",
    "withdrawal-signs": "possible withdrawal signs",
    "dose-creep": "repeated increases",
    "assessment-stale": "no recent spasticity score",
    "score-conflict": "scores do not support the change",
    "reservoir-before-refill": "reservoir alarm before refill",
    "refill-interval-long": "long refill interval",
    "concentration-nonstandard": "nonstandard concentration",
    "age-below-label": "below labelled age",
    "renal-impairment": "renal impairment",
    "pregnancy": "pregnancy recorded",
}


@dataclass(frozen=True, slots=True)
class CardContext:
    """What every card of one request shares: where the app is, who the patient is, which order."""

    app_base_url: str
    patient_id: str
    order_reference: str
    hook: str


def _title(finding: Finding, limit_pct: float | None) -> str:
    """Return the short title of a finding for the summary line."""
    title = TITLES.get(finding.code, finding.code)
    return title.format(limit=f"{fmt_number(limit_pct)} %" if limit_pct is not None else "per-24 h")


def summary_line(result: CheckResult, limit_pct: float | None = None, incomplete: bool = False) -> str:
    """Return the summary: ``ITB dose 400 → 600 ug/d (+50 %): BLOCK — increase over the 40 % limit``."""
    current = fmt_number(result.current_daily_dose_ug) if result.current_daily_dose_ug is not None else "?"
    change = f" ({result.change_percent:+.0f} %)" if result.change_percent is not None else ""
    head = f"ITB dose {current} → {fmt_ug_per_day(result.proposed_daily_dose_ug)}{change}"
    verdict = result.verdict.value.upper().replace("-", " ")
    serious = [f for f in result.findings if f.severity.value != "info"]
    reason = _title(serious[0], limit_pct) if serious else "within the limits"
    more = f" (+{len(serious) - 1} more)" if len(serious) > 1 else ""
    tail = " · data incomplete" if incomplete else ""
    return _clip(f"{head}: {verdict} — {reason}{more}{tail}")


def _clip(text: str) -> str:
    """Keep a summary under 140 characters."""
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def finding_line(finding: Finding) -> str:
    """Return one markdown bullet: ``- **block** `increase-over-limit`: message``."""
    message = " ".join(finding.message.split())
    return f"- **{finding.severity.value}** `{finding.code}`: {message}"


def detail_markdown(result: CheckResult, gaps: Sequence[str]) -> str:
    """Return the card detail: the doses, every finding with its code, and what could not be read."""
    current = (
        f"{fmt_ug_per_day(result.current_daily_dose_ug)} ({result.current_dose_source})"
        if result.current_daily_dose_ug is not None
        else "unknown"
    )
    lines = [
        f"**Verdict: {result.verdict.value}**. Current dose {current}; proposed "
        f"{fmt_ug_per_day(result.proposed_daily_dose_ug)}; origin {result.origin.value}; phase "
        f"{result.phase.value}; rules {result.rules_version}.",
        "",
    ]
    lines += [finding_line(f) for f in result.findings] or ["- No findings."]
    lines += _gap_lines(gaps)
    return "\n".join(lines)


def _gap_lines(gaps: Sequence[str]) -> list[str]:
    """Return the 'not checked' section for data the check could not read."""
    if not gaps:
        return []
    return ["", "**Not checked, data not available:**", *(f"- {gap}" for gap in gaps)]


def override_reason_codings() -> list[dict[str, str]]:
    """Return the site's override reasons as Codings (each with a display, as the spec asks)."""
    return [
        {"system": OVERRIDE_REASON_SYSTEM, "code": r.code, "display": r.display} for r in override_reasons()
    ]


def smart_link(ctx: CardContext, proposed_ug_per_day: float | None, card_uuid: str) -> dict[str, Any]:
    """Return the link that launches the app; the EHR adds iss and launch, appContext carries the dose."""
    app_context: dict[str, Any] = {"card": card_uuid, "order": ctx.order_reference}
    if proposed_ug_per_day is not None:
        app_context["proposedDose"] = {"value": proposed_ug_per_day, "unit": "ug/d"}
    return {
        "label": "Open ITB Dose Check",
        "url": f"{ctx.app_base_url}/launch",
        "type": "smart",
        "appContext": json.dumps(app_context, separators=(",", ":")),
    }


def result_card(
    result: CheckResult,
    ctx: CardContext,
    *,
    gaps: Sequence[str] = (),
    limit_pct: float | None = None,
    suggestion: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the card for one check result."""
    card_uuid = str(uuid.uuid4())
    card: dict[str, Any] = {
        "uuid": card_uuid,
        "summary": summary_line(result, limit_pct, incomplete=bool(gaps)),
        "indicator": INDICATORS[result.verdict],
        "detail": detail_markdown(result, gaps),
        "source": {"label": SOURCE_LABEL, "topic": TOPIC},
    }
    if suggestion:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    if result.verdict is not Verdict.PASS:
        card["overrideReasons"] = override_reason_codings()
    card["links"] = [smart_link(ctx, result.proposed_daily_dose_ug, card_uuid)]
    return card


def dose_suggestion(
    resource: Mapping[str, Any], new_ug_per_day: float, unit_form: str | None, why: str
) -> dict[str, Any]:
    """Return a suggestion that updates the draft order (same id) to ``new_ug_per_day``."""
    shown = fmt_ug_per_day(new_ug_per_day)
    label = f"Change the dose to {shown}" + (
        f" (written in {unit_form})" if unit_form and unit_form != "ug/d" else ""
    )
    return {
        "label": _clip(label),
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": [
            {"type": "update", "description": f"Set the order's dose to {shown}: {why}", "resource": resource}
        ],
    }


def unconvertible_verdict(severity: str) -> Verdict:
    """Return the verdict of an order whose dose cannot be read as ug/d: the finding's own severity
    (``unit-unconvertible`` is block by default, CONTRACT §4), as for any other finding."""
    return {"block": Verdict.BLOCK, "warn": Verdict.WARN}.get(severity, Verdict.CANNOT_CHECK)


def unconvertible_card(ctx: CardContext, reason: str, written: str | None, severity: str) -> dict[str, Any]:
    """Return the card for a draft order whose dose cannot be read as ug/d (the check cannot run)."""
    card_uuid = str(uuid.uuid4())
    shown = f" ({written})" if written else ""
    message = f"The proposed dose of {ctx.order_reference}{shown} cannot be converted to ug/d: {reason}."
    finding = Finding(code="unit-unconvertible", severity=Severity(severity), message=message)
    verdict = unconvertible_verdict(severity)
    # A dose nobody can read as ug/d must not be signed past a mere warning: block is critical (§6).
    return {
        "uuid": card_uuid,
        "summary": _clip(f"ITB dose cannot be checked: the order's dose unit cannot be converted{shown}"),
        "indicator": INDICATORS[verdict],
        "detail": f"**Verdict: {verdict.value}**. Write the dose as ug/d, ug/h, or mL/h with a known "
        "concentration.\n\n" + finding_line(finding),
        "source": {"label": SOURCE_LABEL, "topic": TOPIC},
        "overrideReasons": override_reason_codings(),
        "links": [smart_link(ctx, None, card_uuid)],
    }


def input_error_card(ctx: CardContext, reason: str) -> dict[str, Any]:
    """Return a card that says the check could not run on what the EHR sent (never silence)."""
    card_uuid = str(uuid.uuid4())
    return {
        "uuid": card_uuid,
        "summary": "ITB dose cannot be checked: the EHR's records could not be used",
        "indicator": "warning",
        "detail": f"**Verdict: cannot-check**. {reason}. Open the app to review the chart.",
        "source": {"label": SOURCE_LABEL, "topic": TOPIC},
        "overrideReasons": override_reason_codings(),
        "links": [smart_link(ctx, None, card_uuid)],
    }
