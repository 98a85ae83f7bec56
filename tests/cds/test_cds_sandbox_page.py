"""The in-app CDS sandbox page: signs a real call to the service and shows the cards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import plugin.cds
import plugin.cds.sandbox as sandbox_module
from plugin.app import create_app


@pytest.fixture
def sandbox_app(tmp_path: Path) -> Iterator[Flask]:
    """Return an app with the sandbox page on (and signed calls still required)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "k", "EHR_REGISTRY": [], "CDS_SANDBOX_PAGE": True},
                     instance_path=str(tmp_path / "i"))  # fmt: skip
    plugin.cds.init_app(app, audit_sink=lambda _e: None)
    yield app
    app.extensions["itb.db"].dispose()


def test_sandbox_page_is_absent_by_default(cds_client: Any) -> None:
    assert cds_client.get("/cds-sandbox").status_code == 404


def test_sign_order_sends_a_signed_call_and_shows_the_cards(
    sandbox_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = sandbox_app.test_client()
    page = client.get("/cds-sandbox")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]

    def fake_post(url: str, json: Any, headers: dict[str, str], timeout: Any) -> Any:
        # Route the page's HTTP call into the same app, as the network would.
        response = client.post(url.removeprefix("http://localhost"), json=json, headers=headers)
        response.json_body = response.json
        return type("R", (), {"status_code": response.status_code, "json": lambda self: response.json_body})()

    monkeypatch.setattr(sandbox_module.requests, "post", fake_post)
    answer = client.post("/cds-sandbox", data={"csrf_token": csrf, "patient": "sci-adult", "value": "600",
                                                "unit": "ug/d", "hook": "order-sign"})  # fmt: skip
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "HTTP 200" in text and "[critical]" in text and "increase-over-limit" in text
    assert "Change the dose to 560 ug/d" in text


def test_sign_order_without_the_form_token_is_refused(sandbox_app: Flask) -> None:
    response = sandbox_app.test_client().post("/cds-sandbox", data={"patient": "sci-adult", "value": "1"})
    assert response.status_code == 400
