"""The order-sign / order-select service: finding the order, reading its dose, and the cards it gets."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from plugin.cds.models import IssuedCard
from plugin.domain.codes import load_code_sets
from plugin.domain.engine import largest_safe_dose_ug
from plugin.domain.loader.build import chart_from_entries
from plugin.domain.result import Proposal
from plugin.domain.rules_config import load_rules

from .support import NOW, hook_body, order, post, sandbox_prefetch


def _cards(
    client: FlaskClient,
    body: dict[str, Any],
    sign: Callable[..., str],
    path: str = "/cds-services/itb-dose-check",
) -> list[dict[str, Any]]:
    response = post(client, body, sign(aud=f"http://localhost{path}"), path)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards: list[dict[str, Any]] = response.json["cards"]
    return cards


def _assert_card_contract(card: dict[str, Any], codes: list[str]) -> None:
    """One card: summary under 140, every finding code in backticks, a smart link, no nulls."""
    assert len(card["summary"]) < 140
    for code in codes:
        assert f"`{code}`" in card["detail"]
    assert card["source"]["label"] == "ITB Dose Check"
    (link,) = card["links"]
    assert link["type"] == "smart" and link["url"].endswith("/launch")
    assert None not in card.values()


def _safe_dose(patient: str, proposed: float) -> float | None:
    entries = []
    for value in sandbox_prefetch(patient).values():
        if value is not None:
            bundle = value.get("resourceType") == "Bundle"
            entries += [(None, r) for r in ([e["resource"] for e in value["entry"]] if bundle else [value])]
    chart = chart_from_entries(
        entries, codes=load_code_sets(), now=NOW, patient_id=patient, require_patient=False
    )
    return largest_safe_dose_ug(chart, Proposal(proposed), load_rules(), NOW)


def test_increase_over_the_limit_gives_a_critical_card_with_a_safer_dose(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 600)]), sign)
    assert card["indicator"] == "critical"
    assert card["summary"] == "ITB dose 400 → 600 ug/d (+50 %): BLOCK — increase over the 40 % limit"
    _assert_card_contract(card, ["increase-over-limit"])
    assert "- **block** `increase-over-limit`: " in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update" and action["resource"]["id"] == "draft-1"
    rate = action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]
    assert rate["unit"] == "ug/d"
    assert rate["value"] == _safe_dose("sci-adult", 600) == 560.0
    assert {r["code"] for r in card["overrideReasons"]} >= {"benefit-outweighs-risk", "other"}
    assert all(
        r["system"] == "http://itb-dose-check.org/CodeSystem/override-reason" for r in card["overrideReasons"]
    )


def test_suggestion_keeps_the_orders_per_hour_unit(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 25, "ug/h")]), sign)
    rate = card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0][
        "rateQuantity"
    ]
    assert rate["unit"] == "ug/h"
    safe = _safe_dose("sci-adult", 600)
    assert safe is not None and safe - 0.1 <= rate["value"] * 24 <= safe


def test_a_change_within_the_limits_gives_an_info_card(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 480)]), sign)
    assert card["indicator"] == "info"
    assert "PASS" in card["summary"]
    assert "suggestions" not in card and "overrideReasons" not in card
    _assert_card_contract(card, [])


def test_a_warning_finding_gives_a_warning_card(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    (card,) = _cards(cds_client, hook_body("cp-child-3", [order("cp-child-3", 110)]), sign)
    assert card["indicator"] == "warning"
    _assert_card_contract(card, ["age-below-label"])


def test_cannot_check_gives_a_warning_card(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    (card,) = _cards(cds_client, hook_body("conflicting-records", [order("conflicting-records", 360)]), sign)
    assert card["indicator"] == "warning"
    assert "CANNOT CHECK" in card["summary"]
    _assert_card_contract(card, ["conflicting-current-doses"])


def test_every_finding_is_listed_with_its_code(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    patient = "stale-unknown-origin"
    (card,) = _cards(cds_client, hook_body(patient, [order(patient, 330)]), sign)
    _assert_card_contract(card, ["origin-unknown", "assessment-stale", "concentration-nonstandard"])


def test_unconvertible_order_dose_gives_a_critical_card(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    # unit-unconvertible is a block finding (CONTRACT §4), and block is critical (§6).
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 2, "{tablet}/d")]), sign)
    assert card["indicator"] == "critical" and "**Verdict: block**" in card["detail"]
    _assert_card_contract(card, ["unit-unconvertible"])


def test_order_in_ml_per_hour_uses_the_pump_concentration(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    # 0.01 mL/h at the pump's 2000 ug/mL = 480 ug/d: a 20 % increase on 400 ug/d.
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 0.01, "mL/h")]), sign)
    assert card["indicator"] == "info" and "480 ug/d" in card["summary"]


def test_no_intrathecal_baclofen_order_gives_no_cards(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    oral = order("sci-adult", 30, "mg/d")
    oral["medicationCodeableConcept"] = {"text": "Baclofen 10 mg oral tablet"}
    oral["dosageInstruction"][0]["route"] = {"text": "oral"}
    assert _cards(cds_client, hook_body("sci-adult", [oral]), sign) == []
    assert _cards(cds_client, hook_body("sci-adult", []), sign) == []


def test_order_select_is_served_by_its_own_id(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    body = hook_body("sci-adult", [order("sci-adult", 600)], hook="order-select")
    (card,) = _cards(cds_client, body, sign, "/cds-services/itb-dose-check-select")
    assert card["indicator"] == "critical"


def test_order_select_without_a_dose_yet_gives_no_card(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    draft = order("sci-adult", 600)
    draft["dosageInstruction"][0].pop("doseAndRate")
    body = hook_body("sci-adult", [draft], hook="order-select")
    assert _cards(cds_client, body, sign, "/cds-services/itb-dose-check-select") == []


def test_the_select_id_refuses_order_sign(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    path = "/cds-services/itb-dose-check-select"
    response = post(
        cds_client,
        hook_body("sci-adult", [order("sci-adult", 600)]),
        sign(aud=f"http://localhost{path}"),
        path,
    )
    assert response.status_code == 400


def test_two_intrathecal_orders_get_one_card_each(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    body = hook_body(
        "sci-adult", [order("sci-adult", 600, order_id="a"), order("sci-adult", 480, order_id="b")]
    )
    assert [c["indicator"] for c in _cards(cds_client, body, sign)] == ["critical", "info"]


def test_issued_cards_are_recorded_and_audited(
    cds_app: Flask, cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 600)]), sign)
    with cds_app.extensions["itb.db"].session() as session:
        row = session.get(IssuedCard, card["uuid"])
        assert row is not None
        assert (row.patient_id, row.verdict, row.dose_before_ug_per_day, row.dose_after_ug_per_day) == (
            "sci-adult", "block", 400.0, 600.0,
        )  # fmt: skip
        assert row.hook_instance == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
        assert row.suggested_ug_per_day == 560.0
    (event,) = audit_events
    assert event["action"] == "cds.card" and event["finding_codes"] == ["increase-over-limit"]
    assert event["related"] == [f"cds-card:{card['uuid']}"]


def test_malformed_requests_get_a_one_line_400(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    good = hook_body("sci-adult", [order("sci-adult", 480)])
    broken: list[Any] = ["{not json", [], {**good, "hook": "patient-view"}]
    for key in ("hookInstance", "context"):
        broken.append({k: v for k, v in good.items() if k != key})
    no_orders = copy.deepcopy(good)
    no_orders["context"]["draftOrders"] = {"resourceType": "MedicationRequest"}
    bad_patient = copy.deepcopy(good)
    bad_patient["context"]["patientId"] = "a/b?c"
    token_without_server = {**good, "fhirAuthorization": {"access_token": "x", "token_type": "Bearer"}}
    broken += [no_orders, bad_patient, token_without_server, {**good, "prefetch": ["not", "an object"]}]
    # Stored fields with a NUL (PostgreSQL cannot keep one in text): refused before anything is written.
    nul_user = copy.deepcopy(good)
    nul_user["context"]["userId"] = "Practitioner/a\u0000b"
    broken += [{**good, "hookInstance": "a\u0000b"}, nul_user]
    # The prefetch is only skipped over at first (ADR 0002); what is wrong inside it still gets a 400.
    text = json.dumps(good)
    broken += [
        text[:-1] + ', "prefetch": {"patient": tru}}',
        text[:-1].encode() + b', "prefetch": {"p": "\xff"}}',
        # Valid JSON syntax in a field that is decoded, but no double holds the number.
        json.dumps({**good, "context": {**good["context"], "x": "HUGE"}}).replace('"HUGE"', "1e400"),
    ]
    for body in broken:
        response = post(cds_client, body, sign())
        assert response.status_code == 400, body
        assert response.json["error"] == "bad_request"
        assert "\n" not in response.json["error_description"]
    out_of_range = post(cds_client, broken[-1], sign()).json["error_description"]
    assert out_of_range.startswith("the request body is not valid JSON"), "it is an object"


def test_unknown_service_id_is_404(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    path = "/cds-services/nope"
    assert post(cds_client, {}, sign(aud=f"http://localhost{path}"), path).status_code == 404


def test_a_prefetch_of_another_patient_gives_a_recorded_cannot_check_card(
    cds_app: Flask, cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    prefetch = sandbox_prefetch("sci-adult")
    prefetch["patient"] = sandbox_prefetch("ms-adult")["patient"]  # the EHR sent the wrong chart
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 480)], prefetch=prefetch), sign)
    assert card["indicator"] == "warning" and "cannot-check" in card["detail"]
    assert card["overrideReasons"], "the clinician can say why they go ahead"
    with cds_app.extensions["itb.db"].session() as session:
        row = session.get(IssuedCard, card["uuid"])
        assert row is not None and row.verdict == "cannot-check"
    (event,) = audit_events
    assert event["action"] == "cds.card" and event["verdict"] == "cannot-check"


def test_a_withdrawal_sign_filed_as_an_exam_finding_reaches_the_card(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    prefetch = sandbox_prefetch("sci-adult")
    exam = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]
    }
    pruritus = {
        "resourceType": "Observation", "id": "itch-1", "status": "final", "category": [exam],
        "code": {"text": "Pruritus"}, "valueBoolean": True, "subject": {"reference": "Patient/sci-adult"},
        "effectiveDateTime": (NOW - timedelta(hours=6)).isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    prefetch["findings"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": pruritus}]}
    (card,) = _cards(cds_client, hook_body("sci-adult", [order("sci-adult", 440)], prefetch=prefetch), sign)
    assert "`withdrawal-signs`" in card["detail"] and "Pruritus" in card["detail"]
