"""A short-lived, per-process cache of charts built from a complete CDS prefetch (ADR 0002).

An EHR calls the service several times for one order: ``order-select`` as the order is picked, again as
its dose is edited, ``order-sign`` at the end, each with the same prefetch (the patient's record does
not change between them). Reading ~200 Observations into a Chart is the largest cost of a call, so a
chart built from byte-identical prefetch JSON for the same patient is reused for a short while.

What keeps it safe:
- The key is a SHA-256 digest of the prefetch's JSON text exactly as sent (the request's top level is
  decoded without parsing it, ``plugin.cds.service.decode_request``) and the patient id: any changed
  resource, added Observation, reordered key or even changed whitespace is a miss and a fresh read.
- Only a prefetch that satisfied every template is cached. A call that needed ``fhirServer`` (whose
  answer may change between calls) or left gaps is never cached, so a cached chart never hides a fetch.
- The rules always run with the call's own ``now``; only the chart's reading of the record (which
  statements are active, which dates lie in the future) is as of the first call, at most
  ``ITB_CDS_CHART_CACHE_SECONDS`` (default 60 s, 0 turns the cache off) earlier.
- The Chart is immutable (frozen dataclasses), so threads may share it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from plugin.domain.chart import Chart

DEFAULT_MAX_ENTRIES = 256


class ChartCache:
    """A bounded LRU of (chart, gaps) by prefetch digest, each entry valid for ``ttl_seconds``."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Chart, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Say whether the cache keeps anything at all."""
        return self.ttl_seconds > 0 and self.max_entries > 0

    def key(self, prefetch_json: bytes, patient_id: str) -> bytes | None:
        """Return the cache key of a prefetch's JSON text for a patient, or None when the cache is off."""
        if not self.enabled:
            return None
        digest = hashlib.sha256()
        digest.update(patient_id.encode())
        digest.update(b"\x00")
        digest.update(prefetch_json)
        return digest.digest()

    def get(self, key: bytes | None) -> tuple[Chart, tuple[str, ...]] | None:
        """Return the cached chart and gaps for ``key`` while fresh, else None."""
        if key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2]

    def put(self, key: bytes | None, chart: Chart, gaps: tuple[str, ...]) -> None:
        """Keep a chart built from a complete prefetch for ``ttl_seconds``."""
        if key is None:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_seconds, chart, gaps)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        """Return how many entries are held (fresh or not yet evicted)."""
        with self._lock:
            return len(self._entries)
