"""``itb audit verify`` and ``itb audit export``: exit codes, messages, and the export's own audit record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from audit.helpers import create_audit_table, fill, tamper
from plugin.audit.cli import audit
from plugin.audit.export import import_csv
from plugin.audit.verify import verify_chain
from plugin.db import Database


@pytest.fixture
def app_db(app: Flask) -> Database:
    """Return the app's own database with an audit_log table and five records."""
    db: Database = app.extensions["itb.db"]
    create_audit_table(db)
    fill(db, 5)
    return db


def test_verify_exits_0_and_names_the_last_hash_when_intact(runner: FlaskCliRunner, app_db: Database) -> None:
    result = runner.invoke(audit, ["verify"])
    assert result.exit_code == 0, result.output
    last_hash = verify_chain(app_db).last_hash
    assert result.output.strip() == f"audit chain intact: 5 records, last hash {last_hash}"


def test_verify_exits_1_and_lists_each_broken_seq(runner: FlaskCliRunner, app_db: Database) -> None:
    tamper(
        app_db,
        "UPDATE audit_log SET verdict = 'pass' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 4",
    )
    result = runner.invoke(audit, ["verify"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "audit chain BROKEN: 2 problem(s) in 4 records"
    assert lines[1].startswith("  seq 2: ") and lines[2].startswith("  seq 5: ")


def test_verify_with_an_anchor_finds_a_cut_tail(runner: FlaskCliRunner, app_db: Database) -> None:
    anchor = verify_chain(app_db).last_hash
    assert runner.invoke(audit, ["verify", "--anchor", anchor]).exit_code == 0
    tamper(app_db, "DELETE FROM audit_log WHERE seq = 5")
    result = runner.invoke(audit, ["verify", "--anchor", anchor])
    assert result.exit_code == 1 and "  tail: anchor" in result.output


def test_verify_refuses_a_malformed_anchor(runner: FlaskCliRunner, app_db: Database) -> None:
    result = runner.invoke(audit, ["verify", "--anchor", "not-a-hash"])
    assert result.exit_code == 2 and "64-digit" in result.output


def test_export_writes_csv_to_stdout_and_audits_itself(runner: FlaskCliRunner, app_db: Database) -> None:
    result = runner.invoke(audit, ["export", "--patient", "123"])
    assert result.exit_code == 0, result.output
    assert len(import_csv(result.stdout)) == 5
    report = verify_chain(app_db)
    assert report.ok and report.count == 6  # the export is itself on the chain
    result = runner.invoke(audit, ["export", "--format", "ndjson", "--since", "2026-11-20"])
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    last = exported[-1]
    assert (last["action"], last["actor"], last["actor_role"]) == ("audit.export", "system:cli", "system")
    assert last["patient_id"] == "123"
    assert last["detail"] == {"count": 5, "destination": "stdout", "format": "csv"}


def test_export_to_a_file_as_fhir(runner: FlaskCliRunner, app_db: Database, tmp_path: Path) -> None:
    target = tmp_path / "audit.json"
    result = runner.invoke(audit, ["export", "--format", "fhir", "--output", str(target)])
    assert result.exit_code == 0, result.output
    bundle = json.loads(target.read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) == 5


def test_export_with_a_bad_since_is_a_usage_error(runner: FlaskCliRunner, app_db: Database) -> None:
    result = runner.invoke(audit, ["export", "--since", "20/11/2026"])
    assert result.exit_code == 2
    assert "'20/11/2026' is not a date like 2026-11-20" in result.output
    assert verify_chain(app_db).count == 5  # nothing was exported, so nothing was audited


def test_export_with_an_unknown_format_is_a_usage_error(runner: FlaskCliRunner, app_db: Database) -> None:
    assert runner.invoke(audit, ["export", "--format", "xml"]).exit_code == 2


def test_a_missing_audit_table_is_a_one_line_error(runner: FlaskCliRunner, app: Flask) -> None:
    db: Database = app.extensions["itb.db"]
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS audit_log")
    for args in (["verify"], ["export"]):
        result = runner.invoke(audit, args)
        assert result.exit_code == 3, result.output
        assert result.stderr.strip() == (
            "cannot read the audit log: no such table: audit_log (has `itb db upgrade` run?)"
        )
