"""Seed the demo's pharmacist queue: a clinician files one +10 % dose change through the app, over HTTP.

The sandbox EHR starts empty of dose changes, so a pharmacist opening the demo would see an empty queue.
This drives the clinician's real path once (sandbox launch as clinician-1, preview, submit), so the queue
holds a change the pharmacist can review, verify or reject, and the EHR holds the clinician's note.
"""

from __future__ import annotations

import html
import re

import requests

_CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_TIMEOUT = 30.0
PATIENT = "sci-adult"
PROPOSAL = {"dose_value": "10", "dose_mode": "percent"}  # 400 -> 440 ug/d: a pass for sci-adult
ANSWERS = {
    "rationale": "Demo: spasms still wake the patient at night at the current dose.",
    "side_effects_reviewed": "No drowsiness or weakness reported.",
    "education_given": "yes",
    "rescue_plan": "Oral baclofen if withdrawal signs appear; call the pump clinic.",
    "monitoring_plan": "Phone review in 48 hours.",
}


def seed_pharmacist_queue(app_url: str, sandbox_url: str, patient: str = PATIENT) -> str:
    """File one dose change as clinician-1 for ``patient``; return the confirmation page's URL."""
    with requests.Session() as browser:
        page = browser.get(
            f"{sandbox_url}/launch",
            params={"tenant": "full", "user": "clinician-1", "patient": patient},
            timeout=_TIMEOUT,
        )
        page.raise_for_status()
        base = page.url.split("?", 1)[0].rstrip("/")
        token = _CSRF.search(page.text)
        if token is None:
            raise RuntimeError("the clinician page has no form to file a note from")
        preview = browser.post(
            f"{base}/preview", data={"csrf_token": token.group(1), **PROPOSAL}, timeout=_TIMEOUT
        )
        preview.raise_for_status()
        fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(preview.text)}
        submit = browser.post(f"{base}/submit", data={**fields, **ANSWERS}, timeout=_TIMEOUT)
        submit.raise_for_status()
        return submit.url
