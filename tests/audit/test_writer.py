"""The writer: entries are validated, secrets are refused, concurrent writers keep one chain."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from audit.helpers import create_audit_table, make_entry, write_in_process
from plugin.audit.log import AuditEntry, audit_logger, record
from plugin.audit.models import AUDIT_TABLE
from plugin.audit.verify import verify_chain
from plugin.db import Database

THREADS = 8
PER_THREAD = 25


def write_concurrently(db: Database, *, own_database_per_thread: bool = False) -> list[BaseException]:
    """Start THREADS writers at once (behind a barrier); return the errors they raised."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        target = Database(db.url) if own_database_per_thread else db
        try:
            barrier.wait()
            for index in range(PER_THREAD):
                record(target, make_entry(index, actor=f"Practitioner/thread-{number}"))
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            if target is not db:
                target.dispose()

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def assert_one_gapless_chain(db: Database, expected: int) -> None:
    """Assert the chain verifies and holds seq 1..expected."""
    report = verify_chain(db)
    assert report.ok, [str(problem) for problem in report.breaks]
    assert report.count == expected and report.last_seq == expected
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count(func.distinct(AUDIT_TABLE.c.prev_hash)))) == expected


def test_eight_threads_on_sqlite_keep_one_chain(sqlite_db: Database) -> None:
    assert write_concurrently(sqlite_db) == []
    assert_one_gapless_chain(sqlite_db, THREADS * PER_THREAD)


def test_eight_threads_with_their_own_sqlite_engines_keep_one_chain(sqlite_db: Database) -> None:
    assert write_concurrently(sqlite_db, own_database_per_thread=True) == []
    assert_one_gapless_chain(sqlite_db, THREADS * PER_THREAD)


def test_four_processes_on_sqlite_keep_one_chain(sqlite_db: Database) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=write_in_process, args=(sqlite_db.url, n, 10)) for n in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert_one_gapless_chain(sqlite_db, 40)


@pytest.mark.postgres
def test_eight_threads_on_postgres_keep_one_chain(pg_db: Database) -> None:
    assert write_concurrently(pg_db) == []
    assert_one_gapless_chain(pg_db, THREADS * PER_THREAD)


@pytest.mark.postgres
def test_four_processes_on_postgres_keep_one_chain(pg_db: Database) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=write_in_process, args=(pg_db.url, n, 25)) for n in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert_one_gapless_chain(pg_db, 100)


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    db = Database("sqlite://")
    create_audit_table(db)
    record(db, make_entry(1))
    record(db, make_entry(2))
    assert verify_chain(db).count == 2
    db.dispose()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"action": "dose-change.delete"}, "unknown audit action"),
        ({"actor_role": "nurse"}, "unknown actor_role"),
        ({"actor": " "}, "needs an actor"),
        ({"verdict": "ok"}, "unknown verdict"),
        ({"dose_after_ug_per_day": float("nan")}, "finite number"),
        ({"dose_after_ug_per_day": True}, "finite number"),
        ({"finding_codes": "increase-over-limit"}, "list of non-empty strings"),
        ({"detail": {"access_token": "x"}}, "credentials"),
        ({"detail": {"nested": {"refresh_token": "x"}}}, "credentials"),
        ({"detail": {"state": "abc"}}, "credentials"),
        ({"detail": {"header": "Bearer abc.def"}}, "token"),
        ({"detail": {"x": ["eyJhbGciOi.eyJzdWIiOi.c2ln"]}}, "token"),
        ({"detail": {"blob": "x" * 5000}}, "over"),
    ],
)
def test_invalid_entries_are_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"actor": "Practitioner/1", "actor_role": "clinician", "action": "check.run"}
    with pytest.raises(ValueError, match=message):
        AuditEntry(**{**fields, **changes})  # type: ignore[arg-type]


def test_entries_are_normalised_for_lossless_storage() -> None:
    entry = AuditEntry(
        actor="Practitioner/1",
        actor_role="clinician",
        action="check.run",
        patient_id="",
        dose_before_ug_per_day=400,
        finding_codes=["a"],
        related=["Patient/1"],
    )
    assert entry.patient_id is None
    assert isinstance(entry.dose_before_ug_per_day, float)
    assert entry.finding_codes == ("a",)


def test_naive_time_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(ValueError, match="aware"):
        record(sqlite_db, make_entry(1), now=datetime(2026, 11, 20, 10, 0))  # noqa: DTZ001


def test_audit_logger_is_kept_out_of_the_application_log(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            seen.append(log_record)

    handler = Collect()
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.DEBUG):
            record(sqlite_db, make_entry(1, patient_id="secret-patient-77"))
    finally:
        audit_logger.removeHandler(handler)
        audit_logger.setLevel(logging.NOTSET)
    assert audit_logger.name == "itb.audit" and audit_logger.propagate is False
    assert "secret-patient-77" not in caplog.text
    assert len(seen) == 1 and seen[0].audit_patient_id == "secret-patient-77"  # type: ignore[attr-defined]
