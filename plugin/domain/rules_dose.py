"""Rules on the proposed dose itself: unit slips, absolute ranges, the size of the step, stopping.

Codes: unit-scale-suspect, dose-above-maximum, dose-above-typical, increase-over-limit, decrease-large,
discontinuation (CONTRACT §4; thresholds from clinical.md §1.2, §1.3, §3.3, §4, §8).
"""

from __future__ import annotations

from plugin.domain.result import Finding
from plugin.domain.rules_common import (
    PERCENT_TOLERANCE,
    CheckContext,
    fmt_number,
    fmt_ug_per_day,
    increase_limit_pct,
    max_daily_dose_ug,
    typical_max_daily_dose_ug,
)


def evaluate(ctx: CheckContext) -> list[Finding]:
    """Return the findings about the proposed dose and the size of the change."""
    findings: list[Finding] = []
    findings.extend(_discontinuation(ctx))
    findings.extend(_unit_scale(ctx))
    findings.extend(_absolute_range(ctx))
    findings.extend(_increase_limit(ctx))
    findings.extend(_decrease(ctx))
    return findings


def origin_evidence(ctx: CheckContext) -> tuple[str, ...]:
    """Return the Conditions that decided the origin, unless the clinician overrode it."""
    if ctx.proposal.origin is not None:
        return ()
    return tuple(item.source for item in ctx.chart.origin_evidence)


def _discontinuation(ctx: CheckContext) -> list[Finding]:
    """Block a proposed dose of 0: abrupt stop risks withdrawal (clinical.md §3.1, §3.3)."""
    if ctx.proposed_daily_dose_ug > 0:
        return []
    return [
        ctx.finding(
            "discontinuation",
            "Proposed 0 ug/d stops intrathecal baclofen. Abrupt discontinuation can cause withdrawal "
            "(high fever, altered mental status, rebound spasticity, rigidity; rarely death). Use a "
            "documented taper or explant plan with an oral baclofen / benzodiazepine bridge instead.",
            ctx.current_dose_sources,
        )
    ]


def _unit_scale(ctx: CheckContext) -> list[Finding]:
    """Flag oral-scale doses and proposed/current ratios that look like a unit slip (clinical.md §4, §8.1)."""
    rules = ctx.rules
    proposed = ctx.proposed_daily_dose_ug
    reasons: list[str] = []
    if proposed >= rules.oral_scale_daily_dose_ug:
        reasons.append(
            f"Proposed {fmt_ug_per_day(proposed)} is at oral-baclofen scale (>= "
            f"{fmt_ug_per_day(rules.oral_scale_daily_dose_ug)}); intrathecal doses are about 1/100 of oral "
            "doses, so check for a mg/ug mix-up"
        )
    current = ctx.current_daily_dose_ug
    if current is not None and current > 0 and proposed > 0:
        ratio = proposed / current
        if rules.per_hour_ratio_min <= ratio <= rules.per_hour_ratio_max:
            reasons.append(
                f"Proposed {fmt_ug_per_day(proposed)} is {fmt_number(ratio)} times the current "
                f"{fmt_ug_per_day(current)}, close to 24 times: a per-hour rate may have been entered "
                "as per-day"
            )
        elif rules.per_hour_ratio_min <= 1 / ratio <= rules.per_hour_ratio_max:
            reasons.append(
                f"Proposed {fmt_ug_per_day(proposed)} is 1/{fmt_number(1 / ratio)} of the current "
                f"{fmt_ug_per_day(current)}, close to 1/24: a per-day dose may have been entered as per-hour"
            )
        elif ratio >= rules.unit_scale_ratio_high:
            reasons.append(
                f"Proposed {fmt_ug_per_day(proposed)} is {fmt_number(ratio)} times the current "
                f"{fmt_ug_per_day(current)}: check for a mg/ug or decimal-point slip"
            )
        elif ratio <= rules.unit_scale_ratio_low:
            reasons.append(
                f"Proposed {fmt_ug_per_day(proposed)} is 1/{fmt_number(1 / ratio)} of the current "
                f"{fmt_ug_per_day(current)}: check for a mg/ug or decimal-point slip"
            )
    if not reasons:
        return []
    return [ctx.finding("unit-scale-suspect", "; ".join(reasons) + ".", ctx.current_dose_sources)]


def _absolute_range(ctx: CheckContext) -> list[Finding]:
    """Compare the proposed dose with the highest studied dose and the usual range (clinical.md §1.3)."""
    proposed = ctx.proposed_daily_dose_ug
    maximum, max_group = max_daily_dose_ug(ctx)
    evidence = origin_evidence(ctx)
    if proposed > maximum:
        return [
            ctx.finding(
                "dose-above-maximum",
                f"Proposed {fmt_ug_per_day(proposed)} is above {fmt_ug_per_day(maximum)}, the highest daily "
                f"dose studied for {max_group}.",
                evidence,
            )
        ]
    typical, typical_group = typical_max_daily_dose_ug(ctx)
    if proposed <= typical:
        return []
    message = (
        f"Proposed {fmt_ug_per_day(proposed)} is above the usual maintenance range for {typical_group} "
        f"(up to {fmt_ug_per_day(typical)})."
    )
    if proposed > ctx.rules.limited_experience_daily_dose_ug:
        message += (
            f" Experience above {fmt_ug_per_day(ctx.rules.limited_experience_daily_dose_ug)} is limited; "
            "a rising requirement may mean a catheter or pump problem."
        )
    return [ctx.finding("dose-above-typical", message, evidence)]


def _increase_limit(ctx: CheckContext) -> list[Finding]:
    """Block an increase above the per-24 h limit for phase, origin and age (clinical.md §1.2)."""
    current = ctx.current_daily_dose_ug
    proposed = ctx.proposed_daily_dose_ug
    if current is None or not ctx.is_increase:
        return []
    evidence = ctx.current_dose_sources + origin_evidence(ctx)
    if current <= 0:
        return [
            ctx.finding(
                "increase-over-limit",
                f"The current dose is 0 ug/d, so a percentage increase to {fmt_ug_per_day(proposed)} "
                "cannot be measured; restarting intrathecal baclofen needs a restart (screening / "
                "re-titration) plan.",
                evidence,
            )
        ]
    change = ctx.change_percent
    limit, group = increase_limit_pct(ctx)
    if change is None or change <= limit + PERCENT_TOLERANCE:
        return []
    message = (
        f"Proposed {fmt_ug_per_day(proposed)} is a {change:.1f} % increase on the current "
        f"{fmt_ug_per_day(current)}; the {group} is {fmt_number(limit)} % per 24 h."
    )
    if ctx.phase_assumed:
        message += (
            " The phase was taken as titration (the stricter limits) because no implant date is recorded; "
            "give the phase explicitly if the patient is in maintenance."
        )
    return [ctx.finding("increase-over-limit", message, evidence)]


def _decrease(ctx: CheckContext) -> list[Finding]:
    """Warn about a decrease of more than the configured percentage (clinical.md §3.3)."""
    change = ctx.change_percent
    current = ctx.current_daily_dose_ug
    threshold = ctx.rules.decrease_warn_above_pct
    if change is None or current is None or ctx.proposed_daily_dose_ug <= 0:
        return []
    if -change <= threshold + PERCENT_TOLERANCE:
        return []
    return [
        ctx.finding(
            "decrease-large",
            f"Proposed {fmt_ug_per_day(ctx.proposed_daily_dose_ug)} is a {-change:.1f} % decrease from "
            f"{fmt_ug_per_day(current)}, more than {fmt_number(threshold)} % in one step: risk of "
            "withdrawal. Document the reason, the monitoring plan and an oral baclofen / benzodiazepine "
            "bridge.",
            ctx.current_dose_sources,
        )
    ]
