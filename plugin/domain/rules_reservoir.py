"""Reservoir arithmetic and the rules built on it: alarm before refill, refill interval, concentration.

Codes: reservoir-before-refill, refill-interval-long, concentration-nonstandard (clinical.md §2.1-§2.4).
``reservoir_projection`` is the pure arithmetic of clinical.md §2.4 with the dose-change-mid-interval
formula; the UI and the pharmacist calculator reuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from plugin.domain.chart import Chart, Pump
from plugin.domain.result import Finding
from plugin.domain.rules_common import CheckContext, fmt_date, fmt_number
from plugin.domain.rules_config import Rules

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ReservoirProjection:
    """What the reservoir will do at the proposed dose, measured from ``now`` (volumes in mL)."""

    concentration_ug_per_ml: float
    current_daily_volume_ml: float
    proposed_daily_volume_ml: float
    days_since_fill: float
    remaining_volume_ml: float
    low_reservoir_alarm_volume_ml: float
    alarm_volume_is_default: bool
    days_to_alarm: float
    low_reservoir_alarm_date: datetime
    days_to_empty: float
    empty_date: datetime
    latest_refill_date: datetime  # last fill + the maximum refill interval (180 days)
    refill_by_date: datetime  # min(alarm date, last fill + 180 days)


def reservoir_projection(
    pump: Pump,
    current_daily_dose_ug: float | None,
    proposed_daily_dose_ug: float,
    concentration_ug_per_ml: float | None,
    now: datetime,
    rules: Rules,
) -> ReservoirProjection | None:
    """Project the reservoir at the proposed dose; None when fill volume, fill date, concentration,
    current dose or a positive proposed dose is missing.

    Remaining now = fill volume - q_old x days since the fill (q = dose / concentration, assuming the
    current dose ran since the fill); days to alarm = (remaining - alarm volume) / q_new.
    """
    fill_ml = pump.fill_volume_ml
    fill_date = pump.last_fill_date
    if fill_ml is None or fill_date is None or current_daily_dose_ug is None:
        return None
    if concentration_ug_per_ml is None or concentration_ug_per_ml <= 0 or proposed_daily_dose_ug <= 0:
        return None
    alarm_ml = pump.low_reservoir_alarm_volume_ml
    alarm_is_default = alarm_ml is None
    if alarm_ml is None:
        alarm_ml = rules.default_low_reservoir_alarm_ml
    current_q = current_daily_dose_ug / concentration_ug_per_ml
    proposed_q = proposed_daily_dose_ug / concentration_ug_per_ml
    days_since_fill = max(0.0, (now - fill_date).total_seconds() / SECONDS_PER_DAY)
    remaining_ml = max(0.0, fill_ml - current_q * days_since_fill)
    days_to_alarm = max(0.0, remaining_ml - alarm_ml) / proposed_q
    days_to_empty = remaining_ml / proposed_q
    alarm_date = now + timedelta(days=days_to_alarm)
    latest_refill = fill_date + timedelta(days=rules.refill_max_days)
    return ReservoirProjection(
        concentration_ug_per_ml=concentration_ug_per_ml,
        current_daily_volume_ml=current_q,
        proposed_daily_volume_ml=proposed_q,
        days_since_fill=days_since_fill,
        remaining_volume_ml=remaining_ml,
        low_reservoir_alarm_volume_ml=alarm_ml,
        alarm_volume_is_default=alarm_is_default,
        days_to_alarm=days_to_alarm,
        low_reservoir_alarm_date=alarm_date,
        days_to_empty=days_to_empty,
        empty_date=now + timedelta(days=days_to_empty),
        latest_refill_date=latest_refill,
        refill_by_date=min(alarm_date, latest_refill),
    )


def pump_concentration(chart: Chart) -> tuple[float | None, tuple[str, ...]]:
    """Return the pump concentration (pump record first, else an active dose record) and its evidence."""
    pump = chart.pump
    if pump is not None and pump.concentration_ug_per_ml is not None:
        return pump.concentration_ug_per_ml, pump_evidence(pump)
    for record in chart.dose_records:
        if record.concentration_ug_per_ml is not None:
            return record.concentration_ug_per_ml, (record.source,)
    return None, ()


def pump_evidence(pump: Pump) -> tuple[str, ...]:
    """Return the references that describe the pump, without duplicates."""
    refs = ((pump.source,) if pump.source else ()) + pump.evidence
    return tuple(dict.fromkeys(refs))


def projection_for(ctx: CheckContext) -> ReservoirProjection | None:
    """Return the reservoir projection for one check, or None when data is missing."""
    if ctx.chart.pump is None:
        return None
    concentration, _ = pump_concentration(ctx.chart)
    return reservoir_projection(
        ctx.chart.pump,
        ctx.current_daily_dose_ug,
        ctx.proposed_daily_dose_ug,
        concentration,
        ctx.now,
        ctx.rules,
    )


def evaluate(ctx: CheckContext) -> list[Finding]:
    """Return the findings about the reservoir and the concentration."""
    findings = _concentration(ctx)
    if ctx.proposed_daily_dose_ug <= 0:
        return findings  # stopping never empties the reservoir; discontinuation says what matters
    projection = projection_for(ctx)
    if projection is None:
        reason = _missing_data(ctx)
        findings += [
            ctx.not_evaluated("reservoir-before-refill", reason),
            ctx.not_evaluated("refill-interval-long", reason),
        ]
        return findings
    assert ctx.chart.pump is not None  # projection_for returned a projection
    return (
        findings
        + _before_refill(ctx, ctx.chart.pump, projection)
        + _interval(ctx, ctx.chart.pump, projection)
    )


def _missing_data(ctx: CheckContext) -> str:
    """Say in plain words which data the reservoir arithmetic lacked."""
    pump = ctx.chart.pump
    if pump is None:
        return "no implanted pump (Device) is recorded"
    missing = []
    if pump.fill_volume_ml is None:
        missing.append("no fill volume")
    if pump.last_fill_date is None:
        missing.append("no fill date")
    if pump_concentration(ctx.chart)[0] is None:
        missing.append("no concentration")
    if ctx.current_daily_dose_ug is None:
        missing.append("no established current dose")
    return (", ".join(missing) or "incomplete pump data") + " recorded for the reservoir arithmetic"


def _alarm_words(projection: ReservoirProjection) -> str:
    """Describe the projected alarm for a message."""
    default = " (default)" if projection.alarm_volume_is_default else ""
    return (
        f"about {fmt_number(projection.remaining_volume_ml)} mL remain; at "
        f"{projection.proposed_daily_volume_ml:.3f} mL/d the low-reservoir alarm "
        f"({fmt_number(projection.low_reservoir_alarm_volume_ml)} mL{default}) would sound in "
        f"{fmt_number(projection.days_to_alarm)} days, on {fmt_date(projection.low_reservoir_alarm_date)}"
    )


def _before_refill(ctx: CheckContext, pump: Pump, projection: ReservoirProjection) -> list[Finding]:
    """Warn when the projected low-reservoir alarm comes before the scheduled refill."""
    evidence = pump_evidence(pump)
    if pump.next_refill_date is None:
        return [
            ctx.not_evaluated(
                "reservoir-before-refill",
                f"no next refill date is recorded ({_alarm_words(projection)})",
                evidence,
            )
        ]
    if projection.low_reservoir_alarm_date >= pump.next_refill_date:
        return []
    return [
        ctx.finding(
            "reservoir-before-refill",
            f"At the proposed dose {_alarm_words(projection)}, before the scheduled refill on "
            f"{fmt_date(pump.next_refill_date)}. Move the refill earlier (refill by "
            f"{fmt_date(projection.refill_by_date)}).",
            evidence,
        )
    ]


def _interval(ctx: CheckContext, pump: Pump, projection: ReservoirProjection) -> list[Finding]:
    """Note when the reservoir would last, or the refill is scheduled, beyond the maximum interval."""
    assert pump.last_fill_date is not None  # a projection needs a fill date
    limit_days = ctx.rules.refill_max_days
    lasts_days = (projection.low_reservoir_alarm_date - pump.last_fill_date).total_seconds() / SECONDS_PER_DAY
    reasons = []
    if lasts_days > limit_days:
        reasons.append(
            f"at the proposed dose the reservoir would last {fmt_number(lasts_days)} days from the fill on "
            f"{fmt_date(pump.last_fill_date)} to the low-reservoir alarm"
        )
    if pump.next_refill_date is not None and pump.next_refill_date > projection.latest_refill_date:
        reasons.append(f"the next refill is scheduled for {fmt_date(pump.next_refill_date)}")
    if not reasons:
        return []
    return [
        ctx.finding(
            "refill-interval-long",
            f"{'; '.join(reasons).capitalize()}, more than {limit_days} days: refill by "
            f"{fmt_date(projection.latest_refill_date)} (drug stability), whatever remains.",
            pump_evidence(pump),
        )
    ]


def _concentration(ctx: CheckContext) -> list[Finding]:
    """Warn about a non-standard pump concentration, or one that differs between records."""
    rules = ctx.rules
    concentration, evidence = pump_concentration(ctx.chart)
    if concentration is None:
        return [ctx.not_evaluated("concentration-nonstandard", "no pump concentration is recorded")]
    others = {
        (r.concentration_ug_per_ml, r.source)
        for r in ctx.chart.dose_records
        if r.concentration_ug_per_ml is not None
        and not math.isclose(r.concentration_ug_per_ml, concentration)
    }
    problems = []
    if math.isclose(concentration, rules.screening_concentration_ug_per_ml):
        problems.append(
            f"{fmt_number(concentration)} ug/mL is the screening strength, not a pump concentration"
        )
    elif not any(math.isclose(concentration, c) for c in rules.standard_concentrations_ug_per_ml):
        standard = ", ".join(fmt_number(c) for c in rules.standard_concentrations_ug_per_ml)
        problems.append(
            f"{fmt_number(concentration)} ug/mL is not a standard concentration ({standard} ug/mL): a "
            "compounded dilution must be verified"
        )
    for other, source in sorted(others):
        problems.append(f"{source} records {fmt_number(other)} ug/mL instead of {fmt_number(concentration)}")
        evidence = evidence + (source,)
    if not problems:
        return []
    return [
        ctx.finding("concentration-nonstandard", "Pump concentration: " + "; ".join(problems) + ".", evidence)
    ]
