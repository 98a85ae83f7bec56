"""Per-launch chart cache: the chart is read from the EHR once and reused while the clinician tries doses.

A live check re-runs on every change of the proposed dose; re-reading the record each time would
multiply the EHR's load for nothing. The cache is per process and short-lived: another worker simply
reads the chart again, and ``refresh`` forces a fresh read (the pharmacist's re-check does that).

Apart from the cache, each launch keeps the chart its latest note preview was built on, under the
preview's submit key, for as long as the launch is cached here (not only ``CHART_TTL_SECONDS``): when the
EHR cannot be read at submit, the note is filed from the chart the clinician previewed, and when it can,
a fresh chart that would change the note is noticed instead of being filed silently.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import load_chart
from plugin.launches.tokens import fhir_client_for_launch

CHART_TTL_SECONDS = 300
_MAX_ENTRIES = 256

_cache: dict[str, tuple[float, Chart]] = {}
_previews: dict[str, tuple[float, str, Chart]] = {}  # launch id -> (when, submit key, chart previewed)
_lock = threading.Lock()


def cached_chart(launch_id: str) -> Chart | None:
    """Return the launch's cached chart while it is fresh, else None (never reads the EHR)."""
    with _lock:
        cached = _cache.get(launch_id)
    return cached[1] if cached and cached[0] > time.monotonic() else None


def chart_for_launch(
    launch_id: str, patient_id: str, *, refresh: bool = False, now: datetime | None = None
) -> Chart:
    """Return the launch patient's chart, from the cache when fresh, else read from the EHR."""
    if not refresh and (cached := cached_chart(launch_id)) is not None:
        return cached
    client = fhir_client_for_launch(launch_id)  # shared per launch; not closed here
    chart = load_chart(client, patient_id, codes=load_code_sets(), now=now or datetime.now(UTC))
    with _lock:
        _evict_oldest(_cache)
        _cache[launch_id] = (time.monotonic() + CHART_TTL_SECONDS, chart)
    return chart


def remember_preview(launch_id: str, submit_key: str, chart: Chart) -> None:
    """Keep the chart a note preview was built on (one per launch: the latest preview's)."""
    with _lock:
        _evict_oldest(_previews)
        _previews[launch_id] = (time.monotonic(), submit_key, chart)


def previewed_chart(launch_id: str, submit_key: str) -> Chart | None:
    """Return the chart the launch's preview with this submit key was built on, if this process has it."""
    with _lock:
        kept = _previews.get(launch_id)
    if kept is None or not submit_key or kept[1] != submit_key:
        return None
    return kept[2]


def _evict_oldest(entries: dict[str, Any]) -> None:
    """Drop the entry whose first item (a time) is smallest when ``entries`` is full (lock held)."""
    if len(entries) >= _MAX_ENTRIES:
        oldest = min(entries, key=lambda key: entries[key][0])
        del entries[oldest]


def forget_chart(launch_id: str) -> None:
    """Drop a launch's cached chart and preview (after a write that changes it)."""
    with _lock:
        _cache.pop(launch_id, None)
        _previews.pop(launch_id, None)
