"""The previewed chart kept in the app's database (``charts.remember_preview`` / ``previewed_chart``).

Each test runs on the app's SQLite database and, with ITB_TEST_DATABASE_URL, on PostgreSQL (both
migrated by the app, so migration 0008 is what is tested). Emptying ``charts._previews`` stands for
another worker or host: only the stored, sealed copy is left. Time is explicit: ``NOW`` is passed in.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from flask import Flask
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from plugin.clinician import charts
from plugin.clinician.models import NotePreview
from plugin.db import Database
from plugin.domain.chart import Chart, DoseRecord, Patient
from plugin.launches.crypto import TokenCipher
from plugin.launches.models import Launch
from tests.pg_support import BACKENDS, app_on

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SECRET_KEY = "preview-store-secret"
PATIENT = "store-patient-7"
NAME = "Ada Lovelace-Example"
DOSE_TEXT = "412.5 mcg/day"


def chart_of(dose: float) -> Chart:
    """Return a small chart of PATIENT with one active pump record of ``dose`` ug/d."""
    record = DoseRecord(
        source="MedicationStatement/itb-1", status="active", daily_dose_ug=dose, original_text=DOSE_TEXT
    )
    return Chart(patient=Patient(reference=f"Patient/{PATIENT}", name=NAME), dose_records=(record,))


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """Yield the app on SQLite or PostgreSQL (schema by its migrations), with no preview in memory."""
    monkeypatch.setattr(charts, "_previews", {})
    monkeypatch.setattr(charts, "_cache", {})
    config = {"TESTING": True, "SECRET_KEY": SECRET_KEY, "EHR_REGISTRY": []}
    with app_on(request, tmp_path, config) as app, app.app_context():
        yield app


def db_of(app: Flask) -> Database:
    """Return the app's database."""
    database: Database = app.extensions["itb.db"]
    return database


def add_launch(app: Flask, *, expires_at: datetime = NOW + timedelta(hours=1)) -> Launch:
    """Store a launch (as the callback does) and return it."""
    launch = Launch(
        id=str(uuid.uuid4()),
        handle_hash=uuid.uuid4().hex,
        iss="https://ehr.example.org/fhir",
        client_id="itb-test",
        patient_id=PATIENT,
        tokens_enc="sealed",
        access_expires_at=expires_at,
        created_at=NOW - timedelta(minutes=5),
        expires_at=expires_at,
    )
    with db_of(app).session() as session:
        session.add(launch)
    return launch


def stored(app: Flask, launch_id: str) -> NotePreview | None:
    """Return the launch's stored preview row, if any."""
    with db_of(app).session() as session:
        row = session.get(NotePreview, launch_id)
        if row is not None:
            session.expunge(row)
        return row


def as_another_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what this process keeps in memory, as a worker that did not render the preview."""
    monkeypatch.setattr(charts, "_previews", {})
    monkeypatch.setattr(charts, "_cache", {})


def test_another_worker_reads_the_previewed_chart_under_its_submit_key(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch, key = add_launch(app), str(uuid.uuid4())
    charts.remember_preview(launch, key, chart_of(400.0), now=NOW)
    as_another_worker(monkeypatch)

    assert charts.previewed_chart(launch.id, key) == chart_of(400.0)
    assert charts.previewed_chart(launch.id, str(uuid.uuid4())) is None, "another preview's key"
    assert charts.previewed_chart(launch.id, "") is None, "a form posted before any preview"
    row = stored(app, launch.id)
    assert row is not None and row.stored_at == NOW and row.expires_at == launch.expires_at


def test_each_preview_replaces_the_launchs_stored_chart(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    launch, first, second = add_launch(app), str(uuid.uuid4()), str(uuid.uuid4())
    charts.remember_preview(launch, first, chart_of(400.0), now=NOW)
    charts.remember_preview(launch, second, chart_of(440.0), now=NOW + timedelta(minutes=1))
    as_another_worker(monkeypatch)

    assert charts.previewed_chart(launch.id, second) == chart_of(440.0)
    assert charts.previewed_chart(launch.id, first) is None
    with db_of(app).session() as session:
        keys = session.scalars(select(NotePreview.submit_key).where(NotePreview.launch_id == launch.id)).all()
    assert keys == [second], "one row per launch"


def test_the_stored_chart_is_encrypted(app: Flask) -> None:
    launch = add_launch(app)
    charts.remember_preview(launch, str(uuid.uuid4()), chart_of(412.5), now=NOW)
    row = stored(app, launch.id)
    assert row is not None
    plain = TokenCipher(SECRET_KEY).open_bytes(row.chart_enc)
    assert msgspec.json.decode(plain, type=Chart) == chart_of(412.5)
    in_clear = [PATIENT, NAME, DOSE_TEXT, '"daily_dose_ug":412.5']
    assert all(text.encode() in plain for text in in_clear), "what the stored bytes must hide"
    sealed = row.chart_enc.encode("ascii")
    for found_in in (sealed, base64.urlsafe_b64decode(sealed)):  # not merely encoded either
        assert [text for text in in_clear if text.encode() in found_in] == []


@pytest.mark.parametrize(
    "sealed",
    [
        pytest.param(lambda: TokenCipher("a rotated secret key").seal_bytes(b"{}"), id="other-key"),
        pytest.param(lambda: TokenCipher(SECRET_KEY).seal_bytes(b'{"patient": 7}'), id="other-shape"),
        pytest.param(lambda: TokenCipher(SECRET_KEY).seal_bytes(b"\x00not json"), id="not-json"),
        pytest.param(lambda: "not a Fernet token", id="not-a-token"),
    ],
)
def test_a_stored_chart_that_cannot_be_read_counts_as_absent(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sealed: Any
) -> None:
    launch, key = add_launch(app), str(uuid.uuid4())
    charts.remember_preview(launch, key, chart_of(400.0), now=NOW)
    as_another_worker(monkeypatch)
    assert charts.previewed_chart(launch.id, key) == chart_of(400.0), "readable as stored"
    with db_of(app).session() as session:
        session.execute(
            update(NotePreview).values(chart_enc=sealed()).where(NotePreview.launch_id == launch.id)
        )

    with caplog.at_level(logging.WARNING, logger=charts.__name__):
        assert charts.previewed_chart(launch.id, key) is None

    [warning] = [r for r in caplog.records if getattr(r, "event", None) == "chart.preview_unreadable"]
    assert PATIENT not in warning.getMessage() and warning.exc_info is None


def test_a_chart_sealed_under_another_secret_key_cannot_be_opened() -> None:
    sealed = TokenCipher("old secret").seal_bytes(b"chart bytes")
    assert TokenCipher("old secret").open_bytes(sealed) == b"chart bytes"
    with pytest.raises(ValueError, match="could not be decrypted"):
        TokenCipher("new secret").open_bytes(sealed)


def test_deleting_a_launch_deletes_its_stored_chart(app: Flask) -> None:
    launch, other, key = add_launch(app), add_launch(app), str(uuid.uuid4())
    charts.remember_preview(launch, key, chart_of(400.0), now=NOW)
    charts.remember_preview(other, key, chart_of(400.0), now=NOW)
    assert stored(app, launch.id) is not None

    with db_of(app).session() as session:
        session.execute(delete(Launch).where(Launch.id == launch.id))

    assert stored(app, launch.id) is None, "ON DELETE CASCADE"
    assert stored(app, other.id) is not None


def test_a_preview_purges_the_stored_charts_of_expired_launches(app: Flask) -> None:
    expired = add_launch(app, expires_at=NOW + timedelta(minutes=30))
    live = add_launch(app, expires_at=NOW + timedelta(hours=2))
    charts.remember_preview(expired, str(uuid.uuid4()), chart_of(400.0), now=NOW)
    charts.remember_preview(live, str(uuid.uuid4()), chart_of(400.0), now=NOW)
    assert stored(app, expired.id) is not None

    later = add_launch(app, expires_at=NOW + timedelta(hours=3))
    charts.remember_preview(later, str(uuid.uuid4()), chart_of(400.0), now=NOW + timedelta(hours=1))

    assert stored(app, expired.id) is None, "its session ended: the PHI goes"
    assert stored(app, live.id) is not None and stored(app, later.id) is not None


def test_a_chart_that_cannot_be_stored_still_previews_from_memory(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    launch, key = add_launch(app), str(uuid.uuid4())

    def database_down(*_args: Any) -> Any:
        raise OperationalError(f"INSERT ... {PATIENT}", {}, Exception("server closed the connection"))

    monkeypatch.setattr(charts, "_upsert", database_down)
    with caplog.at_level(logging.WARNING, logger=charts.__name__):
        charts.remember_preview(launch, key, chart_of(400.0), now=NOW)  # does not raise

    assert charts.previewed_chart(launch.id, key) == chart_of(400.0), "this process's copy"
    assert stored(app, launch.id) is None
    [warning] = [r for r in caplog.records if getattr(r, "event", None) == "chart.preview_not_stored"]
    assert PATIENT not in warning.getMessage() and warning.exc_info is None
