"""Issued cards are audited in the real hash chain, in the same transaction as the cards and the jti."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import plugin.cds
from plugin.app import create_app
from plugin.audit.log import AuditEntry, append_entries, chain_transaction, record
from plugin.audit.models import AUDIT_TABLE, record_as_dict
from plugin.audit.verify import verify_chain
from plugin.cds.models import IssuedCard
from plugin.db import Database

from .support import NOW, hook_body, order, post


@pytest.fixture
def audited_app(tmp_path: Path, cds_settings: dict[str, Any]) -> Iterator[Flask]:
    """The CDS app writing to the real audit log (no test sink) in a SQLite file."""
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret-key", "EHR_REGISTRY": [], **cds_settings},
        instance_path=str(tmp_path / "instance"),
    )
    plugin.cds.init_app(app, clock=lambda: NOW)
    yield app
    app.extensions["itb.db"].dispose()


def _audit_rows(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as connection:
        rows = connection.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.seq)).mappings()
        return [record_as_dict(dict(row)) for row in rows]


def _count(db: Database, table: Any) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_every_card_has_one_audit_record_and_the_chain_verifies(
    audited_app: Flask, sign: Callable[..., str]
) -> None:
    client = audited_app.test_client()
    body = hook_body(
        "sci-adult", [order("sci-adult", 600, order_id="a"), order("sci-adult", 480, order_id="b")]
    )
    response = post(client, body, sign())
    assert response.status_code == 200
    uuids = [card["uuid"] for card in response.json["cards"]]
    db: Database = audited_app.extensions["itb.db"]
    cards = [row for row in _audit_rows(db) if row["action"] == "cds.card"]
    assert [row["related"] for row in cards] == [[f"cds-card:{u}"] for u in uuids]
    assert [row["verdict"] for row in cards] == ["block", "pass"]
    assert cards[0]["finding_codes"] == ["increase-over-limit"]
    assert cards[0]["detail"]["suggested_ug_per_day"] == 560.0
    report = verify_chain(db)
    assert report.breaks == () and report.count == len(_audit_rows(db))


def test_a_replay_rolls_back_the_cards_and_their_audit_records(
    audited_app: Flask, sign: Callable[..., str]
) -> None:
    client = audited_app.test_client()
    db: Database = audited_app.extensions["itb.db"]
    token = sign()
    body = hook_body("sci-adult", [order("sci-adult", 600)])
    assert post(client, body, token).status_code == 200
    before = (_count(db, IssuedCard.__table__), _count(db, AUDIT_TABLE))
    assert post(client, body, token).status_code == 401
    assert (_count(db, IssuedCard.__table__), _count(db, AUDIT_TABLE)) == before


def test_concurrent_calls_keep_one_unbroken_chain(audited_app: Flask, sign: Callable[..., str]) -> None:
    body = hook_body("sci-adult", [order("sci-adult", 600)])
    tokens = [sign(jti=f"concurrent-{i}") for i in range(24)]
    statuses: list[int] = []
    lock = threading.Lock()

    def call(chunk: list[str]) -> None:
        client: FlaskClient = audited_app.test_client()
        for token in chunk:
            status = post(client, body, token).status_code
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=call, args=(tokens[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db: Database = audited_app.extensions["itb.db"]
    assert statuses == [200] * 24
    assert sum(row["action"] == "cds.card" for row in _audit_rows(db)) == 24
    assert verify_chain(db).breaks == ()


def test_append_entries_stores_what_record_stores(tmp_path: Path) -> None:
    """The batched writer and ``plugin.audit.log.record`` produce the same row for the same entry."""
    from plugin.migrations_runner import upgrade

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    db = Database(url)
    entry = AuditEntry(
        actor="cds-client:https://ehr.example.org", actor_role="cds", action="cds.card", patient_id="p1",
        iss="https://ehr.example.org", dose_before_ug_per_day=400, dose_after_ug_per_day=600.0,
        verdict="block", finding_codes=["increase-over-limit"], related=["cds-card:1"], request_id="h1",
        detail={"hook": "order-sign", "suggested_ug_per_day": 560.0, "user": None},
    )  # fmt: skip
    record(db, entry)
    with chain_transaction(db) as connection:
        append_entries(connection, [entry, entry])
    record(db, entry)
    rows = _audit_rows(db)
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    varying = {"seq", "id", "recorded_at", "prev_hash", "hash"}
    first = {k: v for k, v in rows[0].items() if k not in varying}
    assert all({k: v for k, v in row.items() if k not in varying} == first for row in rows)
    assert verify_chain(db).breaks == ()
    db.dispose()
