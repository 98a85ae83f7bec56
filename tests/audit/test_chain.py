"""The hash chain: an intact chain verifies; edits, deletions, swaps and cut tails are found and located.

Tampering tests drop the append-only triggers first, as an attacker with DDL rights would: the triggers
stop ordinary UPDATE/DELETE, the chain is what catches someone who gets past them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from audit.helpers import fill, make_entry, tamper
from plugin.audit.log import record
from plugin.audit.models import AUDIT_TABLE, GENESIS_HASH, compute_hash
from plugin.audit.verify import normalise_anchor, verify_chain
from plugin.db import Database


def broken_seqs(db: Database, anchor: str | None = None) -> list[int | None]:
    """Return the seqs verify_chain reports as broken."""
    return [problem.seq for problem in verify_chain(db, anchor=anchor).breaks]


def test_chain_of_50_records_verifies(any_db: Database) -> None:
    fill(any_db, 50)
    report = verify_chain(any_db)
    assert report.ok
    assert (report.count, report.last_seq) == (50, 50)
    with any_db.engine.connect() as connection:
        rows = connection.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.seq)).mappings().all()
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 50))
    assert report.last_hash == rows[-1]["hash"]


def test_empty_chain_verifies(any_db: Database) -> None:
    report = verify_chain(any_db)
    assert report.ok and report.count == 0 and report.last_hash == GENESIS_HASH


def test_record_returns_the_stored_row_with_its_hash(sqlite_db: Database) -> None:
    stored = record(sqlite_db, make_entry(1), now=datetime(2026, 11, 20, 11, 0, 0, 123456, tzinfo=UTC))
    with sqlite_db.engine.connect() as connection:
        row = connection.execute(select(AUDIT_TABLE)).mappings().one()
    assert row["hash"] == stored.hash == compute_hash(dict(row))
    assert row["recorded_at"] == datetime(2026, 11, 20, 11, 0, 0, 123456, tzinfo=UTC)
    assert row["dose_after_ug_per_day"] == 401.0


def test_edited_row_is_detected_and_located(any_db: Database) -> None:
    fill(any_db, 50)
    tamper(any_db, "UPDATE audit_log SET dose_after_ug_per_day = 900 WHERE seq = 17")
    report = verify_chain(any_db)
    assert not report.ok
    assert [problem.seq for problem in report.breaks] == [17]
    assert "stored hash" in report.breaks[0].reason


def test_edit_with_a_recomputed_hash_breaks_the_next_link(any_db: Database) -> None:
    fill(any_db, 20)
    with any_db.engine.connect() as connection:
        row = dict(connection.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.seq == 8)).mappings().one())
    row["verdict"] = "pass"
    forged = compute_hash(row)
    tamper(any_db, f"UPDATE audit_log SET verdict = 'pass', hash = '{forged}' WHERE seq = 8")
    report = verify_chain(any_db)
    assert [problem.seq for problem in report.breaks] == [9]
    assert "does not link to seq 8" in report.breaks[0].reason


def test_deleted_row_is_detected_and_the_gap_named(any_db: Database) -> None:
    fill(any_db, 50)
    tamper(any_db, "DELETE FROM audit_log WHERE seq = 23")
    report = verify_chain(any_db)
    assert [problem.seq for problem in report.breaks] == [24]
    assert "does not link to seq 22" in report.breaks[0].reason
    assert "seq 23 missing" in report.breaks[0].reason


def test_deleted_first_row_is_detected(any_db: Database) -> None:
    fill(any_db, 5)
    tamper(any_db, "DELETE FROM audit_log WHERE seq = 1")
    assert broken_seqs(any_db) == [2]


def test_two_swapped_rows_are_detected(any_db: Database) -> None:
    fill(any_db, 50)
    tamper(
        any_db,
        "UPDATE audit_log SET seq = -10 WHERE seq = 10",
        "UPDATE audit_log SET seq = 10 WHERE seq = 11",
        "UPDATE audit_log SET seq = 11 WHERE seq = -10",
    )
    report = verify_chain(any_db)
    assert [problem.seq for problem in report.breaks] == [10, 11, 12]


def test_cut_tail_is_only_found_with_an_anchor(any_db: Database) -> None:
    fill(any_db, 50)
    anchor = verify_chain(any_db).last_hash
    tamper(any_db, "DELETE FROM audit_log WHERE seq > 40")
    assert verify_chain(any_db).ok  # a shorter chain is still a valid chain...
    report = verify_chain(any_db, anchor=anchor)
    assert not report.ok  # ...but the hash noted earlier is gone
    assert [problem.seq for problem in report.breaks] == [None]
    assert "ends at seq 40" in report.breaks[0].reason


def test_anchor_still_in_the_chain_verifies(any_db: Database) -> None:
    fill(any_db, 10)
    anchor = verify_chain(any_db).last_hash
    fill(any_db, 5)
    report = verify_chain(any_db, anchor=anchor.upper())
    assert report.ok and report.anchor_seq == 10 and report.count == 15


def test_malformed_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="64-digit"):
        normalise_anchor("abc")


def test_every_broken_row_is_listed_once(any_db: Database) -> None:
    fill(any_db, 30)
    tamper(
        any_db,
        "UPDATE audit_log SET actor = 'Practitioner/someone-else' WHERE seq = 5",
        "DELETE FROM audit_log WHERE seq = 20",
        "UPDATE audit_log SET detail = 'not json' WHERE seq = 25",
    )
    report = verify_chain(any_db)
    assert [problem.seq for problem in report.breaks] == [5, 21, 25]
    assert all("\n" not in str(problem) for problem in report.breaks)
