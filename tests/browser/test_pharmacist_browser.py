"""A pharmacist in real headless Chromium: the clinician files a +10 % change, the pharmacist launches in
that patient's chart, opens the queue, reviews the re-run check and calculator, and verifies; and the
prescriber's own change is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import navigate, wait
from tests.browser.test_clinician_browser import _propose
from tests.e2e.live import Live

pytestmark = pytest.mark.browser
PATIENT = "sci-adult"


def _launch_as(browser: Any, live: Live, user: str, patient: str = PATIENT) -> None:
    """Pick the user on the sandbox launch page and launch the app for a patient."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(f"{live.sandbox_url}/?tenant=full")
    browser.find_element(By.ID, f"user-{user}").click()
    navigate(browser, browser.find_element(By.ID, f"launch-{patient}").click)
    wait(browser, ec.presence_of_element_located((By.ID, "proposal-form")))


def _file_ten_percent(browser: Any) -> str:
    """Propose +10 %, preview, file; return the confirmation's verification status."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    assert _propose(browser, "10", "percent") == "pass"
    navigate(browser, browser.find_element(By.ID, "preview-button").click)
    wait(browser, ec.presence_of_element_located((By.ID, "note-text")))
    browser.find_element(By.ID, "rationale").send_keys("Spasms still wake the patient at night.")
    navigate(browser, browser.find_element(By.ID, "submit-note").click)
    status = wait(browser, ec.presence_of_element_located((By.ID, "filing-status")))
    assert status.get_attribute("data-state") == "filed", status.text
    return str(browser.find_element(By.ID, "verification-status").text)


def _open_newest_change(browser: Any) -> None:
    """From the clinician page, go to the queue and open the (only) proposed change of the patient."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    navigate(browser, browser.find_element(By.ID, "pharmacist-link").click)
    wait(browser, ec.presence_of_element_located((By.ID, "queue")))
    rows = browser.find_elements(By.CSS_SELECTOR, f'tr.queue-row[data-patient-id="{PATIENT}"]')
    assert len(rows) == 1, "older proposals of the patient are superseded"
    navigate(browser, rows[0].find_element(By.CSS_SELECTOR, "a.open-change").click)
    wait(browser, ec.presence_of_element_located((By.ID, "calculator")))


def test_pharmacist_verifies_a_clinicians_change_after_reviewing_the_rerun_check(
    browser: Any, live: Live, shoot: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _launch_as(browser, live, "clinician-1")
    assert not browser.find_elements(By.ID, "pharmacist-link"), "a clinician has no queue link"
    assert _file_ten_percent(browser) == "proposed"
    clinician_note = live.stored("DocumentReference")[-1]

    _launch_as(browser, live, "pharmacist-1")
    _open_newest_change(browser)
    shoot("review")
    assert browser.find_element(By.ID, "submitted-verdict").get_attribute("data-verdict") == "pass"
    assert browser.find_element(By.ID, "rerun-verdict").get_attribute("data-verdict") == "pass"
    assert browser.find_element(By.ID, "no-differences")
    assert "440 ug/d = 18.333 ug/h" in browser.find_element(By.ID, "calc-proposed").text
    assert "mL/d" in browser.find_element(By.ID, "calc-ml-per-day").text
    assert browser.find_element(By.ID, "calc-agrees"), "the note's alarm date matches the recomputed one"
    assert "440 mcg/day" in browser.find_element(By.ID, "clinician-note").text

    browser.find_element(By.ID, "verify-comment").send_keys("Pump log and concentration checked.")
    navigate(browser, browser.find_element(By.ID, "verify-button").click)
    status = wait(browser, ec.presence_of_element_located((By.ID, "change-status")))
    shoot("verified")
    assert status.get_attribute("data-status") == "verified"
    assert browser.find_element(By.CSS_SELECTOR, "#history .filing").get_attribute("data-state") == "filed"
    note = live.stored("DocumentReference")[-1]
    assert note["relatesTo"][0]["code"] == "appends"
    assert note["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{clinician_note['id']}"
    provenance = live.stored("Provenance")[-1]
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "verifier"
    assert provenance["agent"][0]["who"]["reference"].endswith("Practitioner/pharmacist-1")


def test_the_prescriber_cannot_verify_their_own_change(browser: Any, live: Live, shoot: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _launch_as(browser, live, "pharmacist-1")
    assert _file_ten_percent(browser) == "proposed"  # the pharmacist prescribes this one
    navigate(browser, browser.find_element(By.LINK_TEXT, "Back to the patient").click)
    wait(browser, ec.presence_of_element_located((By.ID, "proposal-form")))
    _open_newest_change(browser)
    assert browser.find_element(By.ID, "own-change-notice")
    navigate(browser, browser.find_element(By.ID, "verify-button").click)
    message = wait(browser, ec.presence_of_element_located((By.ID, "refused-message")))
    shoot("refused")
    assert "You prescribed this dose change" in message.text
