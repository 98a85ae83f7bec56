"""`itb demo` seeds the pharmacist's queue by filing one change through the app, as a clinician would."""

from __future__ import annotations

import pytest
import requests

from plugin.demo_seed import seed_pharmacist_queue
from tests.e2e.live import Live

pytestmark = pytest.mark.e2e


def test_the_seeded_change_waits_in_the_pharmacists_queue(live: Live) -> None:
    notes_before = len(live.stored("DocumentReference"))
    confirmation = seed_pharmacist_queue(live.app_url, live.sandbox_url)
    assert "/changes/" in confirmation
    assert len(live.stored("DocumentReference")) == notes_before + 1
    with requests.Session() as browser:
        page = live.launch("sci-adult", user="pharmacist-1", session=browser)
        base = page.url.split("?", 1)[0].rstrip("/")
        queue = browser.get(f"{base}/pharmacist/", timeout=30)
    assert queue.status_code == 200, queue.text[:300]
    assert 'data-patient-id="sci-adult"' in queue.text
