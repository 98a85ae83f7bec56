"""Nothing lost, nothing doubled: the outbox process is killed (SIGKILL) after the EHR stored the note but
before the answer was recorded; after a restart the outbox files the rest and the EHR holds one note."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugin.db import Base, Database
from plugin.writeback import models as _models  # noqa: F401  (registers the outbox table)
from plugin.writeback.outbox import enqueue_submission, submission_status
from plugin.writeback.resources import WriteBackSettings, WriteContext
from plugin.writeback.sender import run_once
from plugin.writeback.submission import build_submission
from smart_launch.fhir_client import FhirClient
from smart_launch.sandbox import SandboxConfig, create_sandbox_app, serve_in_thread
from smart_launch.sandbox.auth import Grant, LaunchContext
from tests.writeback.writeback_support import note_input

pytestmark = pytest.mark.e2e

WRITE_SYSTEM = "http://itb-dose-check.org/fhir/identifier/write"

# Runs in a child process: send the queued rows, and die the moment the first create has been answered.
DOOMED_RUNNER = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime
    from plugin.db import Database
    from plugin.writeback import sender
    from smart_launch.fhir_client import FhirClient

    db_url, base, token = sys.argv[1:4]
    client = FhirClient(base, lambda: token)
    original = sender._send

    def send_then_die(client, item, resource):
        original(client, item, resource)          # the EHR has stored it ...
        os.kill(os.getpid(), signal.SIGKILL)      # ... and the answer is never recorded

    sender._send = send_then_die
    sender.run_once(Database(db_url), lambda item: client, now=datetime.now(UTC), owner="doomed")
    """
)


def _notes_with(store, write_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        r
        for r in store.all("DocumentReference")
        if any(
            i.get("system") == WRITE_SYSTEM and i.get("value") == write_id for i in r.get("identifier", [])
        )
    ]


def test_a_kill_between_sending_and_recording_leaves_exactly_one_note(tmp_path: Path) -> None:
    sandbox = create_sandbox_app(SandboxConfig(seed=False))
    server = serve_in_thread(sandbox)
    context = sandbox.extensions["sandbox"]
    # Like HAPI, the sandbox refuses references to resources it does not hold.
    tenant = context.store.tenant("full")
    tenant.create({"resourceType": "Patient", "id": "123"}, "123")
    for reference in ("MedicationStatement/abc", "MedicationRequest/opioid-1", "MedicationRequest/oral-2"):
        kind, rid = reference.split("/")
        tenant.create(
            {"resourceType": kind, "id": rid, "status": "active", "subject": {"reference": "Patient/123"}},
            rid,
        )
    context.auth.issue_access_token(
        "crash-test-token",
        Grant("itb-public", "user/*.cruds", LaunchContext("full", "clinician-1", "123")),
        3600,
    )
    base = f"{server.url}/full/fhir"
    client = FhirClient(base, lambda: "crash-test-token")
    db_url = f"sqlite:///{tmp_path / 'outbox.sqlite'}"
    db = Database(db_url)
    Base.metadata.create_all(db.engine)
    try:
        now = datetime.now(UTC)
        resources = build_submission(
            note_input(),
            context=WriteContext(base, "123", "Practitioner/clinician-1", None, now),
            settings=WriteBackSettings(),
        )
        note_id = resources[0]["identifier"][0]["value"]
        with db.session() as session:
            submission = enqueue_submission(
                session,
                launch_id="launch-1",
                iss=base,
                patient_id="123",
                resources=resources,
                capabilities=client.capabilities(),
                author_ref="Practitioner/clinician-1",
                now=now,
            )

        child = subprocess.run(
            [sys.executable, "-c", DOOMED_RUNNER, db_url, base, "crash-test-token"],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        store = context.store.tenant("full")
        assert len(_notes_with(store, note_id)) == 1, "the EHR stored the note before the kill"
        with db.session() as session:
            assert submission_status(session, submission).state == "pending", "the answer was never recorded"

        # Restart: a new runner, after the dead one's lease has run out.
        run_once(db, lambda item: client, now=now + timedelta(hours=1), owner="survivor")
        with db.session() as session:
            status = submission_status(session, submission)
        assert status.state == "filed", status.message
        assert len(_notes_with(store, note_id)) == 1, "the retry found the note instead of filing it twice"
        assert len(store.all("DocumentReference")) == 1
        filed = [i for i in status.items if i.server_id]
        assert len(store.all("DetectedIssue")) == sum(i.resource_type == "DetectedIssue" for i in filed)
        assert len(store.all("Provenance")) == 1
    finally:
        client.close()
        db.dispose()
        server.shutdown()
