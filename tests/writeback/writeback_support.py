"""Builders and a fake EHR shared by the write-back tests (imported by name; conftest holds fixtures)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

from plugin.writeback.note import NoteInput

BASE = "https://ehr.example/fhir"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def check_result(verdict: str = "warn", findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a CONTRACT §3 check result for Patient/123."""
    if findings is None:
        findings = [
            {
                "code": "cns-depressant",
                "severity": "warn",
                "message": "An opioid is active; watch for sedation.",
                "evidence": ["MedicationRequest/opioid-1"],
            },
            {
                "code": "oral-baclofen-active",
                "severity": "info",
                "message": "Oral baclofen is active alongside the pump.",
                "evidence": ["MedicationRequest/oral-2"],
            },
            {
                "code": "origin-unknown",
                "severity": "warn",
                "message": "No condition tells spinal from cerebral origin.",
                "evidence": [],
            },
        ]
    return {
        "verdict": verdict,
        "patient": "Patient/123",
        "evaluated_at": NOW.isoformat(),
        "current_dose": {"value": 400.0, "unit": "ug/d", "source": "MedicationStatement/abc"},
        "proposed_dose": {"value": 480.0, "unit": "ug/d"},
        "change_percent": 20.0,
        "origin": "spinal",
        "phase": "maintenance",
        "findings": findings,
        "rules_version": "2026.11-1",
    }


CHART_SUMMARY: dict[str, Any] = {
    "concentration_ug_per_ml": 2000.0,
    "reservoir_volume_ml": 20.0,
    "volume_remaining_ml": 12.5,
    "alarm_volume_ml": 2.0,
    "low_reservoir_alarm_date": date(2027, 1, 31),
    "next_refill_date": date(2027, 2, 14),
    "scores": [
        {
            "code": "mas",
            "display": "1+",
            "effective": datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
            "source": "Observation/mas-1",
        },
        {"code": "spasticity-nrs", "display": "6", "effective": "2026-10-15T08:00:00+00:00"},
    ],
}


def note_input(verdict: str = "warn", **overrides: Any) -> NoteInput:
    """Return a complete note input; the override is attested because the verdict needs it."""
    fields: dict[str, Any] = {
        "check_result": check_result(verdict),
        "chart_summary": CHART_SUMMARY,
        "rationale": "Spasms still wake the patient twice a night.",
        "side_effects_reviewed": "No drowsiness, no hypotonia.",
        "education_given": True,
        "rescue_plan": "Oral baclofen 10 mg three times daily if the pump alarms or withdrawal signs appear.",
        "monitoring_plan": "Phone review in 48 hours; clinic in 2 weeks.",
        "author_display": "Dr Ada Example",
        "patient_display": "Jane Testpatient",
        "override_reason_code": "benefit-outweighs-risk",
        "override_reason_display": "Clinical benefit outweighs the risk for this patient",
        "override_comment": "Opioid dose is stable and low.",
        "attested": True,
    }
    fields.update(overrides)
    return NoteInput(**fields)


def capability_statement(types: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return a CapabilityStatement from e.g. ``{"DocumentReference": {"conditionalCreate": True}}``."""
    resources = []
    for type_name, spec in types.items():
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if spec.get("create", True):
            interactions.append({"code": "create"})
        if spec.get("update", False):
            interactions.append({"code": "update"})
        entry: dict[str, Any] = {"type": type_name, "interaction": interactions}
        if "conditionalCreate" in spec:
            entry["conditionalCreate"] = spec["conditionalCreate"]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    }


FULL_CAPS = capability_statement(
    {
        t: {"conditionalCreate": True}
        for t in ("DocumentReference", "DetectedIssue", "Provenance", "QuestionnaireResponse")
    }
)
# Epic-like: DocumentReference create only (no DetectedIssue; Provenance and QuestionnaireResponse
# not creatable for this use), and no conditional create.
EPIC_LIKE_CAPS = capability_statement(
    {"DocumentReference": {}, "Provenance": {"create": False}, "QuestionnaireResponse": {"create": False}}
)


Handler = Callable[[Any], tuple[int, dict[str, str], str]]


class FakeEhr:
    """A tiny FHIR server on ``responses``: create (optionally conditional), read, update (If-Match),
    search by identifier/_tag.

    ``post_faults`` is a queue of things to do to the next POSTs: ``"store-then-timeout"`` stores the
    resource and then raises a read timeout; ``(status, outcome)`` answers an error without storing.
    ``put_faults`` does the same to the next PUTs, and ``"concurrent-change"`` lets another writer add a
    mitigation (a new version) just before the PUT is handled. ``drop`` lists top-level elements the
    server forgets (like Oracle Health's unsupported fields).
    """

    def __init__(self, rsps: responses.RequestsMock, capabilities: dict[str, Any], base: str = BASE) -> None:
        self.base = base
        self.capabilities = capabilities
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.post_faults: list[Any] = []
        self.read_faults: list[Any] = []
        self.drop: dict[str, list[str]] = {}
        self.honour_conditional = True
        self.expected_token: str | None = None
        self.puts: list[dict[str, Any]] = []
        self.put_faults: list[Any] = []
        path = re.escape(base)
        rsps.add_callback(
            responses.PUT, re.compile(path + r"/([A-Za-z]+)/([A-Za-z0-9.-]+)$"), callback=self._update
        )
        rsps.add_callback(responses.GET, re.compile(path + r"/metadata$"), callback=self._metadata)
        rsps.add_callback(responses.POST, re.compile(path + r"/([A-Za-z]+)$"), callback=self._create)
        rsps.add_callback(
            responses.GET, re.compile(path + r"/([A-Za-z]+)/([A-Za-z0-9.-]+)$"), callback=self._read
        )
        rsps.add_callback(
            responses.GET, re.compile(path + r"/(?!metadata)([A-Za-z]+)(\?.*)?$"), callback=self._search
        )

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        """Return the stored resources of one type."""
        return [r for (t, _), r in self.store.items() if t == resource_type]

    def _unauthorized(self, request: Any) -> tuple[int, dict[str, str], str] | None:
        """Answer 401 when the request's token is not the expected one."""
        if self.expected_token and request.headers.get("Authorization") != f"Bearer {self.expected_token}":
            return 401, {}, json.dumps(outcome("token expired"))
        return None

    def _metadata(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Return the CapabilityStatement."""
        return 200, {}, json.dumps(self.capabilities)

    def _matches(self, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Return stored resources matching identifier= or _tag= (system|value)."""
        found = []
        for resource in self.of_type(resource_type):
            ok = True
            for name, value in params:
                system, _, code = value.partition("|")
                if name == "identifier":
                    idents = resource.get("identifier") or []
                    idents = [idents] if isinstance(idents, dict) else idents
                    ok &= any(i.get("system") == system and i.get("value") == code for i in idents)
                elif name == "_tag":
                    tags = (resource.get("meta") or {}).get("tag") or []
                    ok &= any(t.get("system") == system and t.get("code") == code for t in tags)
            if ok:
                found.append(resource)
        return found

    def _create(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Store a POSTed resource (or apply the next fault)."""
        denied = self._unauthorized(request)
        if denied:
            return denied
        resource_type = urlsplit(request.url).path.rsplit("/", 1)[-1]
        body = json.loads(request.body)
        self.posts.append(body)
        fault = self.post_faults.pop(0) if self.post_faults else None
        if isinstance(fault, tuple):
            return fault[0], {}, json.dumps(fault[1])
        condition = request.headers.get("If-None-Exist")
        if condition and self.honour_conditional:
            existing = self._matches(resource_type, parse_qsl(condition))
            if existing:
                return 200, {"Location": f"{self.base}/{resource_type}/{existing[0]['id']}/_history/1"}, ""
        server_id = uuid.uuid4().hex[:12]
        stored = {k: v for k, v in body.items() if k not in self.drop.get(resource_type, [])}
        stored["id"] = server_id
        stored["meta"] = {**stored.get("meta", {}), "versionId": "1"}
        self.store[(resource_type, server_id)] = stored
        if fault == "store-then-timeout":
            raise requests.exceptions.ReadTimeout("read timed out")
        return 201, {"Location": f"{self.base}/{resource_type}/{server_id}/_history/1"}, json.dumps(stored)

    def _update(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Store a PUT resource as a new version when If-Match names the current one (else 412)."""
        denied = self._unauthorized(request)
        if denied:
            return denied
        resource_type, resource_id = urlsplit(request.url).path.split("/")[-2:]
        body = json.loads(request.body)
        self.puts.append(body)
        fault = self.put_faults.pop(0) if self.put_faults else None
        if isinstance(fault, tuple):
            return fault[0], {}, json.dumps(fault[1])
        current = self.store.get((resource_type, resource_id))
        if current is None:
            return 404, {}, json.dumps(outcome("not found", "not-found"))
        if fault == "concurrent-change":
            current = self._new_version(
                {
                    **current,
                    "mitigation": [*current.get("mitigation", []), {"action": {"text": "Other system"}}],
                }
            )
        version = current["meta"]["versionId"]
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != f'W/"{version}"':
            return 412, {}, json.dumps(outcome(f"version {version} is current", "conflict"))
        stored = self._new_version({**body, "id": resource_id, "meta": current["meta"]})
        if fault == "store-then-timeout":
            raise requests.exceptions.ReadTimeout("read timed out")
        return 200, {"ETag": f'W/"{stored["meta"]["versionId"]}"'}, json.dumps(stored)

    def _new_version(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store ``resource`` as the next version of itself and return it."""
        version = int(resource["meta"]["versionId"]) + 1
        stored = {**resource, "meta": {**resource["meta"], "versionId": str(version)}}
        self.store[(stored["resourceType"], stored["id"])] = stored
        return stored

    def _read(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Return one stored resource."""
        denied = self._unauthorized(request)
        if denied:
            return denied
        parts = urlsplit(request.url).path.split("/")
        fault = self.read_faults.pop(0) if self.read_faults else None
        if isinstance(fault, tuple):
            return fault[0], {}, json.dumps(fault[1])
        resource = self.store.get((parts[-2], parts[-1]))
        if resource is None:
            return 404, {}, json.dumps(outcome("not found"))
        return 200, {}, json.dumps(resource)

    def _search(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Return a searchset of matches."""
        denied = self._unauthorized(request)
        if denied:
            return denied
        split = urlsplit(request.url)
        resource_type = split.path.rsplit("/", 1)[-1]
        found = self._matches(resource_type, parse_qsl(split.query))
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
        }
        return 200, {}, json.dumps(bundle)


def outcome(text: str, code: str = "invalid") -> dict[str, Any]:
    """Return an OperationOutcome with one error issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def write_context(**overrides: Any) -> Any:
    """Return the launch's write context for Patient/123 by Practitioner/9 (Epic-style absolute fhirUser)."""
    from plugin.writeback.resources import WriteContext

    fields: dict[str, Any] = {
        "iss": BASE,
        "patient_id": "123",
        "fhir_user": f"{BASE}/Practitioner/9",
        "encounter_id": "enc-1",
        "now": NOW,
    }
    fields.update(overrides)
    return WriteContext(**fields)


def queue_note(
    db: Any,
    capabilities: dict[str, Any],
    *,
    settings: Any = None,
    note: NoteInput | None = None,
    launch_id: str = "launch-1",
) -> str:
    """Build a full submission for the default note and queue it; return the submission id."""
    from plugin.writeback.outbox import enqueue_submission
    from plugin.writeback.resources import WriteBackSettings
    from plugin.writeback.submission import build_submission

    context = write_context()
    resources = build_submission(
        note or note_input(), context=context, settings=settings or WriteBackSettings()
    )
    with db.session() as session:
        return enqueue_submission(
            session,
            launch_id=launch_id,
            iss=BASE,
            patient_id="123",
            resources=resources,
            capabilities=capabilities,
            author_ref=context.fhir_user,
            now=NOW,
        )
