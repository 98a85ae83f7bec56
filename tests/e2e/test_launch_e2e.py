"""End to end over real HTTP: sandbox launch page -> /launch -> authorize -> /callback -> token -> FHIR."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
import requests

from plugin.launches.models import Launch
from tests.e2e.live import Live, start_live

pytestmark = pytest.mark.e2e


def _handle(response: requests.Response, live: Live) -> str:
    assert response.status_code == 200, response.text[:300]
    match = re.match(rf"{re.escape(live.app_url)}/l/([^/]+)/", response.url)
    assert match, response.url
    return match.group(1)


def test_ehr_launch_with_private_key_jwt_shows_the_patient_and_current_dose(live: Live) -> None:
    response = live.launch("sci-adult", tenant="full")
    _handle(response, live)
    assert 'id="patient-name"' in response.text
    assert re.search(r'id="current-dose"[^>]*>400 ug/d<', response.text)


def test_ehr_launch_with_a_client_secret_reads_the_dose_from_medication_request(live: Live) -> None:
    response = live.launch("epic-only", tenant="epic-like")
    _handle(response, live)
    assert re.search(r'id="current-dose"[^>]*>\d+(\.\d)? ug/d<', response.text)
    assert "MedicationRequest/" in response.text


def test_the_pharmacist_role_comes_from_the_users_practitioner_role_at_the_ehr(live: Live) -> None:
    # The full tenant's registry entry does not map pharmacist-1: the sandbox's PractitionerRole (coded
    # pharmacist) does. clinician-1 has none and stays a clinician.
    pharmacist = live.launch("sci-adult", tenant="full", user="pharmacist-1")
    clinician = live.launch("sci-adult", tenant="full", user="clinician-1")
    assert 'id="pharmacist-link"' in pharmacist.text and 'id="pharmacist-link"' not in clinician.text
    with live.app.extensions["itb.db"].session() as session:
        roles = {launch.fhir_user: launch.role for launch in session.query(Launch)}
    assert (
        roles["Practitioner/pharmacist-1"] == "pharmacist"
        and roles["Practitioner/clinician-1"] == "clinician"
    )


def test_two_interleaved_launches_in_one_browser_keep_their_own_patients(live: Live) -> None:
    browser = requests.Session()  # one browser, two tabs: shared cookies if there were any
    first = live.launch("sci-adult", session=browser)
    second = live.launch("ms-adult", session=browser)
    again_first = browser.get(first.url, timeout=30)
    assert _handle(first, live) != _handle(second, live)
    name = re.compile(r'id="patient-name">([^<]+)<')
    assert name.search(first.text).group(1) == name.search(again_first.text).group(1)
    assert name.search(first.text).group(1) != name.search(second.text).group(1)


def test_standalone_launch_lets_the_user_pick_a_patient(live: Live) -> None:
    browser = requests.Session()
    picker = browser.get(f"{live.app_url}/launch", params={"iss": live.iss("full")}, timeout=30)
    assert picker.status_code == 200
    assert picker.url.startswith(live.sandbox_url)
    form_action = re.search(r'<form[^>]*action="([^"]+)"', picker.text).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', picker.text))
    fields.update({"patient": "ms-adult", "user": "clinician-1"})
    target = form_action if form_action.startswith("http") else f"{live.sandbox_url}{form_action}"
    method = re.search(r'<form[^>]*method="([^"]+)"', picker.text).group(1).lower()
    response = browser.request(
        method,
        target,
        data=fields if method == "post" else None,
        params=fields if method == "get" else None,
        timeout=30,
    )
    _handle(response, live)
    assert 'id="current-dose"' in response.text


def test_an_expiring_token_is_refreshed_once_and_the_launch_goes_on(tmp_path: Path) -> None:
    short = start_live(tmp_path, token_lifetime_seconds=30)  # below the 60 s refresh margin
    try:
        response = short.launch("sci-adult")
        handle = _handle(response, short)
        again = requests.get(f"{short.app_url}/l/{handle}/?refresh=1", timeout=30)
        assert again.status_code == 200
        with short.app.app_context(), short.app.extensions["itb.db"].session() as session:
            launch = session.query(Launch).one()
        assert launch.tokens_version >= 2
        assert not launch.relaunch_required
    finally:
        short.servers.shutdown()


def test_the_whole_launch_logs_no_token_code_verifier_or_handle(live: Live) -> None:
    ours = next(h for h in logging.getLogger().handlers if getattr(h, "_itb", False))
    captured = io.StringIO()
    previous = ours.setStream(captured)
    seen: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    spy = Spy()
    logging.getLogger("werkzeug").addHandler(spy)
    try:
        response = live.launch("sci-adult")
    finally:
        ours.setStream(previous)
        logging.getLogger("werkzeug").removeHandler(spy)
    handle = _handle(response, live)
    output = captured.getvalue()
    assert output, "the launch should have logged something"
    raw = "\n".join(seen)
    codes = re.findall(r"code=([^&\s\"]+)", raw)
    states = re.findall(r"state=([^&\s\"]+)", raw)
    assert codes and states, "werkzeug saw the callback URL; the scrubbed output must not"
    for secret in [handle, *codes, *states]:
        assert secret not in output


def test_the_ehrs_smart_style_is_applied_through_the_launchs_stylesheet(live: Live) -> None:
    response = live.launch("sci-adult")
    handle = _handle(response, live)
    assert f'href="/l/{handle}/style.css"' in response.text
    css = requests.get(f"{live.app_url}/l/{handle}/style.css", timeout=30)
    assert css.headers["Content-Type"].startswith("text/css")
    assert "--bg: #f7f7f7;" in css.text  # the sandbox's color_background


def test_a_whole_launch_and_check_sets_no_cookie_at_the_app(live: Live) -> None:
    browser = requests.Session()
    response = live.launch("sci-adult", session=browser)
    handle = _handle(response, live)
    browser.get(
        f"{live.app_url}/l/{handle}/api/check", params={"dose_value": "420", "dose_mode": "ug/d"}, timeout=30
    )
    assert [c for c in browser.cookies if c.domain in ("127.0.0.1", "127.0.0.1.local")] == []


def test_a_launch_the_ehr_no_longer_honours_asks_for_a_relaunch(tmp_path: Path) -> None:
    # The EHR forgets every token (a revoked session): the app's FHIR read gets 401, its one refresh is
    # refused, its retry gets 401 again; the clinician is told to relaunch, not "the EHR failed".
    live = start_live(tmp_path)
    try:
        handle = _handle(live.launch("sci-adult"), live)
        auth = live.servers.sandbox_app.extensions["sandbox"].auth
        auth.access_tokens.clear()
        auth.refresh_tokens.clear()
        page = requests.get(f"{live.app_url}/l/{handle}/?refresh=1", timeout=30)
        assert page.status_code == 401, page.text[:300]
        assert "Open ITB Dose Check again from the patient&#39;s chart" in page.text
        api = requests.get(
            f"{live.app_url}/l/{handle}/api/check",
            params={"dose_value": "10", "dose_mode": "percent"},
            timeout=30,
        )
        # By now the launch itself is marked as needing a relaunch: the API says so, as JSON.
        assert api.status_code == 401 and "launch the app again" in api.json()["error"]
    finally:
        live.servers.shutdown()
