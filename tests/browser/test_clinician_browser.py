"""A clinician in real headless Chromium: launch from the sandbox, read the chart, check doses, file a note."""

from __future__ import annotations

import re
from typing import Any

import pytest

from plugin.web.numbers import plain_number
from tests.browser.conftest import axe_source, navigate, wait
from tests.e2e.live import Live

pytestmark = pytest.mark.browser


def _launch(browser: Any, live: Live, patient: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(f"{live.sandbox_url}/?tenant=full")
    navigate(browser, browser.find_element(By.ID, f"launch-{patient}").click)
    wait(browser, ec.presence_of_element_located((By.ID, "proposal-form")))


def _propose(browser: Any, value: str, mode: str) -> str:
    """Type a proposal and wait for the live check; return the verdict shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "dose_mode")).select_by_value(mode)
    field = browser.find_element(By.ID, "dose_value")
    field.clear()
    field.send_keys(value)
    expected = f"{plain_number(float(value), sign=True)} %" if mode == "percent" else None

    def checked(driver: Any) -> str | bool:
        elements = driver.find_elements(By.ID, "verdict")
        if not elements:
            return False
        if expected and expected not in elements[0].text:
            return False
        return elements[0].get_attribute("data-verdict") or False

    return str(wait(browser, checked))


def _axe_violations(browser: Any) -> list[dict[str, Any]]:
    source = axe_source()
    if source is None:
        pytest.skip("axe-core is not installed (scripts/install.sh --test installs it from npm)")
    browser.execute_script(source)
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations)).catch(e => done([{id: 'axe-error', impact: 'critical', description: String(e)}]));"
    )
    return [v for v in result if v.get("impact") in ("serious", "critical")]


def test_clinician_checks_doses_and_files_a_note_that_reaches_the_ehr(
    browser: Any, live: Live, shoot: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    notes_before = len(live.stored("DocumentReference"))
    _launch(browser, live, "sci-adult")
    assert re.fullmatch(r"400 ug/d", browser.find_element(By.ID, "current-dose").text)
    assert browser.find_elements(By.CSS_SELECTOR, "svg.trend path"), "the dose line is drawn"
    shoot("launched")

    assert _propose(browser, "50", "percent") == "block"
    codes = [e.get_attribute("data-code") for e in browser.find_elements(By.CSS_SELECTOR, ".finding")]
    assert "increase-over-limit" in codes
    shoot("block")

    assert _propose(browser, "10", "percent") == "pass"
    shoot("pass")

    navigate(browser, browser.find_element(By.ID, "preview-button").click)
    wait(browser, ec.presence_of_element_located((By.ID, "note-text")))
    assert "440" in browser.find_element(By.ID, "note-text").text
    browser.find_element(By.ID, "rationale").send_keys("Spasms still wake the patient at night.")
    shoot("preview")

    navigate(browser, browser.find_element(By.ID, "submit-note").click)
    status = wait(browser, ec.presence_of_element_located((By.ID, "filing-status")))
    shoot("confirmation")
    assert status.get_attribute("data-state") == "filed", status.text
    notes = live.stored("DocumentReference")
    assert len(notes) == notes_before + 1
    assert notes[-1]["subject"]["reference"] == "Patient/sci-adult"


def test_warn_needs_a_coded_reason_before_the_preview(browser: Any, live: Live, shoot: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _launch(browser, live, "cns-depressants")
    assert _propose(browser, "330", "ug/d") == "warn"
    navigate(browser, browser.find_element(By.ID, "preview-button").click)
    error = wait(browser, ec.presence_of_element_located((By.ID, "form-error")))
    assert "override reason" in error.text
    shoot("override-required")


def test_two_tabs_with_two_patients_stay_apart(browser: Any, live: Live, shoot: Any) -> None:
    from selenium.webdriver.common.by import By

    _launch(browser, live, "sci-adult")
    first_tab = browser.current_window_handle
    first_name = browser.find_element(By.ID, "patient-name").text
    browser.switch_to.new_window("tab")
    _launch(browser, live, "ms-adult")
    second_name = browser.find_element(By.ID, "patient-name").text
    shoot("second-tab")
    browser.switch_to.window(first_tab)
    browser.refresh()
    assert browser.find_element(By.ID, "patient-name").text == first_name
    assert first_name != second_name
    assert _propose(browser, "10", "percent") == "pass"  # still the first patient's 400 ug/d


def test_clinician_page_has_no_serious_accessibility_violations(browser: Any, live: Live) -> None:
    _launch(browser, live, "sci-adult")
    _propose(browser, "50", "percent")
    violations = _axe_violations(browser)
    assert violations == [], [(v["id"], v["description"]) for v in violations]
