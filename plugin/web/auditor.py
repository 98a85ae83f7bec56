"""The auditor's view of the audit log: search, a patient's dose-change timeline, exports, chain status.

Only launches whose role is ``auditor`` get in (the role comes from the EHR registry's fhirUser mapping);
anyone else gets a 403 page and an ``action.refused`` record. Reading the audit log is itself audited:
each page writes ``audit.view`` and each download ``audit.export`` (with its format, filters and count).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import IO, Any, cast

from flask import Response, current_app, render_template, request
from flask.typing import ResponseReturnValue

from plugin.audit.app_events import audit, request_id
from plugin.audit.export import FORMATS, ExportFormat, export_records
from plugin.audit.log import AuditEntry, record
from plugin.audit.verify import VerifyReport, verify_chain
from plugin.db import Database, get_db
from plugin.launches.base import registry
from plugin.launches.models import Launch
from plugin.web.auditor_query import AuditFilters, FilterError, search, timeline
from plugin.web.launch import error_page
from plugin.web.launch_scope import current_launch, launch_blueprint

bp = launch_blueprint("auditor", __name__)

EXPORT_TYPES: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "ndjson": ("application/x-ndjson; charset=utf-8", "ndjson"),
    "fhir": ("application/fhir+json; charset=utf-8", "json"),
}
_CHUNK_CHARS = 64 * 1024


@bp.before_request
def auditors_only() -> ResponseReturnValue | None:
    """Refuse (403, audited as ``action.refused``) every launch whose role is not auditor."""
    launch = current_launch()
    if launch.role == "auditor":
        return None
    audit(
        launch,
        "action.refused",
        detail={
            "view": str(request.endpoint),
            "role": launch.role,
            "reason": "the audit log is open to auditors only",
        },
    )
    return error_page(
        "The audit log is open to auditors only. Your role here is "
        f"{launch.role}; ask your site's administrator if you need audit access.",
        403,
    )


def audit_as_auditor(
    launch: Launch,
    action: str,
    *,
    patient_id: str | None,
    detail: dict[str, Any],
    db: Database | None = None,
    req_id: str | None = None,
) -> None:
    """Record an auditor's act about ``patient_id`` (the patient looked at, not the launch's patient)."""
    record(
        db or get_db(),
        AuditEntry(
            actor=launch.fhir_user or f"unknown-user@{launch.client_id}",
            actor_role="auditor",
            action=action,
            patient_id=patient_id,
            iss=launch.iss,
            request_id=req_id or request_id(),
            detail=detail,
        ),
    )


def audit_scope(launch: Launch) -> tuple[str, ...]:
    """Return the ``iss`` values whose records this auditor may see: the launch's EHR, the CDS issuers
    the registry lists for it, and the CDS clients that call with that EHR as their fhirServer (their
    cards are recorded under the client's iss).

    One deployment may serve several EHRs (the registry); an auditor launched from one of them sees
    that EHR's patients only, as the pharmacist's queue does. The same patient id at another EHR is
    another person.
    """
    scope = [str(launch.iss)]
    entry = registry().find(str(launch.iss))
    if entry is not None:
        scope.extend(entry.cds_issuers)  # the registry's "CDS Hooks JWT issuers trusted for this EHR"
    cds = current_app.extensions.get("itb.cds")
    if cds is not None:
        base = str(launch.iss).rstrip("/")
        for client in cds.verifier.clients.values():
            if any(server.rstrip("/") == base for server in client.fhir_servers):
                scope.append(client.iss)
    return tuple(dict.fromkeys(scope))


def chain_status() -> VerifyReport:
    """Verify the whole chain for the page's badge."""
    return verify_chain(get_db())


@bp.get("/audit/")
def search_page() -> ResponseReturnValue:
    """Show the filter form, the matching records (newest first, paged) and the export buttons."""
    launch = current_launch()
    try:
        filters = replace(AuditFilters.from_args(request.args), iss_in=audit_scope(launch))
    except FilterError as error:
        audit_as_auditor(
            launch, "audit.view", patient_id=None, detail={"view": "search", "error": str(error)}
        )
        return render_template(
            "auditor_search.html",
            filters=AuditFilters(),
            page=None,
            form_error=str(error),
            args=request.args,
            chain=chain_status(),
        ), 400
    audit_as_auditor(
        launch,
        "audit.view",
        patient_id=filters.patient,
        detail={"view": "search", "filters": filters.summary(), "page": filters.page},
    )
    return render_template(
        "auditor_search.html",
        filters=filters,
        page=search(get_db(), filters),
        form_error=None,
        args=request.args,
        chain=chain_status(),
    )


@bp.get("/audit/patients/<patient_id>")
def patient_timeline(patient_id: str) -> ResponseReturnValue:
    """Show one patient's dose changes: who proposed, the checks, overrides and who verified."""
    launch = current_launch()
    try:
        AuditFilters.from_args({"patient": patient_id})
    except FilterError as error:
        return error_page(str(error), 404)
    audit_as_auditor(launch, "audit.view", patient_id=patient_id, detail={"view": "timeline"})
    return render_template(
        "auditor_timeline.html",
        patient_id=patient_id,
        stories=timeline(get_db(), patient_id, audit_scope(launch)),
        chain=chain_status(),
    )


@bp.get("/audit/export/<fmt>")
def export(fmt: str) -> ResponseReturnValue:
    """Stream an export (CSV, NDJSON or a FHIR Bundle) of the patient / since filters; audited."""
    launch = current_launch()
    if fmt not in FORMATS:
        return error_page("Exports are CSV, NDJSON or a FHIR Bundle.", 404)
    try:
        filters = AuditFilters.from_args(
            {"patient": request.args.get("patient", ""), "date_from": request.args.get("since", "")}
        )
    except FilterError as error:
        return error_page(str(error), 400)
    content_type, extension = EXPORT_TYPES[fmt]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"itb-audit-{filters.patient or 'all'}-{stamp}.{extension}"
    detail = {
        "format": fmt,
        "patient": filters.patient,
        "since": filters.date_from.isoformat() if filters.date_from else None,
        "via": "auditor-view",
    }

    db, req_id = get_db(), request_id()  # the response is streamed after the request context has gone

    def finished(count: int | None) -> None:
        audit_as_auditor(
            launch,
            "audit.export",
            patient_id=filters.patient,
            db=db,
            req_id=req_id,
            detail={**detail, "records": count, "complete": count is not None},
        )

    chunks = stream_export(
        db, cast(ExportFormat, fmt), filters.patient, filters.date_from, finished, audit_scope(launch)
    )
    return Response(
        chunks, content_type=content_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


class _QueueWriter:
    """A text sink for ``export_records`` that hands ~64 KB chunks to the response through a queue."""

    def __init__(self, chunks: queue.Queue[str | BaseException | None], stop: threading.Event) -> None:
        self._chunks, self._stop, self._buffer, self._size = chunks, stop, list[str](), 0

    def write(self, text: str) -> int:
        """Buffer ``text``; pass a full chunk on (blocking while the client reads slowly)."""
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= _CHUNK_CHARS:
            self.flush()
        return len(text)

    def flush(self) -> None:
        """Pass the buffered text on."""
        if self._buffer:
            chunk, self._buffer, self._size = "".join(self._buffer), [], 0
            self.send(chunk)

    def send(self, item: str | BaseException | None) -> None:
        """Put one item on the queue, waiting while it is full; give up when the client has gone."""
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise ConnectionAbortedError("the client stopped reading the export")


def stream_export(
    db: Database,
    fmt: ExportFormat,
    patient: str | None,
    since: date | None,
    finished: Callable[[int | None], None],
    iss_in: tuple[str, ...] | None = None,
) -> Iterator[bytes]:
    """Yield an export as it is written (bounded memory); call ``finished(count)`` at the end.

    ``count`` is None when the export did not finish (the client went away or the database failed).
    """
    chunks: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()
    counted: list[int] = []

    def produce() -> None:
        writer = _QueueWriter(chunks, stop)
        try:
            counted.append(
                export_records(
                    db, patient_id=patient, since=since, fmt=fmt, out=cast(IO[str], writer), iss_in=iss_in
                )
            )
            writer.flush()
            writer.send(None)
        except Exception as error:  # handed to the response thread, which raises it
            with contextlib.suppress(ConnectionAbortedError):
                writer.send(error)

    def generate() -> Iterator[bytes]:
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item.encode("utf-8")
        finally:
            stop.set()
            producer.join(timeout=5)
            finished(counted[0] if counted else None)

    producer = threading.Thread(target=produce, name="audit-export", daemon=True)
    producer.start()
    return generate()
