"""The CDS chart cache: reused only for a byte-identical, complete prefetch of the same patient, briefly."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

import plugin.cds.service
from plugin.app import create_app
from plugin.cds.chart_cache import ChartCache
from plugin.domain.loader.build import chart_from_entries

from .support import FHIR_SERVER, NOW, hook_body, order, post, sandbox_prefetch


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the charts the service builds (one entry per build)."""
    counted: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return chart_from_entries(*args, **kwargs)

    monkeypatch.setattr(plugin.cds.service, "chart_from_entries", counting)
    return counted


def _summary(client: FlaskClient, sign: Callable[..., str], prefetch: dict[str, Any], **kw: Any) -> str:
    """Sign a 600 ug/d order for sci-adult with this prefetch; return the card's summary."""
    response = post(
        client, hook_body("sci-adult", [order("sci-adult", 600)], prefetch=prefetch, **kw), sign()
    )
    assert response.status_code == 200, response.json
    return str(response.json["cards"][0]["summary"])


def _with_active_dose(prefetch: dict[str, Any], value: float) -> dict[str, Any]:
    """Return a copy of the prefetch whose active intrathecal statement says ``value`` ug/d."""
    changed = copy.deepcopy(prefetch)
    for entry in changed["medicationStatements"]["entry"]:
        resource = entry["resource"]
        if resource.get("status") == "active":
            resource["dosage"][0]["doseAndRate"][0]["rateQuantity"]["value"] = value
    for entry in changed["medicationRequests"]["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") == "MedicationRequest" and resource.get("status") == "active":
            resource["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["value"] = value
    return changed


def test_the_same_complete_prefetch_is_read_once(
    cds_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    prefetch = sandbox_prefetch("sci-adult")
    first = _summary(cds_client, sign, prefetch)
    second = _summary(cds_client, sign, prefetch)
    assert first == second and "400 → 600" in first
    assert len(builds) == 1


def test_a_changed_record_is_read_again_and_its_dose_is_used(
    cds_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    prefetch = sandbox_prefetch("sci-adult")
    assert "400 → 600" in _summary(cds_client, sign, prefetch)
    assert "500 → 600" in _summary(cds_client, sign, _with_active_dose(prefetch, 500))
    assert len(builds) == 2


def test_the_key_is_the_prefetch_text_as_sent(
    cds_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    # The top level is decoded without parsing the prefetch, so only byte-identical text is a hit:
    # the same resources with other whitespace are read again (safe, merely slower).
    prefetch = sandbox_prefetch("sci-adult")
    compact = hook_body("sci-adult", [order("sci-adult", 600)], prefetch=prefetch)
    for text in (json.dumps(compact), json.dumps(compact), json.dumps(compact, indent=1)):
        response = post(cds_client, text, sign())
        assert response.status_code == 200 and "400 → 600" in response.json["cards"][0]["summary"]
    assert len(builds) == 2


def test_another_patient_with_the_same_prefetch_is_not_served_from_the_cache() -> None:
    cache = ChartCache(60)
    prefetch = orjson.dumps(sandbox_prefetch("sci-adult"))
    assert cache.key(prefetch, "sci-adult") != cache.key(prefetch, "ms-adult")


def test_a_prefetch_with_gaps_is_never_cached(
    cds_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    prefetch = {k: v for k, v in sandbox_prefetch("sci-adult").items() if k != "vitals"}
    for _ in range(2):
        assert "400 → 600" in _summary(cds_client, sign, prefetch)
    assert len(builds) == 2


@responses.activate
def test_what_came_from_fhir_server_is_fetched_again_on_the_next_call(
    cds_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    full = sandbox_prefetch("sci-adult")
    prefetch = {k: v for k, v in full.items() if k != "medicationStatements"}
    statements = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": full["medicationStatements"]["entry"],
    }
    responses.get(f"{FHIR_SERVER}/MedicationStatement", json=statements)
    for _ in range(2):
        assert "400 → 600" in _summary(cds_client, sign, prefetch, fhir=True)
    assert len(responses.calls) == 2 and len(builds) == 2


def test_entries_expire_after_the_ttl_and_the_oldest_go_first() -> None:
    clock = [100.0]
    cache = ChartCache(60, max_entries=2, clock=lambda: clock[0])
    chart: Any = object()  # the cache never looks inside a chart
    keys = [cache.key(b'{"n": %d}' % n, "p") for n in range(3)]
    cache.put(keys[0], chart, ())
    clock[0] += 59.9
    assert cache.get(keys[0]) == (chart, ())
    clock[0] += 0.2
    assert cache.get(keys[0]) is None, "older than 60 s"
    for key in keys:
        cache.put(key, chart, ("gap",))
    assert len(cache) == 2 and cache.get(keys[0]) is None and cache.get(keys[2]) == (chart, ("gap",))


def test_a_ttl_of_zero_turns_the_cache_off() -> None:
    cache = ChartCache(0)
    assert not cache.enabled and cache.key(b"{}", "p") is None and cache.get(None) is None


@pytest.fixture
def uncached_client(tmp_path: Path, cds_settings: dict[str, Any]) -> Iterator[FlaskClient]:
    """Return a client of an app started with ITB_CDS_CHART_CACHE_SECONDS=0."""
    import plugin.cds

    app: Flask = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "k",
            "EHR_REGISTRY": [],
            "CDS_CHART_CACHE_SECONDS": 0,
            **cds_settings,
        },
        instance_path=str(tmp_path / "instance"),
    )
    plugin.cds.init_app(app, clock=lambda: NOW)
    yield app.test_client()
    app.extensions["itb.db"].dispose()


def test_the_setting_zero_reads_every_call_afresh(
    uncached_client: FlaskClient, sign: Callable[..., str], builds: list[int]
) -> None:
    prefetch = sandbox_prefetch("sci-adult")
    for _ in range(2):
        _summary(uncached_client, sign, prefetch)
    assert len(builds) == 2


@pytest.mark.parametrize("value", ["soon", -1, "nan", True])
def test_a_bad_setting_stops_startup_with_its_name(tmp_path: Path, value: Any) -> None:
    with pytest.raises(RuntimeError, match="ITB_CDS_CHART_CACHE_SECONDS must be a number of seconds"):
        create_app(
            {"TESTING": True, "SECRET_KEY": "k", "EHR_REGISTRY": [], "CDS_CHART_CACHE_SECONDS": value},
            instance_path=str(tmp_path / "instance"),
        )
