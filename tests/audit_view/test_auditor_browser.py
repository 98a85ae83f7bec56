"""The auditor's pages in headless Chromium: reachable from an auditor's launch, usable, and axe-clean."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import axe_source, browser, navigate, shoot  # noqa: F401 - fixtures
from tests.e2e.live import Live

pytestmark = pytest.mark.browser


def _serious_violations(driver: Any) -> list[dict[str, Any]]:
    """Return axe-core's serious and critical violations on the current page (skip without axe)."""
    source = axe_source()
    if source is None:
        pytest.skip("axe-core is not installed (scripts/install.sh --test installs it from npm)")
    driver.execute_script(source)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', description: String(e)}]));"
    )
    return [v for v in result if v.get("impact") in ("serious", "critical")]


def test_an_auditor_filters_the_log_and_reads_a_timeline(browser: Any, live: Live, shoot: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    live.launch("sci-adult", user="clinician-1")  # something to find
    browser.get(f"{live.sandbox_url}/launch?tenant=full&user=auditor-1&patient=sci-adult")
    navigate(browser, browser.find_element(By.ID, "auditor-link").click)
    assert browser.find_element(By.ID, "chain-status").get_attribute("data-intact") == "true"
    browser.find_element(By.ID, "patient").send_keys("sci-adult")
    Select(browser.find_element(By.ID, "overridden")).select_by_value("no")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "#audit-filters button[type=submit]").click)
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit-results tbody tr")
    assert rows and all("sci-adult" in row.text for row in rows)
    shoot("search")
    assert _serious_violations(browser) == []
    navigate(browser, rows[0].find_element(By.LINK_TEXT, "sci-adult").click)
    assert "Dose changes of patient" in browser.find_element(By.ID, "timeline-heading").text
    shoot("timeline")
    assert _serious_violations(browser) == []


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Yield a running app + sandbox for this module's browser test."""
    from tests.e2e.live import start_live

    pair = start_live(tmp_path_factory.mktemp("audit-browser"))
    yield pair
    pair.servers.shutdown()
