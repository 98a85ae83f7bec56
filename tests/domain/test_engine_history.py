"""Specification of the history rules: increase-too-soon and dose-creep."""

from __future__ import annotations

import pytest
from chart_builders import ago, base_chart, codes, increase, only, run

from plugin.domain.result import Severity, Verdict


@pytest.mark.parametrize(
    ("hours_ago", "fires"),
    [(23.99, True), (1.0, True), (24.0, False), (30.0, False)],
    ids=["just-under-24h", "1h", "exactly-24h", "30h"],
)
def test_increase_less_than_24_hours_after_another_blocks(hours_ago: float, fires: bool) -> None:
    chart = base_chart(
        dose_history=(increase(ago(hours=hours_ago), 380.0, 400.0, "MedicationStatement/prev"),)
    )
    result = run(chart)
    assert ("increase-too-soon" in codes(result)) is fires
    if fires:
        finding = only(result, "increase-too-soon")
        assert finding.severity is Severity.BLOCK
        assert finding.evidence == ("MedicationStatement/prev",)
        assert result.verdict is Verdict.BLOCK


def test_recent_decrease_does_not_make_an_increase_too_soon() -> None:
    chart = base_chart(dose_history=(increase(ago(hours=2), 450.0, 400.0),))
    assert "increase-too-soon" not in codes(run(chart))


def test_a_decrease_right_after_an_increase_is_not_too_soon() -> None:
    chart = base_chart(dose_history=(increase(ago(hours=2), 380.0, 400.0),))
    assert "increase-too-soon" not in codes(run(chart, proposed_ug=380.0))


def test_future_dated_change_is_ignored() -> None:
    chart = base_chart(dose_history=(increase(ago(hours=-2), 380.0, 400.0),))
    assert "increase-too-soon" not in codes(run(chart))


def test_no_dose_history_says_the_history_rules_could_not_be_evaluated() -> None:
    result = run(base_chart(dose_history=()))
    for code in ("increase-too-soon", "dose-creep"):
        finding = only(result, code)
        assert finding.severity is Severity.INFO
        assert finding.message.startswith("Could not be evaluated")
    assert result.verdict is Verdict.PASS


def test_no_dose_history_is_not_reported_for_a_decrease() -> None:
    assert not {"increase-too-soon", "dose-creep"} & codes(
        run(base_chart(dose_history=()), proposed_ug=380.0)
    )


@pytest.mark.parametrize(
    ("steps", "fires"),
    [
        ([(200, 300.0, 350.0), (100, 350.0, 400.0)], False),  # exactly 100 ug/d in the year
        ([(200, 300.0, 350.0), (100, 350.0, 400.1)], True),  # 100.1 ug/d
        ([(366, 200.0, 350.0), (100, 350.0, 400.0)], False),  # the big step is older than 365 days
        ([(365, 200.0, 350.0), (100, 350.0, 400.0)], True),  # exactly 365 days ago counts
    ],
    ids=["100-exactly", "100.1", "outside-year", "365-days-edge"],
)
def test_dose_creep_after_more_than_100_ug_of_increases_in_a_year(
    steps: list[tuple[int, float, float]], fires: bool
) -> None:
    history = tuple(increase(ago(days=d), a, b, f"MedicationStatement/h{d}") for d, a, b in steps)
    result = run(base_chart(dose_history=history))
    assert ("dose-creep" in codes(result)) is fires
    if fires:
        assert only(result, "dose-creep").severity is Severity.WARN


@pytest.mark.parametrize(
    ("days_ago", "fires"),
    [((20, 5), True), ((31, 5), False), ((30, 5), True), ((5,), False)],
    ids=["two-in-30", "one-outside", "edge-30-days", "only-one"],
)
def test_dose_creep_after_two_increases_in_30_days(days_ago: tuple[int, ...], fires: bool) -> None:
    history = tuple(increase(ago(days=d), 390.0, 400.0, f"MedicationStatement/h{d}") for d in days_ago)
    result = run(base_chart(dose_history=history))
    assert ("dose-creep" in codes(result)) is fires
    if fires:
        assert "device evaluation" in only(result, "dose-creep").message


def test_dose_creep_only_concerns_increases() -> None:
    history = (increase(ago(days=20), 390.0, 400.0), increase(ago(days=5), 395.0, 400.0))
    assert "dose-creep" not in codes(run(base_chart(dose_history=history), proposed_ug=390.0))
