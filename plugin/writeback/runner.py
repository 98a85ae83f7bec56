"""A background thread that files the outbox every few seconds (for ``itb demo`` and single-process use)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime

from plugin.db import Database, utcnow
from plugin.writeback.sender import ClientFactory, RunReport, run_once

log = logging.getLogger(__name__)


def runner_owner() -> str:
    """Return a lease owner name unique to this process and runner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_round(
    db: Database, client_factory: ClientFactory, *, owner: str, limit: int = 20, now: datetime | None = None
) -> RunReport:
    """Run one background round: send due rows, then audit the submissions the round settled.

    The clinician's request audits its own first attempt (plugin.web.notes); what a runner files later
    is audited here, once per submission.
    """
    from plugin.audit.writeback_outcomes import audit_settled  # the audit layer reads the change tables

    report = run_once(db, client_factory, now=now or utcnow(), owner=owner, limit=limit)
    audit_settled(db, report.touched, now or utcnow())
    return report


class OutboxRunner(threading.Thread):
    """Call ``run_once`` every ``interval_seconds`` until ``stop()``; ``wake()`` runs it at once."""

    def __init__(
        self,
        db: Database,
        client_factory: ClientFactory,
        *,
        interval_seconds: float = 15.0,
        limit: int = 20,
        owner: str | None = None,
    ) -> None:
        super().__init__(name="itb-outbox-runner", daemon=True)
        self.db = db
        self.client_factory = client_factory
        self.interval_seconds = interval_seconds
        self.limit = limit
        self.owner = owner or runner_owner()
        self.stop_event = threading.Event()
        self._wake_event = threading.Event()
        self.last_report: RunReport | None = None

    def run(self) -> None:
        """Run until stopped; an error in one round is logged and the next round tries again."""

        while not self.stop_event.is_set():
            try:
                self.last_report = run_round(self.db, self.client_factory, owner=self.owner, limit=self.limit)
            except Exception as exc:  # the rows stay in the database; never let the thread die
                # Only the type: database errors can quote statement parameters (the note itself).
                log.error("outbox round failed: %s", type(exc).__name__)
            self._wake_event.wait(self.interval_seconds)
            self._wake_event.clear()

    def wake(self) -> None:
        """Run a round now (e.g. right after a submission) instead of at the next tick."""
        self._wake_event.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop and wait for the current round to end."""
        self.stop_event.set()
        self._wake_event.set()
        if self.is_alive():
            self.join(timeout)
