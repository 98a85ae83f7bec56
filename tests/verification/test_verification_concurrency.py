"""Two pharmacists verify the same change at the same moment: one wins, the other gets a clear conflict.

Runs on SQLite (file, WAL, two connections) and, with ITB_TEST_DATABASE_URL, on PostgreSQL in a fresh
schema migrated to head.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from plugin.db import Database
from plugin.launches.models import Launch
from plugin.migrations_runner import upgrade
from plugin.verification.models import VerificationAction
from plugin.verification.service import Decision, VerificationConflict, decide
from plugin.writeback.resources import WriteBackSettings
from tests.conftest import SANDBOX_ISS
from tests.verification.support import NOW, make_change, stored_review
from tests.verification.test_verification_service import CAPS


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """Return a migrated SQLite file database."""
    url = f"sqlite:///{tmp_path / 'verification.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture
def pg_db() -> Iterator[Database]:
    """Return a migrated PostgreSQL database in its own schema; skip without ITB_TEST_DATABASE_URL."""
    import os

    if not os.environ.get("ITB_TEST_DATABASE_URL"):
        pytest.skip("ITB_TEST_DATABASE_URL is not set (scripts/postgres/start.sh starts a server)")
    from tests.audit.helpers import postgres_schema_url

    with postgres_schema_url() as url:
        upgrade(url)
        db = Database(url)
        yield db
        db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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


def test_two_simultaneous_verifications_one_wins_one_gets_a_conflict(any_db: Database) -> None:
    record = make_change(any_db)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def verify(user: str) -> None:
        start.wait()
        try:
            with any_db.session() as session:
                decide(
                    session,
                    launch=pharmacist(user),
                    decision=Decision(record.id, 1, "verify"),
                    review=stored_review(record),
                    capabilities=CAPS,
                    settings=WriteBackSettings(),
                    now=NOW,
                )
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
        actions = session.scalars(select(VerificationAction)).all()
        assert [(a.actor, a.status_after) for a in actions] == [(winner, "verified")]
        row = session.get(DoseChangeRecord, record.id)
        assert row is not None and (row.status, row.version) == ("verified", 2)
