"""Per-launch chart cache: the chart is read from the EHR once and reused while the clinician tries doses.

A live check re-runs on every change of the proposed dose; re-reading the record each time would
multiply the EHR's load for nothing. The cache is per process and short-lived: another worker simply
reads the chart again, and ``refresh`` forces a fresh read (the pharmacist's re-check does that).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import load_chart
from plugin.launches.tokens import fhir_client_for_launch

CHART_TTL_SECONDS = 300
_MAX_ENTRIES = 256

_cache: dict[str, tuple[float, Chart]] = {}
_lock = threading.Lock()


def chart_for_launch(
    launch_id: str, patient_id: str, *, refresh: bool = False, now: datetime | None = None
) -> Chart:
    """Return the launch patient's chart, from the cache when fresh, else read from the EHR."""
    if not refresh:
        with _lock:
            cached = _cache.get(launch_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    client = fhir_client_for_launch(launch_id)  # shared per launch; not closed here
    chart = load_chart(client, patient_id, codes=load_code_sets(), now=now or datetime.now(UTC))
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            oldest = min(_cache, key=lambda key: _cache[key][0])
            del _cache[oldest]
        _cache[launch_id] = (time.monotonic() + CHART_TTL_SECONDS, chart)
    return chart


def forget_chart(launch_id: str) -> None:
    """Drop a launch's cached chart (after a write that changes it)."""
    with _lock:
        _cache.pop(launch_id, None)
