"""A NUL character in a form is refused with a clear 400 before anything is written, on both databases.

PostgreSQL cannot store a NUL in a text column (SQLite can), so without the guard a note text with one
passed every check and then failed the write with a server error on PostgreSQL only. The control
request (the same form without the NUL) shows that each form really writes on that database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from plugin.clinician.models import DoseChangeRecord
from tests.pg_support import BACKENDS, app_on
from tests.web.test_clinician_csrf import FORM
from tests.web.test_override_rules import clinician_launch, stand_in_for_the_ehr, token


@pytest.fixture(params=BACKENDS)
def app(
    request: pytest.FixtureRequest, tmp_path: Path, registry_entries: list[dict[str, Any]]
) -> Iterator[Flask]:
    """Yield the app on SQLite or on PostgreSQL (schema by its migrations)."""
    config = {"TESTING": True, "SECRET_KEY": "k", "EHR_REGISTRY": registry_entries}
    with app_on(request, tmp_path, config) as app:
        yield app


def dose_changes(app: Flask) -> int:
    """Return how many dose changes are stored."""
    with app.extensions["itb.db"].session() as session:
        return len(session.scalars(select(DoseChangeRecord.id)).all())


def test_a_note_text_with_a_nul_is_refused_and_nothing_is_filed(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_for_the_ehr(monkeypatch, "dose-ug-per-day.json")
    launch, handle = clinician_launch(app)
    form = {**FORM, "csrf_token": token(app, launch)}
    text_fields = [name for name, value in FORM.items() if isinstance(value, str) and " " in value]
    assert text_fields, "the form has free-text fields to spoil"
    for name in text_fields:
        spoiled = {**form, "submit_key": str(uuid.uuid4()), name: form[name] + "\x00"}
        response = client.post(f"/l/{handle}/submit", data=spoiled)
        assert response.status_code == 400, name
        body = response.get_data(as_text=True)
        assert "NUL character" in body and body.count("\n") == 1
    assert dose_changes(app) == 0
    response = client.post(f"/l/{handle}/submit", data={**form, "submit_key": str(uuid.uuid4())})
    assert response.status_code == 303 and dose_changes(app) == 1


def test_a_query_with_a_nul_is_refused(app: Flask, client: FlaskClient) -> None:
    assert client.get("/healthz?x=a%00b").status_code == 400
    assert client.get("/healthz?x=ab").status_code == 200
