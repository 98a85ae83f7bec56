"""Specification of the reservoir arithmetic (clinical.md §2.4) and the reservoir and concentration rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from chart_builders import NOW, RULES, ago, base_chart, codes, dose_record, only, pump, run

from plugin.domain.chart import Pump
from plugin.domain.result import Severity
from plugin.domain.rules_reservoir import reservoir_projection


def test_projection_matches_the_worked_example_of_clinical_md() -> None:
    fresh = pump(last_fill_date=NOW)
    at_400 = reservoir_projection(fresh, 400.0, 400.0, 2000.0, NOW, RULES)
    assert at_400 is not None
    assert at_400.proposed_daily_volume_ml == pytest.approx(0.2)
    assert at_400.days_to_alarm == pytest.approx(90.0)
    at_520 = reservoir_projection(fresh, 400.0, 520.0, 2000.0, NOW, RULES)
    assert at_520 is not None
    assert at_520.days_to_alarm == pytest.approx(69.23, abs=0.01)
    assert at_520.days_to_empty == pytest.approx(76.92, abs=0.01)
    assert at_520.low_reservoir_alarm_date == NOW + timedelta(days=at_520.days_to_alarm)


def test_projection_uses_the_old_dose_until_now_then_the_new_one() -> None:
    projection = reservoir_projection(pump(last_fill_date=ago(days=30)), 400.0, 800.0, 2000.0, NOW, RULES)
    assert projection is not None
    assert projection.remaining_volume_ml == pytest.approx(20.0 - 0.2 * 30)
    assert projection.days_to_alarm == pytest.approx((14.0 - 2.0) / 0.4)
    assert projection.refill_by_date == min(
        projection.low_reservoir_alarm_date, ago(days=30) + timedelta(days=180)
    )


def test_projection_uses_the_default_alarm_volume_when_none_is_recorded() -> None:
    projection = reservoir_projection(
        pump(low_reservoir_alarm_volume_ml=None), 400.0, 400.0, 2000.0, NOW, RULES
    )
    assert projection is not None
    assert projection.alarm_volume_is_default and projection.low_reservoir_alarm_volume_ml == 2.0


@pytest.mark.parametrize(
    "changes",
    [{"fill_volume_ml": None}, {"last_fill_date": None}],
)
def test_projection_is_none_without_fill_data(changes: dict[str, object]) -> None:
    assert reservoir_projection(pump(**changes), 400.0, 440.0, 2000.0, NOW, RULES) is None  # type: ignore[arg-type]


def test_projection_is_none_without_concentration_current_dose_or_positive_proposal() -> None:
    assert reservoir_projection(pump(), 400.0, 440.0, None, NOW, RULES) is None
    assert reservoir_projection(pump(), None, 440.0, 2000.0, NOW, RULES) is None
    assert reservoir_projection(pump(), 400.0, 0.0, 2000.0, NOW, RULES) is None


@pytest.mark.parametrize(("refill_in_days", "fires"), [(72, False), (73, True)])
def test_reservoir_before_refill(refill_in_days: int, fires: bool) -> None:
    # 18 mL left, 0.22 mL/d at 440 ug/d: the alarm sounds in 72.7 days.
    chart = base_chart(pump=pump(next_refill_date=NOW + timedelta(days=refill_in_days)))
    result = run(chart)
    assert ("reservoir-before-refill" in codes(result)) is fires
    if fires:
        finding = only(result, "reservoir-before-refill")
        assert finding.severity is Severity.WARN and finding.evidence == ("Device/pump",)
        assert "72.7 days" in finding.message


def test_missing_next_refill_date_is_reported_with_the_alarm_date() -> None:
    finding = only(run(base_chart(pump=pump(next_refill_date=None))), "reservoir-before-refill")
    assert finding.severity is Severity.INFO and "no next refill date" in finding.message


@pytest.mark.parametrize(
    ("chart_changes", "words"),
    [
        ({"pump": None}, "no implanted pump"),
        (
            {"pump": Pump(source="Device/pump", concentration_ug_per_ml=2000.0)},
            "no fill volume, no fill date",
        ),
    ],
)
def test_missing_pump_data_says_reservoir_rules_could_not_be_evaluated(
    chart_changes: dict[str, object], words: str
) -> None:
    result = run(base_chart(**chart_changes))
    for code in ("reservoir-before-refill", "refill-interval-long"):
        finding = only(result, code)
        assert finding.severity is Severity.INFO and words in finding.message


def test_refill_interval_long_when_the_reservoir_lasts_beyond_180_days() -> None:
    # 400 ug/d at 2000 ug/mL, 40 mL filled today: (40 - 2) / 0.2 = 190 days.
    long_chart = base_chart(
        pump=pump(fill_volume_ml=40.0, last_fill_date=NOW, next_refill_date=NOW + timedelta(days=90))
    )
    assert only(run(long_chart, proposed_ug=400.0), "refill-interval-long").severity is Severity.INFO
    # 38 mL: (38 - 2) / 0.2 = exactly 180 days: does not fire.
    edge = base_chart(
        pump=pump(fill_volume_ml=38.0, last_fill_date=NOW, next_refill_date=NOW + timedelta(days=90))
    )
    assert "refill-interval-long" not in codes(run(edge, proposed_ug=400.0))


def test_refill_scheduled_more_than_180_days_after_the_fill_is_long() -> None:
    chart = base_chart(pump=pump(fill_volume_ml=40.0, next_refill_date=ago(days=10) + timedelta(days=181)))
    assert "next refill is scheduled" in only(run(chart, proposed_ug=200.0), "refill-interval-long").message
    on_day_180 = base_chart(pump=pump(next_refill_date=ago(days=10) + timedelta(days=180)))
    assert "refill-interval-long" not in codes(run(on_day_180, proposed_ug=400.0))


@pytest.mark.parametrize(
    ("concentration", "fires", "words"),
    [
        (500.0, False, ""),
        (1000.0, False, ""),
        (2000.0, False, ""),
        (1500.0, True, "not a standard"),
        (50.0, True, "screening"),
    ],
)
def test_concentration_nonstandard(concentration: float, fires: bool, words: str) -> None:
    result = run(base_chart(pump=pump(concentration_ug_per_ml=concentration)), proposed_ug=400.0)
    assert ("concentration-nonstandard" in codes(result)) is fires
    if fires:
        finding = only(result, "concentration-nonstandard")
        assert finding.severity is Severity.WARN and words in finding.message


def test_concentration_from_the_dose_record_when_the_pump_has_none() -> None:
    chart = base_chart(
        pump=pump(concentration_ug_per_ml=None), dose_records=(dose_record(concentration_ug_per_ml=1500.0),)
    )
    assert only(run(chart), "concentration-nonstandard").evidence == ("MedicationStatement/itb",)


def test_concentration_that_differs_between_pump_and_dose_record_warns() -> None:
    chart = base_chart(dose_records=(dose_record(concentration_ug_per_ml=1000.0),))
    finding = only(run(chart), "concentration-nonstandard")
    assert "records 1000 ug/mL instead of 2000" in finding.message


def test_no_concentration_anywhere_is_reported() -> None:
    chart = base_chart(pump=pump(concentration_ug_per_ml=None))
    assert only(run(chart), "concentration-nonstandard").severity is Severity.INFO


def test_discontinuation_skips_the_reservoir_projection() -> None:
    assert not {"reservoir-before-refill", "refill-interval-long"} & codes(run(proposed_ug=0.0))
