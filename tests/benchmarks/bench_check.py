"""Benchmark ``engine.check`` on a busy chart: 200 Observations (scores and vitals), 50 medication records.

Not collected by pytest (the name does not start with ``test_``). Run it as a script:

    .venv/bin/python tests/benchmarks/bench_check.py

Target: median below 1 ms per check. Prints the median, 95th percentile and minimum.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plugin.domain.chart import (  # noqa: E402 - after the path set-up above
    Chart,
    ClinicalSign,
    CoMedication,
    ConditionEvidence,
    DoseChange,
    DoseRecord,
    LabValue,
    Origin,
    Patient,
    Pump,
    Score,
    VitalSign,
)
from plugin.domain.engine import check  # noqa: E402
from plugin.domain.result import Proposal  # noqa: E402
from plugin.domain.rules_config import load_rules  # noqa: E402

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TARGET_MS = 1.0


def busy_chart() -> Chart:
    """Return a chart with 200 Observations and 50 medication records."""
    scores = tuple(
        Score(
            code=("mas", "spasticity-nrs", "psfs-frequency", "psfs-severity")[i % 4],
            value=float(i % 4),
            display=str(i % 4),
            effective=NOW - timedelta(days=i * 3),
            source=f"Observation/score-{i}",
        )
        for i in range(100)
    )
    vitals = tuple(
        VitalSign(
            kind=("temperature", "systolic")[i % 2],
            value=(36.9 if i % 2 == 0 else 118.0),
            unit=("Cel", "mm[Hg]")[i % 2],
            effective=NOW - timedelta(hours=i * 7),
            source=f"Observation/vital-{i}",
        )
        for i in range(99)
    )
    egfr = LabValue(
        code="33914-3",
        value=75.0,
        unit="mL/min/{1.73_m2}",
        effective=NOW - timedelta(days=3),
        source="Observation/egfr",
    )
    history = tuple(
        DoseChange(
            at=NOW - timedelta(days=700 - i * 20),
            from_daily_dose_ug=200.0 + i * 5,
            to_daily_dose_ug=205.0 + i * 5,
            source=f"MedicationStatement/h{i}",
        )
        for i in range(35)
    )
    co_meds = tuple(
        CoMedication(
            source=f"MedicationStatement/co{i}",
            display=f"Drug {i}",
            classes=frozenset({"opioid"}) if i % 5 == 0 else frozenset(),
        )
        for i in range(13)
    )
    records = (
        DoseRecord(
            source="MedicationStatement/itb",
            status="active",
            daily_dose_ug=380.0,
            concentration_ug_per_ml=2000.0,
        ),
        DoseRecord(
            source="MedicationRequest/itb",
            status="active",
            daily_dose_ug=380.0,
            concentration_ug_per_ml=2000.0,
        ),
    )
    return Chart(
        patient=Patient(reference="Patient/bench", birth_date=date(1975, 5, 5)),
        dose_records=records,
        dose_history=history,
        scores=scores,
        vitals=vitals,
        clinical_signs=(
            ClinicalSign(
                kind="pruritus",
                effective=NOW - timedelta(days=30),
                source="Condition/itch",
                display="Pruritus",
            ),
        ),
        egfr=egfr,
        co_medications=co_meds,
        origin=Origin.SPINAL,
        origin_evidence=(ConditionEvidence(source="Condition/sci", display="SCI", category="spinal"),),
        pump=Pump(
            source="Device/pump",
            fill_volume_ml=20.0,
            last_fill_date=NOW - timedelta(days=20),
            low_reservoir_alarm_volume_ml=2.0,
            next_refill_date=NOW + timedelta(days=50),
            concentration_ug_per_ml=2000.0,
            implant_date=NOW - timedelta(days=900),
        ),
    )


def main(rounds: int = 2000) -> int:
    """Time ``check`` ``rounds`` times, print the numbers, return 0 when the median meets the target."""
    rules = load_rules()
    chart = busy_chart()
    proposal = Proposal(daily_dose_ug=420.0)
    for _ in range(200):  # warm-up
        check(chart, proposal, rules, NOW)
    timings_ms = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        check(chart, proposal, rules, NOW)
        timings_ms.append((time.perf_counter_ns() - start) / 1e6)
    timings_ms.sort()
    median = statistics.median(timings_ms)
    p95 = timings_ms[int(len(timings_ms) * 0.95)]
    observations = len(chart.scores) + len(chart.vitals) + 1
    medications = len(chart.dose_records) + len(chart.dose_history) + len(chart.co_medications)
    print(f"check(): {observations} observations, {medications} medication records, {rounds} rounds")
    print(
        f"  median {median:.3f} ms   p95 {p95:.3f} ms   min {timings_ms[0]:.3f} ms   target < {TARGET_MS} ms"
    )
    print(f"  verdict: {check(chart, proposal, rules, NOW).verdict.value}")
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
