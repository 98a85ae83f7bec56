"""Shared fixtures: an app on a temporary instance folder, its test client and CLI runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from plugin.app import create_app

SANDBOX_ISS = "https://ehr.example.org/fhir"


@pytest.fixture
def registry_entries() -> list[dict[str, Any]]:
    """Return the EHR allow-list used by the app fixture (override in a module to change it)."""
    return [
        {
            "name": "Example EHR",
            "iss": SANDBOX_ISS,
            "client_id": "itb-test",
            "auth": "client_secret_basic",
            "client_secret": "test-secret",
            "frame_ancestors": ["https://ehr.example.org"],
        }
    ]


@pytest.fixture
def app(tmp_path: Path, registry_entries: list[dict[str, Any]]) -> Iterator[Flask]:
    """Create an app with its own SQLite database and keys in a temporary instance folder."""
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret-key", "EHR_REGISTRY": registry_entries},
        instance_path=str(tmp_path / "instance"),
    )
    yield app
    app.extensions["itb.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Return a CLI runner bound to the app."""
    return app.test_cli_runner()
