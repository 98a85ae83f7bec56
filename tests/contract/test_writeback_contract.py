"""Write-back through the outbox against a real server: every row confirmed, exactly once.

A dose-change submission (note, DetectedIssues, QuestionnaireResponse, Provenance) for a sandbox
patient is queued in a SQLite outbox and sent by ``run_once`` with a client for the server under
contract. Then the idempotency promises are tested where they matter, on the server: a second run, a
re-enqueue and a row whose confirmation was lost (as after a timeout) create no duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from contract.support import NOW, FhirServer, dose_change_note
from plugin.db import Base, Database
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.outbox import enqueue_submission
from plugin.writeback.resources import (
    PLACEHOLDER_PREFIX,
    WriteBackSettings,
    WriteContext,
    write_id_of,
    write_key,
)
from plugin.writeback.sender import run_once
from plugin.writeback.submission import build_submission

pytestmark = pytest.mark.fhir_server
PATIENT = "dose-creep-renal"  # warn with two findings: an override, several DetectedIssues


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """Yield a fresh SQLite outbox database."""
    database = Database(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _submission(server: FhirServer) -> tuple[list[dict[str, Any]], WriteContext]:
    """Build the resources of one dose-change submission for PATIENT on this server."""
    note, result = dose_change_note(PATIENT, server.client)
    assert result.verdict.value == "warn" and len(result.findings) >= 2
    # Epic sends fhirUser as an absolute URL on its own base; the builders make it relative.
    context = WriteContext(server.base_url, PATIENT, f"{server.base_url}/Practitioner/clinician-1", None, NOW)
    return build_submission(note, context=context, settings=WriteBackSettings()), context


def _enqueue(db: Database, server: FhirServer, resources: list[dict[str, Any]], context: WriteContext) -> str:
    """Queue the resources for the server; return the submission id."""
    with db.session() as session:
        return enqueue_submission(
            session,
            launch_id="contract-launch",
            iss=server.base_url,
            patient_id=PATIENT,
            resources=resources,
            capabilities=server.client.capabilities(),
            author_ref=context.fhir_user,
            now=NOW,
        )


def _rows(db: Database, submission_id: str) -> list[OutboxItem]:
    """Return a submission's rows in order."""
    with db.session() as session:
        return list(
            session.scalars(
                select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
            )
        )


def _copies(server: FhirServer, row: OutboxItem) -> list[str]:
    """Return the ids of every resource on the server that carries this row's write id."""
    name, value = write_key(row.resource_type, row.id)
    return [
        r["id"] for r in server.client.search(row.resource_type, {name: value}) if write_id_of(r) == row.id
    ]


def test_the_outbox_files_every_resource_once(loaded_server: FhirServer, db: Database) -> None:
    resources, context = _submission(loaded_server)
    submission_id = _enqueue(db, loaded_server, resources, context)

    report = run_once(db, lambda item: loaded_server.client, now=NOW, owner="contract-1")

    rows = _rows(db, submission_id)
    assert [r.resource_type for r in rows] == [r["resourceType"] for r in resources]
    assert {r.resource_type for r in rows} == {
        "DocumentReference",
        "DetectedIssue",
        "QuestionnaireResponse",
        "Provenance",
    }
    assert [r.status for r in rows] == [OutboxStatus.CONFIRMED.value] * len(resources), [
        (r.resource_type, r.status, r.last_error) for r in rows
    ]
    assert report.confirmed == len(resources) and report.failed == 0
    assert all(r.dropped == [] for r in rows), [(r.resource_type, r.dropped) for r in rows]

    note_row = rows[0]
    note = loaded_server.client.read("DocumentReference", str(note_row.server_id))
    assert write_id_of(note) == note_row.id
    assert note["subject"]["reference"] == f"Patient/{PATIENT}"
    assert note["author"] == [{"reference": "Practitioner/clinician-1"}]
    provenance = loaded_server.client.read("Provenance", str(rows[-1].server_id))
    targets = {t["reference"] for t in provenance["target"]}
    assert targets == {f"{r.resource_type}/{r.server_id}" for r in rows[:-1]}
    assert PLACEHOLDER_PREFIX not in json.dumps(provenance)

    # Nothing is due any more; a second run sends nothing and the server holds one copy of each.
    again = run_once(db, lambda item: loaded_server.client, now=NOW, owner="contract-2")
    assert again.claimed == 0
    assert _enqueue(db, loaded_server, resources, context) == submission_id
    assert run_once(db, lambda item: loaded_server.client, now=NOW, owner="contract-3").claimed == 0
    for row in rows:
        assert _copies(loaded_server, row) == [row.server_id]


@pytest.mark.parametrize("attempts", [0, 1], ids=["conditional-create", "lookup-first"])
def test_a_lost_confirmation_makes_no_duplicate(
    loaded_server: FhirServer, db: Database, attempts: int
) -> None:
    resources, context = _submission(loaded_server)
    submission_id = _enqueue(db, loaded_server, resources, context)
    run_once(db, lambda item: loaded_server.client, now=NOW, owner="contract-1")
    rows = _rows(db, submission_id)
    assert all(r.status == OutboxStatus.CONFIRMED.value for r in rows)

    # As if the EHR stored each resource but the answer never came: the rows are pending again.
    with db.session() as session:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.submission_id == submission_id)
            .values(status=OutboxStatus.PENDING.value, server_id=None, attempts=attempts, next_attempt_at=NOW)
        )
    report = run_once(db, lambda item: loaded_server.client, now=NOW, owner="contract-2")

    assert report.confirmed == len(resources) and report.failed == 0
    resent = _rows(db, submission_id)
    assert [r.server_id for r in resent] == [r.server_id for r in rows]
    for row in resent:
        assert _copies(loaded_server, row) == [row.server_id]
