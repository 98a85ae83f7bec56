"""Per-launch chart cache: the chart is read from the EHR once and reused while the clinician tries doses.

A live check re-runs on every change of the proposed dose; re-reading the record each time would
multiply the EHR's load for nothing. The cache is per process and short-lived: another worker simply
reads the chart again, and ``refresh`` forces a fresh read (the pharmacist's re-check does that).

Apart from the cache, each launch keeps the chart its latest note preview was built on, under the
preview's submit key: when the EHR cannot be read at submit, the note is filed from the chart the
clinician previewed, and when it can, a fresh chart that would change the note is noticed instead of
being filed silently. The submit may reach another worker or host than the preview did, so that chart is
kept in this process (for as long as the launch is cached here, not only ``CHART_TTL_SECONDS``) and,
sealed with the app's cipher, in the app's database (``NotePreview``: one row per launch, gone with its
launch and purged once the launch's session has expired).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from plugin.clinician.models import NotePreview, purge_expired_previews
from plugin.db import get_db
from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import load_chart
from plugin.launches.base import cipher
from plugin.launches.models import Launch
from plugin.launches.tokens import fhir_client_for_launch

CHART_TTL_SECONDS = 300
_MAX_ENTRIES = 256

_cache: dict[str, tuple[float, Chart]] = {}
_previews: dict[str, tuple[float, str, Chart]] = {}  # launch id -> (when, submit key, chart previewed)
_lock = threading.Lock()
log = logging.getLogger(__name__)


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


def remember_preview(launch: Launch, submit_key: str, chart: Chart, *, now: datetime) -> None:
    """Keep the chart a note preview was built on (one per launch: the latest preview's), here and stored."""
    with _lock:
        _evict_oldest(_previews)
        _previews[launch.id] = (time.monotonic(), submit_key, chart)
    try:
        _store_preview(launch, submit_key, chart, now)
    except (SQLAlchemyError, ValueError, TypeError, msgspec.MsgspecError) as exc:
        # The preview still shows and this process can still file it; only another worker cannot.
        # Only the type: database errors can quote statement parameters (the sealed chart).
        log.warning(
            "the previewed chart could not be stored: %s",
            type(exc).__name__,
            extra={"event": "chart.preview_not_stored"},
        )


def _store_preview(launch: Launch, submit_key: str, chart: Chart, now: datetime) -> None:
    """Upsert the launch's sealed preview chart, and purge the rows of expired launches, in one transaction."""
    sealed = cipher().seal_bytes(msgspec.json.encode(chart))
    values = {
        "launch_id": launch.id,
        "submit_key": submit_key,
        "chart_enc": sealed,
        "stored_at": now,
        "expires_at": launch.expires_at,
    }
    with get_db().session() as session:
        session.execute(_upsert(session, values))
        purge_expired_previews(session, now)


def _upsert(session: Session, values: dict[str, Any]) -> Any:
    """Return an INSERT of a preview row that replaces the launch's row (previews race in two tabs)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(NotePreview).values(**values)
    replaced = {name: statement.excluded[name] for name in values if name != "launch_id"}
    return statement.on_conflict_do_update(index_elements=[NotePreview.launch_id], set_=replaced)


def previewed_chart(launch_id: str, submit_key: str) -> Chart | None:
    """Return the chart this submit key's preview was built on: this process's copy, else the stored one."""
    if not submit_key:
        return None
    with _lock:
        kept = _previews.get(launch_id)
    if kept is not None and kept[1] == submit_key:
        return kept[2]
    return _stored_preview(launch_id, submit_key)


def _stored_preview(launch_id: str, submit_key: str) -> Chart | None:
    """Return the stored chart of the launch's preview with this submit key, if it can be read."""
    try:
        with get_db().session() as session:
            row = session.get(NotePreview, launch_id)
            sealed = row.chart_enc if row is not None and row.submit_key == submit_key else None
        if sealed is None:
            return None
        # A secret-key rotation (undecryptable) or a changed Chart (undecodable) leaves no usable copy.
        return msgspec.json.decode(cipher().open_bytes(sealed), type=Chart)
    except (SQLAlchemyError, ValueError, msgspec.MsgspecError) as exc:
        log.warning(
            "the stored preview chart cannot be read; treated as absent: %s",
            type(exc).__name__,
            extra={"event": "chart.preview_unreadable"},
        )
        return None


def _evict_oldest(entries: dict[str, Any]) -> None:
    """Drop the entry whose first item (a time) is smallest when ``entries`` is full (lock held)."""
    if len(entries) >= _MAX_ENTRIES:
        oldest = min(entries, key=lambda key: entries[key][0])
        del entries[oldest]
