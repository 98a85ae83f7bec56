"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, with screenshots kept
under tests/artifacts/ as CI artifacts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.live import Live, start_live

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AXE_CANDIDATES = (
    Path.home() / ".cache/itb/npm/node_modules/axe-core/axe.min.js",
    Path("/usr/share/javascript/axe-core/axe.min.js"),
)


def _chromedriver() -> str | None:
    return shutil.which("chromedriver")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Yield a running app + sandbox for the module's browser tests."""
    pair = start_live(tmp_path_factory.mktemp("browser"))
    yield pair
    pair.servers.shutdown()


@pytest.fixture
def browser() -> Iterator[object]:
    """Yield a headless Chromium WebDriver, or skip when Chromium is not installed."""
    if _chromedriver() is None or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/install.sh --test)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="itb-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shoot(request: pytest.FixtureRequest, browser: object):  # type: ignore[no-untyped-def]
    """Return a function that saves a numbered screenshot of the current page under tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    counter = iter(range(1, 100))

    def save(step: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{next(counter):02d}-{step}.png"
        browser.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    return save


def axe_source() -> str | None:
    """Return axe-core's source when it has been installed (scripts/install.sh --test), else None."""
    for candidate in AXE_CANDIDATES:
        if candidate.exists():
            return candidate.read_text(encoding="utf-8")
    return None


def wait(driver: Any, condition: Any, timeout: float = 20) -> Any:
    """Wait until `condition(driver)` is truthy, looking again whenever an element went stale."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The live check swaps the result panel while we look at it, and a navigation replaces the whole
    # document: an element found a moment ago may be gone, which just means "look again".
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition
    )


def navigate(driver: Any, action: Callable[[], object], timeout: float = 30) -> None:
    """Run `action` (a click or submit that loads a new page) and wait until the new page has loaded.

    WebDriver's click does not wait for the navigation it starts: without this, the next find_element can
    return an element of the page being left (same id on both pages), which goes stale a moment later.
    The old page is marked with a window property, which the new page does not have; asking an element of
    the old page whether it is stale instead can fail outright mid-navigation in chromedriver ("Node with
    given id does not belong to the document").
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__itbLeaving = true;")
    action()
    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__itbLeaving !== true && document.readyState === 'complete';"
        )
    )
