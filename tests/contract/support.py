"""Helpers for the contract tests: the sandbox patients shifted to today, a sandbox token, the servers.

The contract tests run the same assertions against a real HAPI FHIR server and the sandbox EHR's store,
so anything the app assumes about a FHIR server is proven on the software most sandboxes run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import requests

from smart_launch.fhir_client import FhirClient
from smart_launch.sandbox import shift_dates
from smart_launch.sandbox.dates import days_between
from smart_launch.sandbox.users import user_resources

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DIR = ROOT / "config" / "sandbox"
MANIFEST: dict[str, Any] = tomllib.loads((SANDBOX_DIR / "manifest.toml").read_text(encoding="utf-8"))
ANCHOR = datetime.fromisoformat(str(MANIFEST["anchor"]).replace("Z", "+00:00"))
#: Whole days from the manifest's anchor to today, as the sandbox seeding shifts its bundles.
SHIFT_DAYS = days_between(ANCHOR, datetime.now(UTC))
#: The explicit "now" of every check: the anchor's time of day on today's date, so each scenario is
#: exactly as far from its data as the manifest's expectations were written for.
NOW = ANCHOR + timedelta(days=SHIFT_DAYS)
PATIENTS: list[dict[str, Any]] = list(MANIFEST["patients"])
PATIENT_IDS = [str(p["id"]) for p in PATIENTS]
SANDBOX_CLIENT_ID = "itb-public"
SANDBOX_REDIRECT = "http://127.0.0.1:5000/callback"  # registered for itb-public in clients.toml
SANDBOX_SCOPE = "openid fhirUser user/*.cruds"


def patient_entry(patient_id: str) -> dict[str, Any]:
    """Return the manifest entry of one sandbox patient."""
    return next(p for p in PATIENTS if p["id"] == patient_id)


def shifted_bundle(patient_id: str) -> dict[str, Any]:
    """Return a patient's transaction Bundle with its dates shifted to today, as the sandbox seeds it."""
    bundle = json.loads((SANDBOX_DIR / patient_entry(patient_id)["file"]).read_text(encoding="utf-8"))
    shifted: dict[str, Any] = shift_dates(bundle, SHIFT_DAYS)
    return shifted


def users_bundle() -> dict[str, Any]:
    """Return a transaction that PUTs the sandbox users (Practitioners) the write-back refers to."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in user_resources()
        ],
    }


def sandbox_user_token(root: str, tenant: str = "full", scope: str = SANDBOX_SCOPE) -> str:
    """Run a standalone SMART launch (PKCE, picker answered as clinician-1) over HTTP; return the token."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    form = {
        "response_type": "code",
        "client_id": SANDBOX_CLIENT_ID,
        "redirect_uri": SANDBOX_REDIRECT,
        "scope": scope,
        "state": secrets.token_urlsafe(16),
        "aud": f"{root}/{tenant}/fhir",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "user": "clinician-1",  # the picker's answer: a user-level launch needs no patient
    }
    with requests.Session() as http:
        answer = http.post(f"{root}/{tenant}/auth/authorize", data=form, allow_redirects=False, timeout=10)
        if answer.status_code != 302:
            raise AssertionError(f"authorize answered {answer.status_code}: {answer.text[:300]}")
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        if "code" not in query:
            raise AssertionError(f"authorize redirected without a code: {query}")
        token = http.post(
            f"{root}/{tenant}/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": SANDBOX_REDIRECT,
                "code_verifier": verifier,
                "client_id": SANDBOX_CLIENT_ID,
            },
            timeout=10,
        )
    if token.status_code != 200:
        raise AssertionError(f"token endpoint answered {token.status_code}: {token.text[:300]}")
    return str(token.json()["access_token"])


class FhirServer(NamedTuple):
    """One server under contract: its name (hapi or sandbox), base URL, bearer token and a client."""

    name: str
    base_url: str
    token: str | None
    client: FhirClient

    def new_client(self) -> FhirClient:
        """Return another client for the same server (the caller closes it)."""
        token = self.token
        return FhirClient(self.base_url, (lambda: token) if token else None, max_retries=1)

    def headers(self) -> dict[str, str]:
        """Return the headers of a raw request (the bearer token, when the server needs one)."""
        headers = {"Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


@dataclass
class ValidateTally:
    """``$validate`` outcomes per resource type, for the summary at the end of the run."""

    resources: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    warnings: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    information: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, resource_type: str, outcome: dict[str, Any]) -> list[dict[str, Any]]:
        """Count one outcome; return its error and fatal issues."""
        self.resources[resource_type] += 1
        bad = []
        for issue in outcome.get("issue") or []:
            severity = issue.get("severity")
            if severity in ("error", "fatal"):
                self.errors[resource_type] += 1
                bad.append(issue)
            elif severity == "warning":
                self.warnings[resource_type] += 1
            else:
                self.information[resource_type] += 1
        return bad

    def lines(self) -> list[str]:
        """Return one summary line per resource type."""
        return [
            f"$validate {name}: {count} resources, {self.errors[name]} errors, "
            f"{self.warnings[name]} warnings, {self.information[name]} information"
            for name, count in sorted(self.resources.items())
        ]


VALIDATE_TALLY = ValidateTally()


def dose_change_note(patient_id: str, client: FhirClient) -> tuple[Any, Any]:
    """Check the manifest's proposal for a patient read from ``client``; return (NoteInput, CheckResult).

    The clinician's answers are complete, with an attested, coded override whenever the verdict needs one.
    """
    from plugin.clinician.submission import chart_summary
    from plugin.domain.codes import load_code_sets
    from plugin.domain.engine import check
    from plugin.domain.loader import load_chart
    from plugin.domain.result import Proposal
    from plugin.domain.rules_config import load_rules
    from plugin.writeback.codes import override_reason_display
    from plugin.writeback.note import NoteInput

    rules = load_rules()
    chart = load_chart(client, patient_id, codes=load_code_sets(), now=NOW)
    result = check(
        chart, Proposal(float(patient_entry(patient_id)["expect"]["proposed_ug_per_day"])), rules, NOW
    )
    note = NoteInput(
        check_result=result.to_json(),
        chart_summary=chart_summary(chart, result, rules, NOW),
        rationale="Spasms still wake the patient twice a night.",
        side_effects_reviewed="No drowsiness, no hypotonia.",
        education_given=True,
        rescue_plan="Oral baclofen 10 mg three times daily if the pump alarms or withdrawal signs appear.",
        monitoring_plan="Phone review in 48 hours; clinic in 2 weeks.",
        author_display="Dr Priya Raman",
        patient_display=chart.patient.name or chart.patient.reference,
        override_reason_code="benefit-outweighs-risk",
        override_reason_display=override_reason_display("benefit-outweighs-risk"),
        override_comment="Reviewed with the pump team.",
        attested=True,
    )
    return note, result
