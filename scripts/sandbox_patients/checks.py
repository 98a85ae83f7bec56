"""The self-check: recompute the findings the generated numbers imply and compare them with the manifest."""

from __future__ import annotations

from datetime import datetime, timedelta

from .chart import Chart
from .registry import Meta
from .timeline import ANCHOR, parse

STEP_LIMIT_PERCENT = {
    ("titration", "spinal"): 30,
    ("titration", "cerebral"): 15,
    ("maintenance", "spinal"): 40,
    ("maintenance", "cerebral"): 20,
}  # CONTRACT §4; unknown origin uses cerebral
DERIVABLE = {
    "age-below-label",
    "increase-over-limit",
    "dose-creep",
    "increase-too-soon",
    "assessment-stale",
    "score-conflict",
    "concentration-nonstandard",
    "reservoir-before-refill",
    "refill-interval-long",
}


def daily_dose_at(history: list[tuple[str, float]], moment: datetime) -> float:
    """Return the daily dose in force at ``moment``."""
    return ([0.0] + [dose for start, dose in history if parse(start) <= moment])[-1]


def remaining_ml(c: Chart, conc: float) -> float:
    """Return the reservoir volume at the anchor, integrating the dose history hour by hour since the fill."""
    fill_time, fill_ml = parse(c.fills[-1][0]), c.fills[-1][1]
    hours = int((ANCHOR - fill_time).total_seconds() // 3600)
    used = sum(daily_dose_at(c.history, fill_time + timedelta(hours=h)) / conc / 24 for h in range(hours))
    return fill_ml - used


def age_at_anchor(c: Chart) -> int:
    """Return the patient's age in whole years at the anchor."""
    assert c.birth is not None
    return ANCHOR.year - c.birth.year - ((ANCHOR.month, ANCHOR.day) < (c.birth.month, c.birth.day))


def reservoir_findings(c: Chart, current: float, proposed: float, pid: str) -> set[str]:
    """Return the reservoir findings at the proposed dose, checking three ways of dating the alarm agree."""
    assert c.conc and c.next_refill
    per_day_ml = proposed / c.conc

    def alarm(start: datetime, left_ml: float) -> datetime:
        """Return when ``left_ml`` at ``start`` falls to the alarm volume at the proposed dose."""
        return start + timedelta(days=(left_ml - c.alarm_ml) / per_day_ml)

    fill_time, fill_ml = parse(c.fills[-1][0]), c.fills[-1][1]
    since_fill_days = (ANCHOR - fill_time).total_seconds() / 86400
    alarm_mid = alarm(ANCHOR, remaining_ml(c, c.conc))
    alarm_from_fill = alarm(fill_time, fill_ml)
    alarm_current_ran = alarm(ANCHOR, fill_ml - current / c.conc * since_fill_days)
    refill = parse(c.next_refill)
    # Exact history, "current dose ran since the fill" and "proposed dose from the fill" must agree,
    # so that the expectation holds whichever way the rules engine computes the alarm date.
    verdicts = {moment < refill for moment in (alarm_mid, alarm_from_fill, alarm_current_ran)}
    assert len(verdicts) == 1, f"{pid}: alarm methods disagree"
    found: set[str] = set()
    if alarm_mid < refill:
        found.add("reservoir-before-refill")
    if fill_ml / per_day_ml > 180:
        found.add("refill-interval-long")
    return found


def expected_findings(meta: Meta, c: Chart) -> set[str]:
    """Recompute the findings that follow from the generated numbers (not the text-only ones)."""
    found: set[str] = set()
    age = age_at_anchor(c)
    if age < 4:
        found.add("age-below-label")
    if not c.history:
        return found
    current, proposed = c.history[-1][1], meta.proposed
    origin = "cerebral" if meta.origin == "unknown" else meta.origin
    limit = STEP_LIMIT_PERCENT[(meta.phase, "cerebral" if age < 12 and meta.phase == "titration" else origin)]
    if (proposed - current) / current * 100 > limit:
        found.add("increase-over-limit")
    rises = [
        (parse(start), dose - c.history[i - 1][1])
        for i, (start, dose) in enumerate(c.history)
        if i and dose > c.history[i - 1][1]
    ]
    past_year = sum(d for t, d in rises if ANCHOR - t <= timedelta(days=365))
    past_month = sum(1 for t, _ in rises if ANCHOR - t <= timedelta(days=30))
    if proposed > current and (past_year > 100 or past_month >= 2):
        found.add("dose-creep")
    if any(ANCHOR - t < timedelta(hours=24) for t, _ in rises):
        found.add("increase-too-soon")
    if not any(day >= -90 for log in c.score_log.values() for day, _ in log):
        found.add("assessment-stale")
    latest_pairs = [log[-2:] for log in c.score_log.values() if len(log) >= 2]
    if proposed > current and any(new[1] < old[1] for old, new in latest_pairs):
        found.add("score-conflict")
    if c.conc and c.conc not in (500, 1000, 2000):
        found.add("concentration-nonstandard")
    if c.conc and c.fills and c.next_refill:
        found |= reservoir_findings(c, current, proposed, meta.pid)
    return found


def self_check(meta: Meta, c: Chart) -> None:
    """Fail if the manifest's expected findings disagree with what the generated numbers imply."""
    if meta.verdict == "cannot-check":
        return  # no current dose: the numeric rules cannot run
    got, want = expected_findings(meta, c), set(meta.findings) & DERIVABLE
    if got != want:
        raise SystemExit(f"{meta.pid}: numbers imply {sorted(got)}, manifest says {sorted(want)}")
