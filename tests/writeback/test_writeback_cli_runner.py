"""``itb outbox run|list|export`` inside a Flask app, and the background OutboxRunner thread."""

from __future__ import annotations

import json
import time

from flask import Flask
from writeback_support import EPIC_LIKE_CAPS, FULL_CAPS, FakeEhr, queue_note

from plugin.db import Database
from plugin.writeback.cli import outbox_cli
from plugin.writeback.outbox import submission_status
from plugin.writeback.resources import WriteBackSettings
from plugin.writeback.runner import OutboxRunner
from smart_launch.fhir_client import FhirClient

NOTE_ONLY = WriteBackSettings(detected_issues=False, questionnaire_response=False, provenance=False)


def make_app(db: Database, client: FhirClient) -> Flask:
    """Return a bare Flask app with the database, the client factory and the outbox commands."""
    app = Flask("writeback-test")
    app.extensions["itb.db"] = db
    app.extensions["itb.client_factory"] = lambda item: client
    app.cli.add_command(outbox_cli)
    return app


def test_outbox_run_once_files_due_notes(db: Database, ehr: FakeEhr, client: FhirClient) -> None:
    submission = queue_note(db, FULL_CAPS, settings=NOTE_ONLY)
    result = make_app(db, client).test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 1, confirmed 1" in result.output
    with db.session() as session:
        assert submission_status(session, submission).state == "filed"


def test_outbox_list_shows_states_without_patient_data(
    db: Database, ehr: FakeEhr, client: FhirClient
) -> None:
    queue_note(db, EPIC_LIKE_CAPS)
    runner = make_app(db, client).test_cli_runner()
    result = runner.invoke(args=["outbox", "list"])
    assert result.exit_code == 0
    assert "DocumentReference" in result.output and "held" in result.output
    assert "Jane" not in result.output and "123" not in result.output.replace("-", " ").split()
    held = runner.invoke(args=["outbox", "list", "--status", "held"])
    assert "pending" not in held.output


def test_outbox_list_on_an_empty_queue(db: Database, client: FhirClient) -> None:
    result = make_app(db, client).test_cli_runner().invoke(args=["outbox", "list"])
    assert "the outbox is empty" in result.output


def test_outbox_export_prints_a_bundle(db: Database, client: FhirClient) -> None:
    submission = queue_note(db, EPIC_LIKE_CAPS)
    runner = make_app(db, client).test_cli_runner()
    result = runner.invoke(args=["outbox", "export", submission])
    assert json.loads(result.output)["resourceType"] == "Bundle"
    assert runner.invoke(args=["outbox", "export", "nope"]).exit_code == 1


def test_the_background_runner_files_a_note_and_stops(db: Database, ehr: FakeEhr, client: FhirClient) -> None:
    submission = queue_note(db, FULL_CAPS)
    runner = OutboxRunner(db, lambda item: client, interval_seconds=60)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.session() as session:
                if submission_status(session, submission).state == "filed":
                    break
            time.sleep(0.05)
    finally:
        runner.stop()
    assert not runner.is_alive()
    assert runner.last_report is not None and runner.last_report.failed == 0
    with db.session() as session:
        assert submission_status(session, submission).state == "filed"


def test_the_background_runner_survives_a_broken_round(db: Database, ehr: FakeEhr) -> None:
    calls: list[int] = []

    class Broken(Database):
        """A database whose sessions always fail."""

        def session(self):  # type: ignore[no-untyped-def,override]
            calls.append(1)
            raise RuntimeError("database down")

    runner = OutboxRunner(Broken(db.url), lambda item: None, interval_seconds=0.01)  # type: ignore[arg-type,return-value]
    runner.start()
    time.sleep(0.1)
    runner.stop()
    assert len(calls) > 1 and not runner.is_alive()
