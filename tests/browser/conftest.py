"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, with screenshots kept
under tests/artifacts/ as CI artifacts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
