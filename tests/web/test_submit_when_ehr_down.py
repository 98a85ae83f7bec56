"""Nothing lost at submit (issue 5): a previewed note is queued even when the EHR is down or slow.

The app and the sandbox EHR run on loopback ports and talk over real HTTP (``plugin.demo``), without the
background outbox runner, so each test decides when the outbox runs. The sandbox's fault injection
takes the EHR down; the per-launch chart cache is made to expire at once (``CHART_TTL_SECONDS = 0``) so
that a submit must read the chart again, as it does when the clinician lingered over the preview.
Emptying ``charts._previews`` and ``charts._cache`` makes a request behave as if served by another worker
or host than the preview: only the sealed copy in the app's database (``NotePreview``) is left.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests
import responses
from sqlalchemy import delete, select, update

from plugin.audit import log as audit_log
from plugin.audit.models import AuditRecord
from plugin.clinician import charts
from plugin.clinician.models import DoseChangeRecord, NotePreview
from plugin.db import Base, Database, utcnow
from plugin.domain.chart import Chart
from plugin.launches.crypto import TokenCipher, sha256_hex
from plugin.launches.models import Launch
from plugin.web import notes
from plugin.writeback.models import OutboxItem
from plugin.writeback.outbox import submission_status
from plugin.writeback.resources import write_id_of
from plugin.writeback.runner import run_round
from plugin.writeback.sender import run_once
from smart_launch import fhir_client
from smart_launch.fhir_client import FhirClient
from tests.e2e.live import Live, free_port
from tests.writeback.writeback_support import BASE, FakeEhr, capability_statement, queue_note

pytestmark = pytest.mark.e2e

PATIENT = "sci-adult"  # 400 ug/d in the sandbox's "full" tenant
PROPOSAL = {"dose_value": "440", "dose_mode": "ug/d"}
OVERRIDE = {
    "override_reason": "benefit-outweighs-risk",
    "override_comment": "Reviewed with the patient.",
    "attest": "yes",
}
ANSWERS = {
    "rationale": "Spasms wake the patient <twice> a night & more.",
    "side_effects_reviewed": "No drowsiness.",
    "education_given": "yes",
    "rescue_plan": "Oral baclofen 10 mg if withdrawal signs appear.",
    "monitoring_plan": "Phone review in 48 hours.",
}
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Yield the app and the sandbox on loopback, with no background outbox runner."""
    from plugin.demo import start_demo

    servers = start_demo(
        "127.0.0.1",
        free_port(),
        free_port(),
        app_overrides={"SECRET_KEY": "ehr-down-secret"},
        sandbox_overrides={"allow_faults": True},
        instance_path=str(tmp_path_factory.mktemp("ehr-down") / "instance"),
        outbox_runner=False,
    )
    yield Live(servers.app_url, servers.sandbox_url, servers.app, servers)
    assert notes.wait_for_background(30), "EHR work of a request was still running at the end"
    servers.shutdown()


@pytest.fixture(autouse=True)
def _ehr_up_no_sleep(live: Live, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never really sleep between the client's retries; bring the EHR back up after each test."""
    monkeypatch.setattr(fhir_client, "_sleep", lambda seconds: None)
    yield
    assert notes.wait_for_background(30)
    faults(live, reset=True)
    fhir_client.clear_capabilities_cache()


def faults(live: Live, **changes: Any) -> None:
    """Change the sandbox's injected faults."""
    response = requests.post(f"{live.sandbox_url}/_sandbox/faults", json=changes, timeout=10)
    assert response.status_code == 200, response.text


@dataclass
class Previewed:
    """A launched browser with a note previewed: what the submit form will post."""

    browser: requests.Session
    base: str  # the launch's app URL, /l/<handle>
    page: str  # the preview page
    fields: dict[str, str]  # the submit form: hidden fields and the typed answers

    @property
    def verdict(self) -> str:
        """Return the verdict the preview showed."""
        match = re.search(r'id="verdict" data-verdict="([^"]+)"', self.page)
        assert match, self.page[:500]
        return match.group(1)

    def submit(self) -> requests.Response:
        """Press 'File note in the EHR' (following the redirect to the confirmation)."""
        return self.browser.post(f"{self.base}/submit", data=self.fields, timeout=60)


def launch_and_preview(live: Live) -> Previewed:
    """Launch the app for PATIENT and preview a dose change with the clinician's answers."""
    browser = requests.Session()
    page = live.launch(PATIENT, session=browser)
    assert page.status_code == 200, page.text[:500]
    handle = re.search(r"/l/([A-Za-z0-9_\-]+)/", page.url)
    assert handle, page.url
    base = f"{live.app_url}/l/{handle.group(1)}"
    csrf = CSRF_FIELD.search(page.text)
    assert csrf
    preview = browser.post(
        f"{base}/preview",
        data={"csrf_token": csrf.group(1), **PROPOSAL, **OVERRIDE, **ANSWERS},
        timeout=60,
    )
    assert preview.status_code == 200, preview.text[:500]
    fields = {name: html.unescape(value) for name, value in HIDDEN_INPUT.findall(preview.text)}
    return Previewed(browser, base, preview.text, {**fields, **ANSWERS})


def launch_id_of(live: Live, previewed: Previewed) -> str:
    """Return the id of the launch a preview was made in (looked up by its handle, as the app does)."""
    handle = previewed.base.rsplit("/", 1)[1]
    with db_of(live).session() as session:
        launch_id = session.scalar(select(Launch.id).where(Launch.handle_hash == sha256_hex(handle)))
    assert launch_id is not None
    return launch_id


def db_of(live: Live) -> Database:
    """Return the app's database."""
    database: Database = live.app.extensions["itb.db"]
    return database


def dose_change(live: Live, submit_key: str) -> DoseChangeRecord | None:
    """Return the dose change filed under a submit key, if any."""
    with db_of(live).session() as session:
        record = session.get(DoseChangeRecord, submit_key)
        if record is not None:
            session.expunge(record)
        return record


def outbox_rows(live: Live, submission_id: str) -> list[OutboxItem]:
    """Return a submission's outbox rows in filing order."""
    with db_of(live).session() as session:
        rows = session.scalars(
            select(OutboxItem).where(OutboxItem.submission_id == submission_id).order_by(OutboxItem.seq)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def outbox_count(live: Live) -> int:
    """Return how many rows the outbox holds."""
    with db_of(live).session() as session:
        return len(session.scalars(select(OutboxItem.id)).all())


def notes_in_ehr(live: Live, write_id: str) -> list[dict[str, Any]]:
    """Return the DocumentReferences in the sandbox that carry one write id."""
    return [r for r in live.stored("DocumentReference") if write_id_of(r) == write_id]


def run_outbox_until_settled(live: Live, submission_id: str) -> str:
    """Run the outbox as its runner would (past any backoff) until the submission settles."""
    factory = live.app.extensions["itb.client_factory"]
    for round_number in range(1, 6):
        # The background runner's round: send, then audit what settled (plugin.writeback.runner).
        run_round(db_of(live), factory, now=utcnow() + timedelta(hours=round_number), owner="runner")
        with db_of(live).session() as session:
            state = submission_status(session, submission_id).state
        if state != "pending":
            return state
    return state


def filing_status(page: str) -> tuple[str, str]:
    """Return the confirmation's filing state and sentence."""
    match = re.search(r'id="filing-status" data-state="([^"]+)" role="status">([^<]*)<', page)
    assert match, page[:800]
    return match.group(1), html.unescape(match.group(2))


def assert_not_filed_and_text_kept(
    live: Live, refused: requests.Response, previewed: Previewed, rows_before: int
) -> dict[str, str]:
    """Check a submit was refused for now (503, no error page) with the clinician's text kept and nothing
    queued; return the kept form's hidden fields."""
    assert refused.status_code == 503, refused.text[:800]
    assert "Traceback" not in refused.text
    message = re.search(r'<p id="error-message">([^<]+)</p>', refused.text)
    assert message and "nothing was filed" in html.unescape(message.group(1))
    kept = {name: html.unescape(value) for name, value in HIDDEN_INPUT.findall(refused.text)}
    assert kept["submit_key"] == previewed.fields["submit_key"]
    assert kept["dose_value"] == PROPOSAL["dose_value"]
    assert kept["override_comment"] == OVERRIDE["override_comment"]
    for name in ("rationale", "side_effects_reviewed", "rescue_plan", "monitoring_plan"):
        textarea = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>([^<]*)</textarea>', refused.text)
        assert textarea and html.unescape(textarea.group(1)) == ANSWERS[name], name
    assert dose_change(live, previewed.fields["submit_key"]) is None, "nothing half-written"
    assert outbox_count(live) == rows_before
    return kept


# --- (a) the EHR goes down between the preview and the submit ------------------------------------


def test_a_submit_while_the_ehr_is_down_is_queued_and_filed_once_when_it_is_back(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)  # the cached chart has expired at submit
    previewed = launch_and_preview(live)
    faults(live, offline_tenants=["full"])
    fhir_client.clear_capabilities_cache()  # nor can the EHR say what it stores
    update = previewed.browser.post(f"{previewed.base}/preview", data=previewed.fields, timeout=60)
    assert update.status_code == 200 and "The EHR is not answering" in update.text  # 'Update preview'

    confirmation = previewed.submit()

    assert confirmation.status_code == 200, confirmation.text[:800]
    state, sentence = filing_status(confirmation.text)
    assert (state, sentence) == ("pending", "saved, will be filed when the EHR answers")
    record = dose_change(live, previewed.fields["submit_key"])
    assert record is not None, "the dose change is in the app's database"
    assert record.verdict == previewed.verdict, "the check filed is the one previewed"
    assert record.proposed_dose_ug_per_day == pytest.approx(440.0)
    assert ANSWERS["rationale"] in record.note_text
    rows = outbox_rows(live, record.outbox_submission_id)
    assert rows and {r.status for r in rows} == {"pending"}, [(r.resource_type, r.status) for r in rows]
    assert rows[0].resource_type == "DocumentReference"
    assert notes_in_ehr(live, rows[0].id) == []

    faults(live, reset=True)  # the EHR is back
    assert run_outbox_until_settled(live, record.outbox_submission_id) == "filed"
    assert len(notes_in_ehr(live, rows[0].id)) == 1, "exactly one note in the EHR"
    again = run_outbox_until_settled(live, record.outbox_submission_id)
    assert again == "filed" and len(notes_in_ehr(live, rows[0].id)) == 1
    page = previewed.browser.get(f"{previewed.base}/changes/{record.id}", timeout=30)
    assert filing_status(page.text)[0] == "filed"
    # The request audited "queued"; the runner's later filing is audited too, once, by the outbox.
    with db_of(live).session() as session:
        trail = [
            (r.action, r.actor)
            for r in session.query(AuditRecord).order_by(AuditRecord.seq)
            if f"DoseChange/{record.id}" in r.related
        ]
    assert ("writeback.queued", "Practitioner/clinician-1") in trail
    assert trail.count(("writeback.filed", "system:outbox")) == 1, trail


def test_submitting_the_same_preview_twice_while_the_ehr_is_down_files_one_dose_change(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    faults(live, offline_tenants=["full"])
    first, second = previewed.submit(), previewed.submit()
    assert first.status_code == second.status_code == 200
    assert first.url == second.url
    record = dose_change(live, previewed.fields["submit_key"])
    assert record is not None
    with db_of(live).session() as session:
        submissions = set(
            session.scalars(select(OutboxItem.submission_id).where(OutboxItem.launch_id == record.launch_id))
        )
    assert submissions == {record.outbox_submission_id}, "the second press queued nothing more"
    faults(live, reset=True)
    assert run_outbox_until_settled(live, record.outbox_submission_id) == "filed"
    [note] = outbox_rows(live, record.outbox_submission_id)[:1]
    assert len(notes_in_ehr(live, note.id)) == 1


def audit_trail(live: Live, change_id: str) -> list[str]:
    """Return the actions the audit log records about one dose change, in chain order."""
    with db_of(live).session() as session:
        return [
            r.action
            for r in session.query(AuditRecord).order_by(AuditRecord.seq)
            if f"DoseChange/{change_id}" in r.related
        ]


def test_a_submission_whose_audit_records_fail_leaves_no_dose_change_and_nothing_queued(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    previewed = launch_and_preview(live)
    rows_before = outbox_count(live)
    append_entries = audit_log.append_entries

    def failing_for_the_proposal(connection: Any, entries: Any, **kwargs: Any) -> Any:
        if any(e.action == "dose-change.propose" for e in entries):
            raise RuntimeError("the audit write failed")  # e.g. the process dies at this point
        return append_entries(connection, entries, **kwargs)

    monkeypatch.setattr(audit_log, "append_entries", failing_for_the_proposal)

    failed = previewed.submit()

    assert failed.status_code == 500 and "Traceback" not in failed.text
    assert dose_change(live, previewed.fields["submit_key"]) is None, "no change the audit log misses"
    assert outbox_count(live) == rows_before, "nothing queued for the EHR either"
    assert audit_trail(live, previewed.fields["submit_key"]) == []
    monkeypatch.setattr(audit_log, "append_entries", append_entries)
    confirmation = previewed.submit()  # the same form again, once the fault is gone
    assert confirmation.status_code == 200, confirmation.text[:800]
    assert dose_change(live, previewed.fields["submit_key"]) is not None


def test_two_submits_racing_past_the_double_click_check_are_audited_once(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    previewed = launch_and_preview(live)
    # Both requests passed the double-click check before either had committed.
    monkeypatch.setattr(notes, "_earlier_submission", lambda launch: None)

    first, second = previewed.submit(), previewed.submit()

    assert first.status_code == second.status_code == 200
    trail = audit_trail(live, previewed.fields["submit_key"])
    assert trail[:3] == ["check.run", "dose-change.propose", "dose-change.override"], trail
    assert len([a for a in trail if a.startswith("writeback.")]) == 1, trail
    assert len(trail) == 4, trail


# --- (b) a slow EHR does not hold the submit -----------------------------------------------------


class GatedClient:
    """The launch's real client, except that a create waits until the test opens the gate."""

    def __init__(self, client: FhirClient, gate: threading.Event) -> None:
        self._client = client
        self._gate = gate
        self.creates = 0

    def create(self, resource: dict[str, Any], **options: Any) -> Any:
        """Wait for the gate (at most 10 s: a stuck test still ends), then create."""
        self.creates += 1
        self._gate.wait(10)
        return self._client.create(resource, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_slow_ehr_does_not_hold_the_submit_beyond_its_budget(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    previewed = launch_and_preview(live)
    real_factory: Callable[[OutboxItem], FhirClient] = live.app.extensions["itb.client_factory"]
    gate = threading.Event()
    gated: list[GatedClient] = []

    def slow_factory(item: OutboxItem) -> GatedClient:
        gated.append(GatedClient(real_factory(item), gate))
        return gated[-1]

    monkeypatch.setitem(live.app.extensions, "itb.client_factory", slow_factory)
    monkeypatch.setattr(notes, "SEND_BUDGET_SECONDS", 0.5)

    started = time.monotonic()
    try:
        confirmation = previewed.submit()
        elapsed = time.monotonic() - started
    finally:
        gate.set()  # the EHR answers at last

    assert elapsed < 4, f"the submit waited {elapsed:.1f} s for a slow EHR"
    assert confirmation.status_code == 200, confirmation.text[:800]
    assert filing_status(confirmation.text) == ("pending", "saved, will be filed when the EHR answers")
    record = dose_change(live, previewed.fields["submit_key"])
    assert record is not None
    assert [g.creates for g in gated] == [1], "one create was under way when the page answered"

    assert notes.wait_for_background(15)  # the create under way is finished under its lease ...
    rows = outbox_rows(live, record.outbox_submission_id)
    assert rows[0].status == "confirmed" and rows[0].lease_owner is None
    waiting = rows[1:]
    assert waiting and all(r.status == "pending" and r.attempts == 0 for r in waiting), [
        (r.resource_type, r.status, r.attempts) for r in waiting
    ]  # ... and nothing more was claimed after the budget: the rest is the runner's

    monkeypatch.setitem(live.app.extensions, "itb.client_factory", real_factory)
    assert run_outbox_until_settled(live, record.outbox_submission_id) == "filed"
    assert len(notes_in_ehr(live, rows[0].id)) == 1


# --- (c) no chart at all and the EHR down --------------------------------------------------------


def test_without_any_chart_and_the_ehr_down_the_submit_is_refused_and_the_text_kept(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    monkeypatch.setattr(charts, "_previews", {})  # the process restarted: no chart in memory ...
    with db_of(live).session() as session:  # ... nor in the database (it could not be stored)
        session.execute(delete(NotePreview).where(NotePreview.launch_id == launch_id_of(live, previewed)))
    faults(live, offline_tenants=["full"])
    rows_before = outbox_count(live)

    refused = previewed.submit()

    kept = assert_not_filed_and_text_kept(live, refused, previewed, rows_before)

    faults(live, reset=True)  # back up: the kept form previews the same note again
    fields = {**kept, **ANSWERS}
    again = previewed.browser.post(f"{previewed.base}/preview", data=fields, timeout=60)
    assert again.status_code == 200 and html.escape(ANSWERS["rationale"]) in again.text


# --- (d) the submit reaches another worker than the preview did -----------------------------------


def as_another_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the next requests as a worker (or host) that did not render the preview: nothing in memory."""
    monkeypatch.setattr(charts, "_previews", {})
    monkeypatch.setattr(charts, "_cache", {})


def stored_preview(live: Live, launch_id: str) -> NotePreview | None:
    """Return the launch's stored preview row, if any."""
    with db_of(live).session() as session:
        row = session.get(NotePreview, launch_id)
        if row is not None:
            session.expunge(row)
        return row


def set_stored_preview(live: Live, launch_id: str, **values: str) -> None:
    """Overwrite columns of the launch's stored preview row."""
    with db_of(live).session() as session:
        session.execute(update(NotePreview).where(NotePreview.launch_id == launch_id).values(**values))


def app_cipher(live: Live) -> TokenCipher:
    """Return the app's cipher (keyed from its secret key)."""
    cipher: TokenCipher = live.app.extensions["itb.cipher"]
    return cipher


def test_a_submit_served_by_another_worker_while_the_ehr_is_down_is_filed_once_when_it_is_back(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    as_another_worker(monkeypatch)
    faults(live, offline_tenants=["full"])
    fhir_client.clear_capabilities_cache()

    confirmation = previewed.submit()

    assert confirmation.status_code == 200, confirmation.text[:800]
    assert filing_status(confirmation.text) == ("pending", "saved, will be filed when the EHR answers")
    record = dose_change(live, previewed.fields["submit_key"])
    assert record is not None, "the dose change is in the app's database"
    assert record.verdict == previewed.verdict, "the check filed is the one previewed"
    assert record.proposed_dose_ug_per_day == pytest.approx(440.0)
    assert record.current_dose_ug_per_day == pytest.approx(400.0), "from the previewed chart"
    assert ANSWERS["rationale"] in record.note_text
    rows = outbox_rows(live, record.outbox_submission_id)
    assert rows and {r.status for r in rows} == {"pending"}
    assert rows[0].resource_type == "DocumentReference"
    assert notes_in_ehr(live, rows[0].id) == []

    faults(live, reset=True)  # the EHR is back
    assert run_outbox_until_settled(live, record.outbox_submission_id) == "filed"
    assert len(notes_in_ehr(live, rows[0].id)) == 1, "exactly one note in the EHR"
    assert run_outbox_until_settled(live, record.outbox_submission_id) == "filed"
    assert len(notes_in_ehr(live, rows[0].id)) == 1


def test_a_stored_chart_of_another_preview_is_not_used(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    launch_id = launch_id_of(live, previewed)
    row = stored_preview(live, launch_id)
    assert row is not None and row.submit_key == previewed.fields["submit_key"]
    set_stored_preview(live, launch_id, submit_key=str(uuid.uuid4()))  # a later preview, in another tab
    as_another_worker(monkeypatch)
    faults(live, offline_tenants=["full"])
    rows_before = outbox_count(live)

    refused = previewed.submit()

    assert_not_filed_and_text_kept(live, refused, previewed, rows_before)
    set_stored_preview(live, launch_id, submit_key=row.submit_key)  # the control: this preview's key
    assert previewed.submit().status_code == 200
    assert dose_change(live, previewed.fields["submit_key"]) is not None


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(
            lambda live, plain: TokenCipher("a rotated secret key").seal_bytes(plain), id="other-key"
        ),
        pytest.param(lambda live, plain: app_cipher(live).seal_bytes(b'{"patient": 7}'), id="other-shape"),
        pytest.param(lambda live, plain: app_cipher(live).seal_bytes(b"\x00not json"), id="not-json"),
        pytest.param(lambda live, plain: "not a Fernet token", id="not-a-token"),
    ],
)
def test_a_stored_chart_that_cannot_be_read_counts_as_no_copy(
    live: Live,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Live, bytes], str],
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    launch_id = launch_id_of(live, previewed)
    row = stored_preview(live, launch_id)
    assert row is not None
    set_stored_preview(live, launch_id, chart_enc=spoil(live, app_cipher(live).open_bytes(row.chart_enc)))
    as_another_worker(monkeypatch)
    faults(live, offline_tenants=["full"])
    rows_before = outbox_count(live)

    with caplog.at_level(logging.WARNING, logger=charts.__name__):
        refused = previewed.submit()

    assert_not_filed_and_text_kept(live, refused, previewed, rows_before)
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "chart.preview_unreadable"]
    assert warnings, "the unreadable copy is logged"
    assert all(PATIENT not in r.getMessage() and not r.exc_info for r in warnings)
    set_stored_preview(live, launch_id, chart_enc=row.chart_enc)  # the control: the row as stored
    assert previewed.submit().status_code == 200
    assert dose_change(live, previewed.fields["submit_key"]) is not None


def test_the_stored_chart_is_encrypted(live: Live) -> None:
    previewed = launch_and_preview(live)
    row = stored_preview(live, launch_id_of(live, previewed))
    assert row is not None
    plain = app_cipher(live).open_bytes(row.chart_enc)
    chart = msgspec.json.decode(plain, type=Chart)
    assert chart.patient.reference == f"Patient/{PATIENT}"
    [record] = chart.dose_records
    in_clear = [PATIENT, f'"daily_dose_ug":{record.daily_dose_ug}']
    in_clear += [text for text in (chart.patient.name, record.original_text) if text]
    assert all(text.encode() in plain for text in in_clear), "what the stored bytes must hide"
    stored = row.chart_enc.encode("ascii")
    for found_in in (stored, base64.urlsafe_b64decode(stored)):  # not merely encoded either
        assert [text for text in in_clear if text.encode() in found_in] == []


# --- the chart changed between the preview and the submit ----------------------------------------


def test_a_chart_that_changed_since_the_preview_is_shown_again_instead_of_filed(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CHART_TTL_SECONDS", 0)
    previewed = launch_and_preview(live)
    original = notes.chart_for_launch

    def chart_without_the_pump_record(*args: Any, **kwargs: Any) -> Any:
        return replace(original(*args, **kwargs), dose_records=())  # someone edited the record

    monkeypatch.setattr(notes, "chart_for_launch", chart_without_the_pump_record)
    rows_before = outbox_count(live)
    changed = previewed.submit()

    assert changed.status_code == 409, changed.text[:800]
    assert "changed in the EHR since your preview" in changed.text
    verdict = re.search(r'id="verdict" data-verdict="([^"]+)"', changed.text)
    assert verdict and verdict.group(1) != previewed.verdict
    assert dose_change(live, previewed.fields["submit_key"]) is None
    assert outbox_count(live) == rows_before


# --- the sender decides what the EHR can store when it sends -------------------------------------


@pytest.fixture
def outbox_db(tmp_path: Path) -> Iterator[Database]:
    """Yield a fresh outbox database."""
    database = Database(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_rows_queued_without_capabilities_are_held_or_trimmed_when_sent(outbox_db: Database) -> None:
    oracle_like = capability_statement({"DocumentReference": {}, "Provenance": {}})
    fhir_client.clear_capabilities_cache()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        ehr = FakeEhr(rsps, oracle_like)
        submission = queue_note(outbox_db, dict(notes.DECIDE_WHEN_SENDING))
        with outbox_db.session() as session:
            assert {i.status for i in submission_status(session, submission).items} == {"pending"}
        with FhirClient(BASE, lambda: "AT-1", max_retries=0) as client:
            run_once(outbox_db, lambda item: client, now=utcnow(), owner="runner")
    fhir_client.clear_capabilities_cache()
    with outbox_db.session() as session:
        status = submission_status(session, submission)
    by_type = {i.resource_type: i.status for i in status.items}
    assert by_type == {
        "DocumentReference": "confirmed",
        "DetectedIssue": "held",
        "QuestionnaireResponse": "held",
        "Provenance": "confirmed",
    }
    assert status.state == "filed" and "kept in ITB Dose Check" in status.message
    assert {p["resourceType"] for p in ehr.posts} == {"DocumentReference", "Provenance"}
    [provenance] = ehr.of_type("Provenance")
    [document] = ehr.of_type("DocumentReference")
    assert provenance["target"] == [{"reference": f"DocumentReference/{document['id']}"}]
