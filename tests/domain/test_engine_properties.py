"""Properties of the engine that must hold on any chart (hypothesis).

- No established current dose is never "pass".
- On the same chart, a larger increase never gets a milder verdict.
- The same dose written in different units (via units.py) gives the same result.
"""

from __future__ import annotations

from datetime import timedelta

from chart_builders import (
    NOW,
    ago,
    base_chart,
    born_years_ago,
    co_med,
    dose_record,
    egfr,
    increase,
    pump,
    run,
    score,
    sign,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.domain.chart import Chart, Origin, Patient, Phase
from plugin.domain.result import CheckResult, Verdict
from plugin.domain.units import daily_dose_ug, parse_dose_text

VERDICT_RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.BLOCK: 2, Verdict.CANNOT_CHECK: 3}
doses_ug = st.floats(min_value=0.0, max_value=20_000.0, allow_nan=False, allow_infinity=False)


@st.composite
def charts(draw: st.DrawFn, current_ug: float | None = 400.0) -> Chart:
    """Draw a chart around the baseline: origin, age, phase, pump, history, co-medication, signs."""
    age = draw(st.sampled_from([None, 3, 8, 15, 40, 80]))
    implant_days = draw(st.sampled_from([None, 5, 59, 60, 800]))
    pump_record = draw(
        st.sampled_from(
            [
                None,
                pump(implant_date=ago(days=implant_days) if implant_days else None),
                pump(fill_volume_ml=None),
                pump(concentration_ug_per_ml=1500.0, next_refill_date=NOW + timedelta(days=10)),
                pump(fill_volume_ml=40.0, last_fill_date=NOW),
            ]
        )
    )
    history = draw(
        st.sampled_from(
            [
                (),
                (increase(ago(days=500), 350.0, 400.0),),
                (increase(ago(hours=3), 380.0, 400.0),),
                (increase(ago(days=20), 300.0, 350.0), increase(ago(days=3), 350.0, 400.0)),
            ]
        )
    )
    scores = draw(
        st.sampled_from(
            [
                (),
                (score(2, ago(days=10)),),
                (score(3, ago(days=40), source="Observation/a"), score(1, ago(days=2))),
            ]
        )
    )
    chart = base_chart(
        patient=Patient(reference="Patient/p1", birth_date=born_years_ago(age) if age is not None else None),
        origin=draw(st.sampled_from(list(Origin))),
        pump=pump_record,
        dose_history=history,
        scores=scores,
        co_medications=draw(st.sampled_from([(), (co_med("Diazepam", "benzodiazepine"),)])),
        clinical_signs=draw(st.sampled_from([(), (sign("pruritus", ago(hours=4)),)])),
        egfr=draw(st.sampled_from([None, egfr(20.0), egfr(90.0)])),
    )
    if current_ug is not None:
        chart = base_chart(**{**_fields(chart), "dose_records": (dose_record(current_ug),)})
    return chart


def _fields(chart: Chart) -> dict[str, object]:
    """Return a chart's fields as keyword arguments."""
    return {name: getattr(chart, name) for name in Chart.__dataclass_fields__}


unknown_dose_records = st.sampled_from(
    [
        (),
        (dose_record(None, unconvertible_reason="tablets"),),
        (dose_record(400.0), dose_record(480.0, source="MedicationRequest/b")),
        (
            dose_record(None),
            dose_record(100.0, source="MedicationRequest/b"),
            dose_record(90.0, source="X/c"),
        ),
    ]
)


@settings(max_examples=200)
@given(
    chart=charts(), records=unknown_dose_records, proposed_ug=doses_ug, phase=st.sampled_from([None, *Phase])
)
def test_unknown_current_dose_never_passes(
    chart: Chart, records: tuple[object, ...], proposed_ug: float, phase: Phase | None
) -> None:
    result = run(base_chart(**{**_fields(chart), "dose_records": records}), proposed_ug, phase=phase)
    assert result.verdict is Verdict.CANNOT_CHECK
    assert result.current_daily_dose_ug is None and result.change_percent is None


@settings(max_examples=300)
@given(
    chart=charts(),
    steps=st.tuples(
        st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
        st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
    ),
    phase=st.sampled_from([None, *Phase]),
    origin=st.sampled_from([None, Origin.SPINAL, Origin.CEREBRAL]),
)
def test_a_larger_increase_never_gets_a_milder_verdict(
    chart: Chart, steps: tuple[float, float], phase: Phase | None, origin: Origin | None
) -> None:
    smaller, larger = sorted(steps)
    first = run(chart, 400.0 * (1 + smaller), phase=phase, origin=origin)
    second = run(chart, 400.0 * (1 + larger), phase=phase, origin=origin)
    assert VERDICT_RANK[second.verdict] >= VERDICT_RANK[first.verdict], (first.findings, second.findings)


def _summary(result: CheckResult) -> tuple[object, ...]:
    """Return what must not depend on the unit a dose was written in."""
    return (
        result.verdict,
        result.change_percent,
        sorted((f.code, f.severity.value) for f in result.findings),
    )


@settings(max_examples=200)
@given(
    chart=charts(current_ug=None),
    current_ug=st.integers(min_value=24, max_value=2400),
    proposed_ug=st.integers(0, 5000),
)
def test_the_same_dose_in_other_units_gives_the_same_result(
    chart: Chart, current_ug: int, proposed_ug: int
) -> None:
    fields = _fields(chart)
    written = [
        (current_ug, "ug/d"),
        (current_ug / 1000, "mg/d"),
        (current_ug / 24, "ug/h"),
        (current_ug, "ug/(24.h)"),
    ]
    results = [
        run(
            base_chart(**{**fields, "dose_records": (dose_record(daily_dose_ug(value, unit)),)}),
            float(proposed_ug),
        )
        for value, unit in written
    ]
    assert all(_summary(r) == _summary(results[0]) for r in results)
    proposals = [f"{proposed_ug} ug/d", f"{proposed_ug / 1000} mg/d", f"{proposed_ug} mcg/day"]
    same_chart = base_chart(**{**fields, "dose_records": (dose_record(float(current_ug)),)})
    by_text = [run(same_chart, parse_dose_text(text)) for text in proposals]
    assert all(_summary(r) == _summary(by_text[0]) for r in by_text)
