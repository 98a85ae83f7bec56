"""The dose-check engine: a pure function of chart, proposal, rules and ``now`` (no I/O, no clock).

``check`` resolves the current dose, origin, phase and age group once, runs the rule modules
(``rules_dose``, ``rules_history``, ``rules_scores``, ``rules_patient``, ``rules_reservoir``) and folds
their findings into a verdict (CONTRACT §3): cannot-check if any finding is cannot-check (no current dose
can be established; the other evaluable findings, e.g. dose-above-maximum, stay in the list), else block,
warn or pass by the most severe finding.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from plugin.domain import rules_dose, rules_history, rules_patient, rules_reservoir, rules_scores
from plugin.domain.chart import Chart, DoseRecord, Phase
from plugin.domain.result import CheckResult, Finding, Proposal, Severity, Verdict
from plugin.domain.rules_common import CheckContext, fmt_ug_per_day, increase_limit_pct, max_daily_dose_ug
from plugin.domain.rules_config import Rules

SEVERITY_ORDER = {Severity.CANNOT_CHECK: 0, Severity.BLOCK: 1, Severity.WARN: 2, Severity.INFO: 3}
RULE_MODULES = (rules_dose, rules_history, rules_scores, rules_patient, rules_reservoir)


def check(chart: Chart, proposal: Proposal, rules: Rules, now: datetime) -> CheckResult:
    """Check a proposed daily dose against the chart at ``now`` (an aware datetime)."""
    ctx, current_findings = build_context(chart, proposal, rules, now)
    findings: list[Finding] = list(current_findings)
    for module in RULE_MODULES:
        findings.extend(module.evaluate(ctx))
    findings.sort(key=lambda finding: SEVERITY_ORDER[finding.severity])
    change = ctx.change_percent
    return CheckResult(
        verdict=verdict_for(findings, ctx.current_daily_dose_ug),
        patient=chart.patient.reference,
        evaluated_at=ctx.now,
        current_daily_dose_ug=ctx.current_daily_dose_ug,
        current_dose_source=ctx.current_dose_sources[0] if ctx.current_daily_dose_ug is not None else None,
        proposed_daily_dose_ug=ctx.proposed_daily_dose_ug,
        change_percent=None if change is None else round(change, 1),
        origin=ctx.origin,
        phase=ctx.phase,
        findings=tuple(findings),
        rules_version=rules.rules_version,
    )


def verdict_for(findings: list[Finding], current_daily_dose_ug: float | None) -> Verdict:
    """Fold findings into a verdict; no current dose is always cannot-check, never pass."""
    severities = {finding.severity for finding in findings}
    if current_daily_dose_ug is None or Severity.CANNOT_CHECK in severities:
        return Verdict.CANNOT_CHECK
    if Severity.BLOCK in severities:
        return Verdict.BLOCK
    if Severity.WARN in severities:
        return Verdict.WARN
    return Verdict.PASS


def largest_safe_dose_ug(chart: Chart, proposal: Proposal, rules: Rules, now: datetime) -> float | None:
    """Return the largest daily dose within the per-24 h increase limit and the maximum, or None.

    None when no current dose can be established (or it is 0). The current dose when another increase
    happened within the minimum interval. Rounded down to 0.1 ug/d so that it always passes the limit.
    """
    ctx, _ = build_context(chart, proposal, rules, now)
    current = ctx.current_daily_dose_ug
    if current is None or current <= 0:
        return None
    if rules_history.increases_too_recent(ctx):
        return current
    limit_pct, _ = increase_limit_pct(ctx)
    maximum, _ = max_daily_dose_ug(ctx)
    largest = min(current * (100.0 + limit_pct) / 100.0, maximum)
    return math.floor(largest * 10 + 1e-6) / 10


def build_context(
    chart: Chart, proposal: Proposal, rules: Rules, now: datetime
) -> tuple[CheckContext, list[Finding]]:
    """Resolve current dose, origin, phase and age once; return the context and the current-dose findings."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if not math.isfinite(proposal.daily_dose_ug) or proposal.daily_dose_ug < 0:
        raise ValueError(f"proposed daily dose must be a finite number >= 0, got {proposal.daily_dose_ug}")
    now_utc = now.astimezone(UTC)
    current, sources, findings = resolve_current_dose(chart.dose_records)
    phase, phase_assumed = _phase(chart, proposal, rules, now_utc)
    ctx = CheckContext(
        chart=chart,
        proposal=proposal,
        rules=rules,
        now=now_utc,
        proposed_daily_dose_ug=float(proposal.daily_dose_ug),
        current_daily_dose_ug=current,
        current_dose_sources=sources,
        origin=proposal.origin if proposal.origin is not None else chart.origin,
        phase=phase,
        phase_assumed=phase_assumed,
        age_years=chart.patient.age_years(now_utc.date()),
    )
    return ctx, [ctx.finding(f.code, f.message, f.evidence) for f in findings]


def resolve_current_dose(
    records: tuple[DoseRecord, ...],
) -> tuple[float | None, tuple[str, ...], list[Finding]]:
    """Return the current daily dose (or None), its sources, and findings (severity filled in later)."""
    findings: list[Finding] = []
    for record in records:
        if record.daily_dose_ug is None:
            written = f" ({record.original_text})" if record.original_text else ""
            reason = record.unconvertible_reason or "the dose unit cannot be converted to ug/d"
            findings.append(
                _placeholder(
                    "unit-unconvertible",
                    f"The dose of {record.source}{written} cannot be used: {reason}.",
                    (record.source,),
                )
            )
    convertible = [r for r in records if r.daily_dose_ug is not None]
    if not convertible:
        detail = " (the recorded doses could not be converted to ug/d)" if records else ""
        findings.insert(
            0,
            _placeholder(
                "current-dose-unknown",
                f"No active intrathecal baclofen record with a daily dose was found{detail}, so the change "
                "cannot be checked. Record the current pump dose first.",
                tuple(r.source for r in records),
            ),
        )
        return None, (), findings
    doses = [r.daily_dose_ug for r in convertible if r.daily_dose_ug is not None]
    if any(not math.isclose(dose, doses[0], rel_tol=1e-6, abs_tol=1e-3) for dose in doses):
        listing = "; ".join(f"{r.source}: {fmt_ug_per_day(r.daily_dose_ug or 0.0)}" for r in convertible)
        findings.insert(
            0,
            _placeholder(
                "conflicting-current-doses",
                f"Active intrathecal baclofen records disagree on the daily dose ({listing}). Reconcile them "
                "before changing the dose.",
                tuple(r.source for r in convertible),
            ),
        )
        return None, tuple(r.source for r in convertible), findings
    return doses[0], tuple(r.source for r in convertible), findings


def _placeholder(code: str, message: str, evidence: tuple[str, ...]) -> Finding:
    """Return a finding whose severity ``build_context`` replaces with the configured one."""
    return Finding(code=code, severity=Severity.INFO, message=message, evidence=evidence)


def _phase(chart: Chart, proposal: Proposal, rules: Rules, now: datetime) -> tuple[Phase, bool]:
    """Return the phase (given, else from the implant date) and whether it was assumed (no data)."""
    if proposal.phase is not None:
        return proposal.phase, False
    implant = chart.pump.implant_date if chart.pump is not None else None
    if implant is None:
        return Phase.TITRATION, True  # the stricter limits when the phase cannot be established
    if now - implant < timedelta(days=rules.titration_window_days):
        return Phase.TITRATION, False
    return Phase.MAINTENANCE, False
