"""What every rule module shares: the resolved facts of one check, limit look-ups and wording helpers.

The engine resolves origin, phase, age group and current dose once into a ``CheckContext``; each rule
module reads it and returns findings. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from plugin.domain.chart import Chart, Origin, Phase
from plugin.domain.result import Finding, Proposal, Severity
from plugin.domain.rules_config import Rules

# Percentages are compared unrounded, but a limit reached exactly must pass even when float arithmetic
# lands a hair above it (400 -> 520 ug/d computes as 30.000000000000004 %).
PERCENT_TOLERANCE = 1e-9
# Two daily doses this close are the same dose written in different units (20 ug/h x 24 vs 480 ug/d).
DOSE_REL_TOLERANCE = 1e-9
DOSE_ABS_TOLERANCE_UG = 1e-6


@dataclass(frozen=True, slots=True)
class CheckContext:
    """The facts one check resolved before the rules run."""

    chart: Chart
    proposal: Proposal
    rules: Rules
    now: datetime
    proposed_daily_dose_ug: float
    current_daily_dose_ug: float | None  # None: no single current dose could be established
    current_dose_sources: tuple[str, ...]
    origin: Origin  # as reported: spinal, cerebral or unknown
    phase: Phase
    phase_assumed: bool  # True when neither --phase nor an implant date decided it
    age_years: int | None

    @property
    def limits_origin(self) -> Origin:
        """Return the origin whose limits apply: unknown origin uses cerebral (CONTRACT §4)."""
        return Origin.CEREBRAL if self.origin is Origin.UNKNOWN else self.origin

    @property
    def is_child(self) -> bool:
        """Whether the pediatric limits apply; an unknown age is treated as a child (stricter)."""
        return self.age_years is None or self.age_years < self.rules.child_age_below_years

    @property
    def change_percent(self) -> float | None:
        """Return the unrounded change from the current dose in percent, or None when undefined."""
        if self.current_daily_dose_ug is None or self.current_daily_dose_ug <= 0:
            return None
        current = self.current_daily_dose_ug
        if self.is_unchanged:
            return 0.0
        return (self.proposed_daily_dose_ug - current) / current * 100.0

    @property
    def is_unchanged(self) -> bool:
        """Whether the proposal equals the current dose (up to unit-conversion float noise)."""
        current = self.current_daily_dose_ug
        return current is not None and math.isclose(
            self.proposed_daily_dose_ug, current, rel_tol=DOSE_REL_TOLERANCE, abs_tol=DOSE_ABS_TOLERANCE_UG
        )

    @property
    def is_increase(self) -> bool:
        """Whether the proposal raises an established current dose."""
        current = self.current_daily_dose_ug
        return current is not None and self.proposed_daily_dose_ug > current and not self.is_unchanged

    @property
    def is_decrease(self) -> bool:
        """Whether the proposal lowers an established current dose."""
        current = self.current_daily_dose_ug
        return current is not None and self.proposed_daily_dose_ug < current and not self.is_unchanged

    def finding(self, code: str, message: str, evidence: tuple[str, ...] = ()) -> Finding:
        """Return a finding with the configured severity for ``code``."""
        return Finding(code=code, severity=self.rules.severity(code), message=message, evidence=evidence)

    def not_evaluated(self, code: str, reason: str, evidence: tuple[str, ...] = ()) -> Finding:
        """Return the info finding a rule emits when it cannot be evaluated for lack of data."""
        return Finding(
            code=code, severity=Severity.INFO, message=f"Could not be evaluated: {reason}.", evidence=evidence
        )


def increase_limit_pct(ctx: CheckContext) -> tuple[float, str]:
    """Return the per-24 h increase limit and a plain description of the group it belongs to."""
    rules = ctx.rules
    spinal = ctx.limits_origin is Origin.SPINAL
    if ctx.phase is Phase.TITRATION:
        limit = (
            rules.titration_increase_limit_spinal_pct
            if spinal
            else rules.titration_increase_limit_cerebral_pct
        )
        child_limit = rules.titration_increase_limit_child_pct
    else:
        limit = (
            rules.maintenance_increase_limit_spinal_pct
            if spinal
            else rules.maintenance_increase_limit_cerebral_pct
        )
        child_limit = rules.maintenance_increase_limit_child_pct
    group = f"{ctx.phase.value} limit for {origin_words(ctx)}"
    if ctx.is_child and child_limit < limit:
        return child_limit, f"{ctx.phase.value} limit for {child_words(ctx)}"
    return limit, group


def max_daily_dose_ug(ctx: CheckContext) -> tuple[float, str]:
    """Return the highest studied daily dose for the patient's group and a description of the group."""
    rules = ctx.rules
    spinal = ctx.limits_origin is Origin.SPINAL
    limit = rules.max_daily_dose_spinal_ug if spinal else rules.max_daily_dose_cerebral_ug
    if ctx.is_child and rules.max_daily_dose_child_ug < limit:
        return rules.max_daily_dose_child_ug, child_words(ctx)
    return limit, origin_words(ctx)


def typical_max_daily_dose_ug(ctx: CheckContext) -> tuple[float, str]:
    """Return the top of the usual maintenance range for the patient's group and its description."""
    rules = ctx.rules
    spinal = ctx.limits_origin is Origin.SPINAL
    limit = rules.typical_max_daily_dose_spinal_ug if spinal else rules.typical_max_daily_dose_cerebral_ug
    if ctx.is_child and rules.typical_max_daily_dose_child_ug < limit:
        return rules.typical_max_daily_dose_child_ug, child_words(ctx)
    return limit, origin_words(ctx)


def origin_words(ctx: CheckContext) -> str:
    """Describe the origin whose limits apply, saying when it was assumed."""
    if ctx.origin is Origin.UNKNOWN:
        return "unknown origin (cerebral limits applied)"
    return f"{ctx.origin.value} origin"


def child_words(ctx: CheckContext) -> str:
    """Describe the pediatric group, saying when the age is unknown."""
    if ctx.age_years is None:
        return f"children under {ctx.rules.child_age_below_years} (age unknown, pediatric limits applied)"
    return f"children under {ctx.rules.child_age_below_years}"


def plain_number(value: float | None, places: int = 1, *, sign: bool = False) -> str:
    """Return ``value`` rounded to ``places`` decimals without trailing zeros ('' for None).

    ISMP's error-prone notations: a trailing zero ("400.0") is read as ten times the number when the
    point is missed, a naked decimal (".5") as five; so 400, 16.67, 0.5, and never "-0".
    """
    if value is None:
        return ""
    text = f"{float(value):+.{places}f}" if sign else f"{float(value):.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "+0"):
        text = "+0" if sign else "0"
    return text


def fmt_number(value: float) -> str:
    """Format a number with at most one decimal and no trailing zero: 520, 462.5."""
    return plain_number(value)


def fmt_ug_per_day(value: float) -> str:
    """Format a daily dose for a clinician: '520 ug/d'."""
    return f"{fmt_number(value)} ug/d"


def fmt_date(moment: datetime) -> str:
    """Format a UTC moment as a calendar date: '2026-11-20'."""
    return moment.date().isoformat()
