"""Server-side SVG of the dose over time, with spasticity scores on the same time axis and refills marked.

Plain SVG built from the typed chart: no JavaScript, no charting library, readable at a glance, and
accompanied on the page by a table for screen readers (``trend_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from plugin.domain.chart import Chart, Score
from plugin.domain.rules_common import plain_number

WIDTH, DOSE_HEIGHT, SCORE_HEIGHT = 720, 170, 110
LEFT, RIGHT, TOP, GAP, BOTTOM = 56, 28, 14, 26, 26

# Each score on its own 0..max scale, drawn on one shared 0-100 % band (its max is in the legend).
MAX_DOTS = 200  # per score series; more points are drawn as a line only
MAX_TABLE_ROWS = 500  # the table alternative lists the newest rows; the rest are in the EHR

SCORE_STYLES: dict[str, tuple[str, float, str]] = {
    "mas": ("MAS (0-4)", 4.0, "#b35c00"),
    "psfs-frequency": ("PSFS frequency (0-4)", 4.0, "#5b3fa8"),
    "spasticity-nrs": ("NRS (0-10)", 10.0, "#1c7c7d"),
}


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One row of the table alternative: a date and what happened then."""

    when: datetime
    what: str
    value: str


def _points_dose(chart: Chart, start: datetime, now: datetime) -> list[tuple[datetime, float]]:
    """Return (time, ug/d) steps within the window, carried forward to now."""
    steps: list[tuple[datetime, float]] = []
    before = [c for c in chart.dose_history if c.at < start]
    if before:
        steps.append((start, before[-1].to_daily_dose_ug))
    steps += [(c.at, c.to_daily_dose_ug) for c in chart.dose_history if start <= c.at <= now]
    current = [r.daily_dose_ug for r in chart.dose_records if r.daily_dose_ug is not None]
    if not steps and current:
        steps.append((start, current[0]))
    if steps:
        steps.append((now, steps[-1][1]))
    return steps


def render_trend_svg(chart: Chart, now: datetime, months: int = 24) -> str:
    """Return an SVG document of dose (ug/d) and scores over the last ``months`` months."""
    start = now - timedelta(days=round(months * 30.44))
    span = (now - start).total_seconds()
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + DOSE_HEIGHT + GAP + SCORE_HEIGHT + BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * max(0.0, min(1.0, (at - start).total_seconds() / span))

    dose = _points_dose(chart, start, now)
    score_top = TOP + DOSE_HEIGHT + GAP
    score_bottom = score_top + SCORE_HEIGHT
    top_dose = max([v for _, v in dose] + [1.0]) * 1.15
    dose_bottom = TOP + DOSE_HEIGHT

    def y_dose(value: float) -> float:
        return dose_bottom - DOSE_HEIGHT * value / top_dose

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="trend-title" class="trend" width="100%">',
        '<title id="trend-title">Intrathecal baclofen dose and spasticity scores over time</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{DOSE_HEIGHT}" fill="#fbfcfd" stroke="#d5dae0"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top_dose / 1.15 * fraction
        parts.append(
            f'<text x="{LEFT - 6}" y="{y_dose(value) + 4:.1f}" text-anchor="end" font-size="11">{value:.0f}</text>'
        )
    parts.append(f'<text x="8" y="{TOP + 10}" font-size="11" fill="#4a5560">ug/d</text>')
    if dose:
        path = []
        for index, (at, value) in enumerate(dose):
            if index:
                path.append(f"H{x(at):.1f} V{y_dose(value):.1f}")
            else:
                path.append(f"M{x(at):.1f} {y_dose(value):.1f}")
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#1f4e8c" stroke-width="2.5"/>')
    for refill in chart.refills:
        if start <= refill.at <= now:
            parts.append(
                f'<line x1="{x(refill.at):.1f}" x2="{x(refill.at):.1f}" y1="{TOP}" y2="{dose_bottom}" '
                'stroke="#7a8793" stroke-dasharray="3 3"><title>Refill</title></line>'
            )
    parts.append(
        f'<rect x="{LEFT}" y="{score_top}" width="{plot_w}" height="{SCORE_HEIGHT}" fill="#fbfcfd" stroke="#d5dae0"/>'
    )
    legend_x = LEFT
    for code, (label, maximum, colour) in SCORE_STYLES.items():
        scores = [s for s in chart.scores if s.code == code and start <= s.effective <= now]
        parts.append(_score_series(scores, x, score_bottom, maximum, colour))
        parts.append(
            f'<text x="{legend_x}" y="{height - 6}" font-size="11" fill="{colour}">&#9632; {escape(label)}</text>'
        )
        legend_x += 170
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{height - 6}" font-size="11" text-anchor="end" fill="#7a8793">'
        "- - refill</text>"
    )
    for months_back in range(months, -1, -6):
        at = now - timedelta(days=round(months_back * 30.44))
        anchor = "start" if months_back == months else "end" if months_back == 0 else "middle"
        parts.append(
            f'<text x="{x(at):.1f}" y="{dose_bottom + 15}" font-size="10" text-anchor="{anchor}">{at:%b %Y}</text>'
        )
    parts.append(f'<text x="{LEFT - 6}" y="{score_top + 10}" font-size="10" text-anchor="end">worse</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{score_bottom}" font-size="10" text-anchor="end">better</text>')
    parts.append("</svg>")
    return "".join(parts)


def _score_series(scores: list[Score], x: object, bottom: float, maximum: float, colour: str) -> str:
    """Return the polyline of one score series on the 0..maximum band, with a dot per score when sparse."""
    if not scores:
        return ""
    to_x = x  # a callable; typed loosely to keep the signature short
    points = [(to_x(s.effective), bottom - SCORE_HEIGHT * min(s.value, maximum) / maximum, s) for s in scores]  # type: ignore[operator]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
    if len(points) > MAX_DOTS:
        # Hundreds of dots would merge into a smear and weigh down the page; the table has every value.
        return f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
    dots = "".join(
        f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{escape(s.display)} '
        f"on {s.effective:%d %b %Y}</title></circle>"
        for px, py, s in points
    )
    return f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>{dots}'


def trend_rows(
    chart: Chart, now: datetime, months: int = 24, limit: int = MAX_TABLE_ROWS
) -> tuple[list[TrendRow], int]:
    """Return the plot's content as table rows, newest first and at most ``limit``, with the full count."""
    start = now - timedelta(days=round(months * 30.44))
    rows = [
        TrendRow(c.at, "Dose change", f"{plain_number(c.to_daily_dose_ug)} ug/d")
        for c in chart.dose_history
        if c.at >= start
    ]
    rows += [
        TrendRow(s.effective, SCORE_STYLES.get(s.code, (s.code, 0, ""))[0], s.display)
        for s in chart.scores
        if s.effective >= start
    ]
    rows += [
        TrendRow(r.at, "Refill", f"{plain_number(r.volume_ml)} mL" if r.volume_ml else "")
        for r in chart.refills
        if r.at >= start
    ]
    rows.sort(key=lambda row: row.when, reverse=True)
    return rows[:limit], len(rows)
