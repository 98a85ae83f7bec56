"""Rules on the dose history before ``now``: increases too close together and dose creep.

Codes: increase-too-soon (clinical.md §1.2), dose-creep (clinical.md §1.3, §3.1, §8.5). Both apply only to
a proposed increase; with no dose history at all they say they could not be evaluated.
"""

from __future__ import annotations

from datetime import timedelta

from plugin.domain.chart import DoseChange
from plugin.domain.result import Finding
from plugin.domain.rules_common import CheckContext, fmt_number, fmt_ug_per_day


def evaluate(ctx: CheckContext) -> list[Finding]:
    """Return the findings about earlier increases, for a proposed increase."""
    if not ctx.is_increase:
        return []
    if not ctx.chart.dose_history:
        reason = "no intrathecal dose history is recorded, so earlier increases are unknown"
        return [ctx.not_evaluated("increase-too-soon", reason), ctx.not_evaluated("dose-creep", reason)]
    return _too_soon(ctx) + _creep(ctx)


def past_increases(ctx: CheckContext, within: timedelta) -> list[DoseChange]:
    """Return the dose increases recorded in the window ending at ``now`` (inclusive of its start)."""
    start = ctx.now - within
    return [c for c in ctx.chart.dose_history if c.is_increase and start <= c.at <= ctx.now]


def increases_too_recent(ctx: CheckContext) -> list[DoseChange]:
    """Return the increases made less than the minimum interval before ``now``."""
    interval = timedelta(hours=ctx.rules.min_hours_between_increases)
    return [c for c in past_increases(ctx, interval) if ctx.now - c.at < interval]


def _too_soon(ctx: CheckContext) -> list[Finding]:
    """Block an increase less than the minimum interval after another increase."""
    recent = increases_too_recent(ctx)
    if not recent:
        return []
    last = max(recent, key=lambda change: change.at)
    hours_ago = (ctx.now - last.at).total_seconds() / 3600
    before = fmt_ug_per_day(last.from_daily_dose_ug) if last.from_daily_dose_ug is not None else "?"
    return [
        ctx.finding(
            "increase-too-soon",
            f"The dose was already increased {fmt_number(hours_ago)} h ago ({before} to "
            f"{fmt_ug_per_day(last.to_daily_dose_ug)}); increase no more than once every "
            f"{fmt_number(ctx.rules.min_hours_between_increases)} h (the effect of a change takes 24-48 h).",
            tuple(c.source for c in recent),
        )
    ]


def _creep(ctx: CheckContext) -> list[Finding]:
    """Warn about an increase after large or frequent earlier increases: suspect the device."""
    rules = ctx.rules
    reasons: list[str] = []
    evidence: list[str] = []
    yearly = past_increases(ctx, timedelta(days=rules.dose_creep_window_days))
    yearly_total_ug = sum(c.to_daily_dose_ug - (c.from_daily_dose_ug or 0.0) for c in yearly)
    if yearly_total_ug > rules.dose_creep_increase_ug:
        reasons.append(
            f"increases in the past {rules.dose_creep_window_days} days already add up to "
            f"{fmt_ug_per_day(yearly_total_ug)} (more than {fmt_ug_per_day(rules.dose_creep_increase_ug)})"
        )
        evidence.extend(c.source for c in yearly)
    monthly = past_increases(ctx, timedelta(days=rules.dose_creep_count_window_days))
    if len(monthly) >= rules.dose_creep_increase_count:
        reasons.append(f"{len(monthly)} increases in the past {rules.dose_creep_count_window_days} days")
        evidence.extend(c.source for c in monthly if c.source not in evidence)
    if not reasons:
        return []
    return [
        ctx.finding(
            "dose-creep",
            "Another increase after " + " and ".join(reasons) + ". A rising requirement can mean a catheter "
            "or pump problem: consider device evaluation (x-ray, rotor study, catheter access port "
            "aspiration) before increasing further.",
            tuple(evidence),
        )
    ]
