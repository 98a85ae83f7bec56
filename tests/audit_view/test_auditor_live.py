"""End to end through the sandbox EHR: auditor-1's launch opens the audit log; clinician-1's is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.audit_view.support import records
from tests.e2e.live import Live, start_live

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Yield a running app + sandbox for this module."""
    pair = start_live(tmp_path_factory.mktemp("audit-view"))
    yield pair
    pair.servers.shutdown()


def test_an_auditor_launch_reaches_the_audit_log_from_the_app_page(live: Live) -> None:
    browser = requests.Session()
    page = live.launch("sci-adult", user="auditor-1", session=browser)
    assert page.status_code == 200
    link = re.search(r'id="auditor-link" href="([^"]+)"', page.text)
    assert link, "the auditor's app page links to the audit log"
    audit_page = browser.get(f"{live.app_url}{link.group(1)}", params={"patient": "sci-adult"}, timeout=30)
    assert audit_page.status_code == 200
    assert 'data-action="launch.read-record"' in audit_page.text  # the auditor's own launch
    assert 'data-intact="true"' in audit_page.text
    csv = browser.get(f"{live.app_url}{link.group(1)}export/csv", params={"patient": "sci-adult"}, timeout=30)
    assert csv.headers["Content-Type"].startswith("text/csv")
    assert csv.text.startswith("seq,id,recorded_at,actor")


def test_a_clinician_launch_is_refused_and_the_refusal_is_audited(live: Live) -> None:
    page = live.launch("sci-adult", user="clinician-1")
    handle = re.match(rf"{re.escape(live.app_url)}/l/([^/]+)/", page.url).group(1)
    assert 'id="auditor-link"' not in page.text
    refused = requests.get(f"{live.app_url}/l/{handle}/audit/", timeout=30)
    assert refused.status_code == 403
    with live.app.app_context():
        last = records(live.app.extensions["itb.db"], "action.refused")[-1]
    assert (last["actor"], last["actor_role"]) == ("Practitioner/clinician-1", "clinician")
