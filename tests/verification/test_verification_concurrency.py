"""Decisions and submissions at the same moment: one pharmacist wins, and one proposal per patient stays.

Runs on SQLite (file, WAL, two connections) and, with ITB_TEST_DATABASE_URL, on the session's
PostgreSQL database migrated to head (tests/verification/conftest.py). The last two tests interleave two
transactions on purpose, which only PostgreSQL allows: SQLite has one writer at a time, so the second
transaction would wait for the first, which waits for the second.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.launches.models import Launch
from plugin.migrations_runner import upgrade
from plugin.verification.models import VerificationAction
from plugin.verification.queue import on_dose_change_submitted
from plugin.verification.service import Decision, VerificationConflict, decide
from plugin.writeback.resources import WriteBackSettings
from tests.conftest import SANDBOX_ISS
from tests.pg_support import BACKENDS
from tests.verification.support import NOW, PHARMACIST, change_record, make_change, stored_review
from tests.verification.test_verification_service import CAPS, note_input


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """Return a migrated SQLite file database."""
    url = f"sqlite:///{tmp_path / 'verification.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture(params=BACKENDS)
def any_db(request: pytest.FixtureRequest) -> Database:
    """Return a migrated database on each backend."""
    db: Database = request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")
    return db


def pharmacist(user: str) -> Launch:
    """Return a (transient) pharmacist launch in Patient/p1's chart."""
    now = datetime.now(UTC)
    return Launch(
        id=str(uuid.uuid4()),
        handle_hash=uuid.uuid4().hex,
        iss=SANDBOX_ISS,
        client_id="itb-test",
        patient_id="p1",
        fhir_user=user,
        role="pharmacist",
        scope="",
        tokens_enc="",
        access_expires_at=now,
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def run_decision(
    db: Database, record: DoseChangeRecord, user: str, decision: Decision, now: datetime = NOW
) -> VerificationAction:
    """Apply one decision in its own transaction."""
    with db.session() as session:
        return decide(
            session,
            launch=pharmacist(user),
            decision=decision,
            review=stored_review(record),
            capabilities=CAPS,
            settings=WriteBackSettings(),
            now=now,
        )


def statuses(db: Database, *records: DoseChangeRecord) -> list[str]:
    """Return the current status of each change."""
    with db.session() as session:
        return [session.get_one(DoseChangeRecord, r.id).status for r in records]


def in_threads(*targets: Callable[[], None]) -> None:
    """Run each target in its own thread; re-raise the first error any of them raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def test_two_simultaneous_verifications_one_wins_one_gets_a_conflict(any_db: Database) -> None:
    record = make_change(any_db)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def verify(user: str) -> None:
        start.wait()
        try:
            run_decision(any_db, record, user, Decision(record.id, 1, "verify"))
            outcomes[user] = "won"
        except VerificationConflict as conflict:
            outcomes[user] = conflict.message

    threads = [threading.Thread(target=verify, args=(f"Practitioner/pharmacist-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and list(outcomes.values()).count("won") == 1, outcomes
    winner = next(user for user, outcome in outcomes.items() if outcome == "won")
    loser_message = next(outcome for outcome in outcomes.values() if outcome != "won")
    assert loser_message.startswith(f"This change was already verified by {winner}")
    assert "nothing was filed" in loser_message
    with any_db.session() as session:
        actions = session.scalars(
            select(VerificationAction).where(VerificationAction.dose_change_id == record.id)
        ).all()
        assert [(a.actor, a.status_after) for a in actions] == [(winner, "verified")]
        row = session.get(DoseChangeRecord, record.id)
        assert row is not None and (row.status, row.version) == ("verified", 2)


@pytest.mark.postgres
def test_two_submissions_for_one_patient_at_the_same_moment_leave_only_one_proposed(pg_db: Database) -> None:
    # Each submission's transaction has inserted its change (uncommitted, so invisible to the other)
    # when both supersede the patient's older proposals. Without a lock, neither sees the other's
    # change and both stay proposed: two proposals of one patient for the pharmacist.
    older = make_change(pg_db, submitted_at=NOW - timedelta(hours=1))
    inserted = threading.Barrier(2, timeout=30)
    submitted = [change_record(submitted_at=NOW + timedelta(seconds=n)) for n in (1, 2)]

    def submit(record: DoseChangeRecord) -> Callable[[], None]:
        def run() -> None:
            with pg_db.session() as session:
                session.add(record)
                session.flush()
                inserted.wait()
                on_dose_change_submitted(session, record, note_input("p1"))

        return run

    in_threads(*(submit(r) for r in submitted))
    assert statuses(pg_db, older) == ["superseded"]
    assert sorted(statuses(pg_db, *submitted)) == ["proposed", "superseded"]


@pytest.mark.postgres
def test_an_undo_while_a_newer_change_is_being_submitted_leaves_only_the_newer_proposed(
    pg_db: Database,
) -> None:
    # The undo looks for a newer change of the patient while the newer one's transaction has not yet
    # committed: without a lock it finds none, moves the change back to proposed, and the newer one
    # (which superseded only proposals it could see) stays proposed too.
    verified = make_change(pg_db)
    run_decision(pg_db, verified, PHARMACIST, Decision(verified.id, 1, "verify"))
    newer = change_record(submitted_at=NOW + timedelta(minutes=1))
    superseded_others = threading.Event()
    undone = threading.Event()

    def submit() -> None:
        with pg_db.session() as session:
            session.add(newer)
            on_dose_change_submitted(session, newer, note_input("p1"))
            superseded_others.set()
            wait_for_undo(pg_db, undone)  # commit only once the undo is done or waits for this one

    def undo() -> None:
        assert superseded_others.wait(30)
        try:
            decision = Decision(verified.id, 2, "undo", reason="Verified the wrong change.")
            run_decision(pg_db, verified, PHARMACIST, decision, NOW + timedelta(minutes=2))
        finally:
            undone.set()

    in_threads(submit, undo)
    assert statuses(pg_db, verified, newer) == ["superseded", "proposed"]


def wait_for_undo(db: Database, undone: threading.Event, timeout: float = 30) -> None:
    """Return when ``undone`` is set or a session of this database waits for an advisory lock."""
    deadline = time.monotonic() + timeout
    waiting = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while not undone.is_set() and time.monotonic() < deadline:
        with db.engine.connect() as connection:
            if connection.scalar(waiting):
                return
        time.sleep(0.01)
