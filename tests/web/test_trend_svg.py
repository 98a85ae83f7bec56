"""The server-side trend plot: dose steps, scores and refills on one time axis, and its table twin."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from plugin.domain.chart import Chart, DoseChange, Patient, Refill, Score
from plugin.web.trend_svg import render_trend_svg, trend_rows

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _chart() -> Chart:
    return Chart(
        patient=Patient("Patient/p"),
        dose_history=(
            DoseChange(NOW - timedelta(days=900), 300.0, None, "MedicationStatement/a"),
            DoseChange(NOW - timedelta(days=200), 350.0, 300.0, "MedicationStatement/b"),
            DoseChange(NOW - timedelta(days=30), 400.0, 350.0, "MedicationStatement/c"),
        ),
        scores=(
            Score("mas", 2.0, "2", NOW - timedelta(days=60), "Observation/s1"),
            Score("mas", 1.5, "1+", NOW - timedelta(days=5), "Observation/s2"),
        ),
        refills=(Refill(NOW - timedelta(days=45), "Procedure/r1", 20.0),),
    )


def test_the_plot_is_valid_svg_with_a_dose_step_line_score_dots_and_refill_marks() -> None:
    root = ET.fromstring(render_trend_svg(_chart(), NOW))
    dose_path = root.find(f"{SVG}path")
    assert dose_path is not None
    # One move plus a horizontal+vertical step per later point: a carried-in start, two changes, now.
    assert dose_path.get("d", "").count("H") == 3
    assert len(root.findall(f"{SVG}circle")) == 2
    assert any(line.find(f"{SVG}title").text == "Refill" for line in root.findall(f"{SVG}line"))
    assert root.find(f"{SVG}title").text.startswith("Intrathecal baclofen dose")


def test_an_empty_chart_still_draws_an_empty_plot() -> None:
    root = ET.fromstring(render_trend_svg(Chart(patient=Patient("Patient/p")), NOW))
    assert root.find(f"{SVG}path") is None


def test_the_table_alternative_lists_every_event_in_the_window_newest_first() -> None:
    rows, total = trend_rows(_chart(), NOW)
    assert total == len(rows)
    assert [r.what for r in rows][:2] == ["MAS (0-4)", "Dose change"]
    assert all(a.when >= b.when for a, b in zip(rows, rows[1:], strict=False))
    assert not any(r.value == "300 ug/d" for r in rows), "900 days ago is outside 24 months"


def test_the_table_shows_a_half_microgram_dose_as_it_is_and_no_trailing_zero() -> None:
    chart = Chart(
        patient=Patient("Patient/p"),
        dose_history=(
            DoseChange(NOW - timedelta(days=20), 400.0, None, "MedicationStatement/a"),
            DoseChange(NOW - timedelta(days=10), 462.5, 400.0, "MedicationStatement/b"),
        ),
        refills=(Refill(NOW - timedelta(days=15), "Procedure/r1", 20.0),),
    )
    rows, _ = trend_rows(chart, NOW)
    assert [r.value for r in rows] == ["462.5 ug/d", "20 mL", "400 ug/d"]


def test_a_dense_series_is_drawn_as_a_line_and_the_table_keeps_the_newest_rows() -> None:
    dense = tuple(
        Score("mas", 2.0, "2", NOW - timedelta(hours=6 * i), f"Observation/d{i}") for i in range(600)
    )
    chart = Chart(patient=Patient("Patient/p"), scores=dense)
    root = ET.fromstring(render_trend_svg(chart, NOW))
    assert root.findall(f"{SVG}circle") == []
    assert len(root.findall(f"{SVG}polyline")) == 1
    rows, total = trend_rows(chart, NOW, limit=50)
    assert (len(rows), total) == (50, 600)
    assert rows[0].when == NOW
