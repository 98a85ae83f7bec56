"""SQLite's WAL is checkpointed on a background thread, not by the commit that crosses 1,000 pages."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from plugin.db import Database
from plugin.wal_checkpoint import SAFETY_NET_PAGES, WalCheckpointer

_FORK = multiprocessing.get_context("fork")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """Yield a file SQLite database with a table to write to."""
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
    yield database
    database.dispose()


def checkpointer_of(db: Database) -> WalCheckpointer:
    """Return the database's checkpointer."""
    checkpointer = db._checkpointer  # noqa: SLF001 - what this test is about
    assert checkpointer is not None
    return checkpointer


def write_rows(db: Database, count: int) -> None:
    """Commit ``count`` small transactions (each appends frames to the WAL)."""
    for i in range(count):
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO t (body) VALUES (:body)"), {"body": "x" * 500 + str(i)})


def test_connections_leave_checkpoints_to_the_background_thread(db: Database) -> None:
    with db.engine.connect() as connection:
        pages = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    assert pages == SAFETY_NET_PAGES, "a commit would still checkpoint every 1,000 pages"


def test_the_thread_copies_the_wal_into_the_database_by_itself(db: Database) -> None:
    checkpointer = checkpointer_of(db)
    checkpointer.interval = 0.05
    assert checkpointer.is_alive()
    write_rows(db, 50)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = checkpointer.last_result
        if result is not None and result[2] > 0:
            break
        time.sleep(0.02)
    assert result is not None and result[2] > 0, "no frames were checkpointed"
    assert result[0] == 0, "a PASSIVE checkpoint never waits"


def test_dispose_stops_the_thread(db: Database) -> None:
    checkpointer = checkpointer_of(db)
    db.dispose()
    assert not checkpointer.is_alive()


def _report_alive(db: Database, alive: Any) -> None:
    """In a forked child: say whether this process has a running checkpoint thread."""
    alive.value = 1 if checkpointer_of(db).is_alive() else 0


def test_a_forked_worker_runs_its_own_thread(db: Database) -> None:
    # gunicorn forks its workers after loading the app; threads do not survive a fork.
    alive = _FORK.Value("b", -1)
    child = _FORK.Process(target=_report_alive, args=(db, alive))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert alive.value == 1


def test_in_memory_sqlite_has_no_checkpointer() -> None:
    database = Database("sqlite://")
    assert database._checkpointer is None  # noqa: SLF001
    database.dispose()


def test_a_failing_checkpoint_is_logged_and_the_thread_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 100)
    checkpointer = WalCheckpointer(path)
    with caplog.at_level(logging.WARNING, logger="plugin.wal_checkpoint"):
        assert checkpointer.checkpoint_once() is None
    assert [r.getMessage() for r in caplog.records] == ["WAL checkpoint failed: DatabaseError"]
