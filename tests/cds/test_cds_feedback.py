"""Feedback: accepted and overridden outcomes are tied to the card issued and audited once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from plugin.cds.jwt_sign import client_claims, sign_es384

from .support import ES_KID, NOW, hook_body, order, post

FEEDBACK = "/cds-services/itb-dose-check/feedback"
FEEDBACK_AUD = f"http://localhost{FEEDBACK}"


def _issue(client: FlaskClient, sign: Callable[..., str]) -> dict[str, Any]:
    card: dict[str, Any] = post(client, hook_body("sci-adult", [order("sci-adult", 600)]), sign()).json[
        "cards"
    ][0]
    return card


def _feedback(client: FlaskClient, sign: Callable[..., str], items: list[dict[str, Any]]) -> Any:
    return post(client, {"feedback": items}, sign(aud=FEEDBACK_AUD), FEEDBACK)


def test_accepted_suggestion_is_recorded(
    cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    card = _issue(cds_client, sign)
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T12:01:00Z",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}  # fmt: skip
    response = _feedback(cds_client, sign, [item])
    assert response.status_code == 200 and response.json == {}
    event = audit_events[-1]
    assert event["action"] == "cds.feedback" and event["patient_id"] == "sci-adult"
    assert event["actor"] == "Practitioner/example" and event["actor_role"] == "clinician"
    assert event["detail"]["outcome"] == "accepted"
    assert event["detail"]["accepted_suggestions"] == [card["suggestions"][0]["uuid"]]
    assert event["related"] == [f"cds-card:{card['uuid']}"] and event["verdict"] == "block"


def test_override_with_reason_and_comment_is_recorded(
    cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    card = _issue(cds_client, sign)
    reason = card["overrideReasons"][0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T12:02:00+00:00",
            "overrideReason": {"reason": reason, "userComment": "titrating on the ward"}}  # fmt: skip
    assert _feedback(cds_client, sign, [item]).status_code == 200
    event = audit_events[-1]
    assert event["override_reason_code"] == reason["code"]
    assert event["override_reason_text"] == "titrating on the ward"
    assert event["dose_before_ug_per_day"] == 400.0 and event["dose_after_ug_per_day"] == 600.0


def test_the_same_feedback_twice_is_recorded_once(
    cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    card = _issue(cds_client, sign)
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T12:01:00Z"}
    for _ in range(2):
        assert _feedback(cds_client, sign, [item]).status_code == 200
    assert [e["action"] for e in audit_events] == ["cds.card", "cds.feedback"]


def test_unknown_card_is_404_and_nothing_is_recorded(
    cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    card = _issue(cds_client, sign)
    items = [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T12:01:00Z"},
        {
            "card": "00000000-0000-4000-8000-000000000000",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-12-01T12:01:00Z",
        },
    ]
    response = _feedback(cds_client, sign, items)
    assert response.status_code == 404
    assert [e["action"] for e in audit_events] == ["cds.card"]


def test_feedback_from_another_client_about_our_card_is_404(
    cds_client: FlaskClient, sign: Callable[..., str], cds_settings: dict[str, Any], es_key: Any
) -> None:
    card = _issue(cds_client, sign)
    # Same key, other iss: register it as a second client to prove the card is bound to its issuer.
    other = {**cds_settings["CDS_CLIENTS"][0], "iss": "https://other.example.org"}
    cds_client.application.extensions["itb.cds"].verifier.clients[other["iss"]] = __import__(
        "plugin.cds.config", fromlist=["load_clients"]
    ).load_clients([other])[other["iss"]]
    token = sign_es384(es_key, ES_KID, client_claims(other["iss"], FEEDBACK_AUD, NOW))
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T12:01:00Z"}
    assert post(cds_client, {"feedback": [item]}, token, FEEDBACK).status_code == 404


def test_invalid_feedback_is_400(cds_client: FlaskClient, sign: Callable[..., str]) -> None:
    card = _issue(cds_client, sign)
    base = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T12:01:00Z"}
    bad_reason = {
        "reason": {"system": "http://itb-dose-check.org/CodeSystem/override-reason", "code": "made-up"}
    }
    for items in ([], [{**base, "outcome": "ignored"}], [{**base, "outcomeTimestamp": "yesterday"}],
                  [{**base, "overrideReason": bad_reason}], ["x"]):  # fmt: skip
        assert _feedback(cds_client, sign, items).status_code == 400, items


def test_feedback_with_a_nul_character_is_refused_and_not_recorded(
    cds_client: FlaskClient, sign: Callable[..., str], audit_events: list[dict[str, Any]]
) -> None:
    card = _issue(cds_client, sign)
    reason = card["overrideReasons"][0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T12:02:00+00:00",
            "overrideReason": {"reason": reason, "userComment": "titrating\u0000 on the ward"}}  # fmt: skip
    recorded = len(audit_events)
    response = _feedback(cds_client, sign, [item])
    assert response.status_code == 400 and "NUL" in response.json["error_description"]
    assert len(audit_events) == recorded
    item["overrideReason"]["userComment"] = "titrating on the ward"
    assert _feedback(cds_client, sign, [item]).status_code == 200 and len(audit_events) == recorded + 1


def test_feedback_needs_a_valid_token_for_the_feedback_url(
    cds_client: FlaskClient, sign: Callable[..., str]
) -> None:
    card = _issue(cds_client, sign)
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T12:01:00Z"}
    assert post(cds_client, {"feedback": [item]}, sign(), FEEDBACK).status_code == 401
