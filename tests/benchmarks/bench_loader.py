"""Benchmark: bytes -> Chart against bytes -> json.loads for a large record (not collected by pytest).

Run: ``python tests/benchmarks/bench_loader.py``. A Bundle of 5,000 Observations (labs, vitals,
scores, pump values), 500 medication records (intrathecal history, co-medications, other drugs), a
Patient and Conditions is serialised once; both pipelines are timed, median of several runs. The target:
total loading <= 2.0x ``json.loads`` alone (i.e. the loader proper costs at most one more ``json.loads``).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plugin.domain.codes import load_code_sets  # noqa: E402
from plugin.domain.loader import chart_from_bundle  # noqa: E402

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
SUBJECT = {"reference": "Patient/bench"}
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
RUNS = 9
TARGET_RATIO = 2.0


def _when(i: int) -> str:
    """Return an ISO instant ``i`` hours before NOW."""
    return (NOW - timedelta(hours=i)).isoformat().replace("+00:00", "Z")


def _observation(i: int) -> dict[str, Any]:
    """Return the i-th Observation: mostly labs, some vitals, scores and pump values."""
    kind = i % 10
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "subject": SUBJECT,
        "effectiveDateTime": _when(i),
        "category": [{"coding": [{"code": "laboratory"}]}],
    }
    if kind == 0:
        base["code"] = {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]}
        base["valueQuantity"] = {"value": 36.8, "unit": "Cel", "system": UCUM, "code": "Cel"}
    elif kind == 1:
        base["code"] = {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure"}]}
        base["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "code": "mm[Hg]", "system": UCUM},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "code": "mm[Hg]", "system": UCUM},
            },
        ]
    elif kind == 2 and i % 20 == 2:
        base["code"] = {
            "coding": [{"system": "http://itb-dose-check.org/CodeSystem/spasticity", "code": "mas"}]
        }
        base["valueString"] = "1+"
    else:
        base["code"] = {
            "coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}],
            "text": "Glucose",
        }
        base["valueQuantity"] = {
            "value": 5.4 + (i % 7) / 10,
            "unit": "mmol/L",
            "system": UCUM,
            "code": "mmol/L",
        }
        base["referenceRange"] = [
            {"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 5.6, "unit": "mmol/L"}}
        ]
    return base


def _medication(i: int) -> dict[str, Any]:
    """Return the i-th medication record: intrathecal history, a few co-medications, other drugs."""
    record: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"m{i}",
        "subject": SUBJECT,
        "effectivePeriod": {"start": _when(24 * (500 - i))},
        "status": "completed",
    }
    if i % 5 == 0:
        record["medicationCodeableConcept"] = {"text": "baclofen intrathecal 2000 mcg/mL"}
        record["status"] = "active" if i == 495 else "completed"
        record["dosage"] = [
            {
                "route": {"text": "intrathecal"},
                "doseAndRate": [
                    {
                        "rateQuantity": {
                            "value": 300 + i // 25 * 5,
                            "unit": "ug/d",
                            "system": UCUM,
                            "code": "ug/d",
                        }
                    }
                ],
            }
        ]
    else:
        name = ("diazepam 5 mg tablet", "amlodipine 5 mg", "metformin 500 mg", "oxycodone 5 mg")[i % 4]
        record["medicationCodeableConcept"] = {"text": name}
        record["status"] = "active" if i > 480 else "completed"
        record["dosage"] = [
            {
                "route": {"text": "oral"},
                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}],
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            }
        ]
    return record


def build_bundle() -> bytes:
    """Return the benchmark Bundle as JSON bytes."""
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": "bench",
            "birthDate": "1970-01-01",
            "name": [{"text": "Bench Mark"}],
        }
    ]
    resources += [_observation(i) for i in range(5000)]
    resources += [_medication(i) for i in range(500)]
    resources += [
        {
            "resourceType": "Condition",
            "id": f"c{i}",
            "subject": SUBJECT,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": ("Spinal cord injury", "Hypertension", "Type 2 diabetes")[i % 3]},
        }
        for i in range(30)
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    return json.dumps(bundle).encode("utf-8")


def _median_seconds(action: Any) -> float:
    """Return the median wall time of ``action`` over RUNS runs."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    """Run the benchmark and print json.loads time, bytes->Chart time and their ratio."""
    payload = build_bundle()
    codes = load_code_sets()
    chart = chart_from_bundle(json.loads(payload), codes=codes, now=NOW)  # warm-up (imports, R4B models)
    assert chart.dose_records and chart.scores and chart.vitals, "benchmark bundle did not load as expected"
    parse_s = _median_seconds(lambda: json.loads(payload))
    load_s = _median_seconds(lambda: chart_from_bundle(json.loads(payload), codes=codes, now=NOW))
    ratio = load_s / parse_s
    print(f"bundle: {len(payload) / 1e6:.1f} MB, 5,000 Observations, 500 medication records")
    print(f"json.loads:           {parse_s * 1000:8.1f} ms (median of {RUNS})")
    print(f"json.loads + loader:  {load_s * 1000:8.1f} ms (median of {RUNS})")
    print(f"ratio:                {ratio:8.2f} (target <= {TARGET_RATIO})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
