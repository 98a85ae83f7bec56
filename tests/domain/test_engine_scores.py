"""Specification of the score rules: assessment-stale and score-conflict."""

from __future__ import annotations

import pytest
from chart_builders import ago, base_chart, codes, only, run, score

from plugin.domain.result import Severity


@pytest.mark.parametrize(("days_ago", "fires"), [(90, False), (90.5, True), (30, False), (200, True)])
def test_assessment_stale_after_90_days(days_ago: float, fires: bool) -> None:
    chart = base_chart(scores=(score(2, ago(days=days_ago)),))
    result = run(chart, proposed_ug=400.0)
    assert ("assessment-stale" in codes(result)) is fires
    if fires:
        finding = only(result, "assessment-stale")
        assert finding.severity is Severity.WARN and finding.evidence == ("Observation/mas-1",)


def test_no_score_at_all_is_assessment_stale() -> None:
    finding = only(run(base_chart(scores=())), "assessment-stale")
    assert finding.severity is Severity.WARN
    assert "No spasticity score" in finding.message


def test_score_after_now_does_not_count() -> None:
    result = run(base_chart(scores=(score(2, ago(days=-1)),)), proposed_ug=400.0)
    assert "assessment-stale" in codes(result)


@pytest.mark.parametrize(
    ("before", "latest", "proposed_ug", "fires"),
    [
        (3, 2, 440.0, True),  # improved, yet an increase
        (2, 3, 440.0, False),  # worsened, increase fits
        (2, 2, 440.0, False),  # unchanged
        (2, 3, 380.0, True),  # worsened, yet a decrease
        (3, 2, 380.0, False),  # improved, decrease fits
        (3, 2, 400.0, False),  # no change proposed
    ],
)
def test_score_conflict(before: float, latest: float, proposed_ug: float, fires: bool) -> None:
    chart = base_chart(
        scores=(score(before, ago(days=40), source="Observation/a"), score(latest, ago(days=5)))
    )
    result = run(chart, proposed_ug=proposed_ug)
    assert ("score-conflict" in codes(result)) is fires
    if fires:
        finding = only(result, "score-conflict")
        assert finding.severity is Severity.WARN
        assert finding.evidence == ("Observation/a", "Observation/mas-1")


def test_score_conflict_compares_within_one_scale() -> None:
    scores = (
        score(3, ago(days=40), code="mas", source="Observation/m1"),
        score(1, ago(days=30), code="spasticity-nrs", source="Observation/n1"),
        score(3, ago(days=5), code="mas", source="Observation/m2"),
        score(7, ago(days=4), code="spasticity-nrs", source="Observation/n2"),
    )
    assert "score-conflict" not in codes(run(base_chart(scores=scores)))


def test_one_score_per_scale_means_score_conflict_could_not_be_evaluated() -> None:
    finding = only(run(base_chart(scores=(score(2, ago(days=5)),))), "score-conflict")
    assert finding.severity is Severity.INFO and finding.message.startswith("Could not be evaluated")
