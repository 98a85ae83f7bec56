"""Fixtures for the auditor's view: an app, its database, and launches of each role."""

from __future__ import annotations

import pytest
from flask import Flask

from plugin.db import Database
from tests.audit_view.support import AUDITOR, CLINICIAN, PHARMACIST, make_launch


@pytest.fixture
def db(app: Flask) -> Database:
    """Return the app's database."""
    database: Database = app.extensions["itb.db"]
    return database


@pytest.fixture
def auditor(app: Flask) -> str:
    """Return the handle of an auditor's launch."""
    return make_launch(app, role="auditor", fhir_user=AUDITOR)[1]


@pytest.fixture
def clinician(app: Flask) -> str:
    """Return the handle of a clinician's launch."""
    return make_launch(app, role="clinician", fhir_user=CLINICIAN)[1]


@pytest.fixture
def pharmacist(app: Flask) -> str:
    """Return the handle of a pharmacist's launch."""
    return make_launch(app, role="pharmacist", fhir_user=PHARMACIST)[1]
