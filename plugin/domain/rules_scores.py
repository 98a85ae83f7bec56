"""Rules on spasticity scores: is there a recent assessment, and does the change go the scores' way?

Codes: assessment-stale (CONTRACT §4), score-conflict (clinical.md §6, §8.5). Every scale the app reads
(MAS, PSFS frequency and severity, spasticity NRS) is "higher = worse", so improvement means a lower value.
"""

from __future__ import annotations

from datetime import timedelta

from plugin.domain.chart import Score
from plugin.domain.result import Finding
from plugin.domain.rules_common import CheckContext, fmt_date

SCALE_NAMES = {
    "mas": "Modified Ashworth",
    "psfs-frequency": "Penn spasm frequency",
    "psfs-severity": "Penn spasm severity",
    "spasticity-nrs": "spasticity NRS",
}


def evaluate(ctx: CheckContext) -> list[Finding]:
    """Return the findings about the spasticity assessment."""
    scores = sorted((s for s in ctx.chart.scores if s.effective <= ctx.now), key=lambda s: s.effective)
    return _stale(ctx, scores) + _conflict(ctx, scores)


def _stale(ctx: CheckContext, scores: list[Score]) -> list[Finding]:
    """Warn when no spasticity score was recorded in the configured number of days before ``now``."""
    days = ctx.rules.assessment_stale_days
    if not scores:
        return [
            ctx.finding(
                "assessment-stale",
                "No spasticity score (Modified Ashworth, Penn, NRS) is recorded: assess spasticity before "
                "changing the dose.",
            )
        ]
    latest = scores[-1]
    if ctx.now - latest.effective <= timedelta(days=days):
        return []
    age_days = (ctx.now - latest.effective).days
    return [
        ctx.finding(
            "assessment-stale",
            f"The latest spasticity score is {age_days} days old ({_scale(latest)} {latest.display} on "
            f"{fmt_date(latest.effective)}); none in the past {days} days. Assess spasticity before changing "
            "the dose.",
            (latest.source,),
        )
    ]


def _conflict(ctx: CheckContext, scores: list[Score]) -> list[Finding]:
    """Warn about an increase after an improving score, or a decrease after a worsening one."""
    if not (ctx.is_increase or ctx.is_decrease):
        return []
    by_scale: dict[str, list[Score]] = {}
    for score in scores:
        by_scale.setdefault(score.code, []).append(score)
    pairs = [(series[-2], series[-1]) for series in by_scale.values() if len(series) >= 2]
    if not pairs:
        return [
            ctx.not_evaluated(
                "score-conflict",
                "fewer than two spasticity scores on the same scale are recorded, so the trend is unknown",
            )
        ]
    conflicts: list[tuple[Score, Score]] = []
    for before, latest in pairs:
        improved = latest.value < before.value
        worsened = latest.value > before.value
        if (ctx.is_increase and improved) or (ctx.is_decrease and worsened):
            conflicts.append((before, latest))
    if not conflicts:
        return []
    direction = "an increase" if ctx.is_increase else "a decrease"
    trend = "improved" if ctx.is_increase else "worsened"
    details = "; ".join(
        f"{_scale(latest)} {before.display} on {fmt_date(before.effective)} -> {latest.display} on "
        f"{fmt_date(latest.effective)}"
        for before, latest in conflicts
    )
    return [
        ctx.finding(
            "score-conflict",
            f"This is {direction} although the latest spasticity score {trend}: {details}. Confirm the "
            "clinical reason for the change.",
            tuple(source for pair in conflicts for source in (pair[0].source, pair[1].source)),
        )
    ]


def _scale(score: Score) -> str:
    """Return the plain name of a score's scale."""
    return SCALE_NAMES.get(score.code, score.code)
