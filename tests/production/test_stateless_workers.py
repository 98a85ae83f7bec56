"""Two real ``itb serve`` processes (gunicorn) share one PostgreSQL: the workers keep no state of their own.

(a) a launch started on host A completes on host B (what a load balancer without sticky sessions does);
(b) two simultaneous token refreshes of one launch on both hosts present the refresh token once;
(c) two outbox runners in two processes file each queued note exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import create_engine, text

from plugin.writeback.resources import write_id_of
from smart_launch.keys import KeySet
from tests.e2e.live import free_port
from tests.production.servers import (
    Sandbox,
    ServeProcess,
    clean_env,
    fresh_postgres_database,
    handle_of,
    itb_executable,
    outbox_summary,
    outstanding_rows,
    preview_and_submit,
    run_itb,
    set_token_lifetime,
    start_sandbox,
    start_serve,
    write_registry,
)

pytestmark = pytest.mark.postgres


@dataclass
class Cluster:
    """Hosts A and B, the sandbox EHR, the shared database and the environment both hosts run with."""

    a: ServeProcess
    b: ServeProcess
    sandbox: Sandbox
    database_url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Start the sandbox and two ``itb serve`` hosts on a fresh PostgreSQL database; tear all down."""
    base_url = os.environ.get("ITB_TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("ITB_TEST_DATABASE_URL is not set (scripts/postgres/start.sh starts a server)")
    root = tmp_path_factory.mktemp("stateless")
    port_a, port_b = free_port(), free_port()
    app_a = f"http://127.0.0.1:{port_a}"
    with fresh_postgres_database(base_url) as database_url:
        sandbox = start_sandbox(app_a, allow_faults=True)
        keys = root / "secrets" / "keys.json"
        KeySet.generate("ES384").save(keys)
        env = clean_env(
            ENV_NAME="production",
            DATABASE_URL=database_url,
            SECRET_KEY="one-secret-for-every-host",
            KEYS_FILE=keys,
            EHR_REGISTRY=write_registry(root / "registry.toml", sandbox.url),
            PUBLIC_URL=app_a,  # both hosts answer for the one public URL, as behind a load balancer
            WORKERS=2,
            THREADS=4,
            LOG_LEVEL="WARNING",
        )
        upgraded = run_itb(env, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        hosts: list[ServeProcess] = []
        try:
            hosts.append(
                start_serve(
                    {**env, "ITB_INSTANCE_PATH": str(root / "a")}, root / "logs", port=port_a, name="a"
                )
            )
            hosts.append(
                start_serve(
                    {**env, "ITB_INSTANCE_PATH": str(root / "b")}, root / "logs", port=port_b, name="b"
                )
            )
            yield Cluster(hosts[0], hosts[1], sandbox, database_url, env)
        finally:
            for host in hosts:
                host.stop()
            sandbox.stop()


def on_host(url: str, host: ServeProcess) -> str:
    """Return ``url`` sent to ``host`` instead (same path and query): the load balancer's choice."""
    parts, target = urlsplit(url), urlsplit(host.url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def launch_across(
    cluster: Cluster, patient: str, start: ServeProcess, finish: ServeProcess
) -> tuple[str, str]:
    """Launch from the sandbox: /launch on ``start``, the EHR's authorize, /callback on ``finish``.

    Returns the handle and the callback URL the EHR redirected to. The app page is not opened (no FHIR read).
    """
    browser = requests.Session()
    to_app = browser.get(
        f"{cluster.sandbox.url}/launch",
        params={"tenant": "full", "user": "clinician-1", "patient": patient},
        allow_redirects=False,
        timeout=30,
    )
    assert to_app.status_code in (302, 303), to_app.text[:300]
    to_ehr = browser.get(on_host(to_app.headers["Location"], start), allow_redirects=False, timeout=30)
    assert to_ehr.status_code == 302, to_ehr.text[:300]
    to_callback = browser.get(to_ehr.headers["Location"], allow_redirects=False, timeout=30)
    assert to_callback.status_code in (302, 303), to_callback.text[:300]
    callback = to_callback.headers["Location"]
    done = browser.get(on_host(callback, finish), allow_redirects=False, timeout=30)
    assert done.status_code == 303, done.text[:500]
    return handle_of(done.headers["Location"]), callback


def test_a_launch_started_on_host_a_completes_on_host_b(cluster: Cluster) -> None:
    set_token_lifetime(cluster.sandbox, 3600)
    handle, callback = launch_across(cluster, "sci-adult", start=cluster.a, finish=cluster.b)
    assert callback.startswith(f"{cluster.a.url}/callback?"), "the EHR redirects to the one public URL"
    for host in (cluster.b, cluster.a):
        page = requests.get(f"{host.url}/l/{handle}/", timeout=60)
        assert page.status_code == 200, page.text[:300]
        assert 'id="current-dose"' in page.text


def test_simultaneous_refreshes_on_both_hosts_present_the_refresh_token_once(cluster: Cluster) -> None:
    set_token_lifetime(cluster.sandbox, 30)  # below the app's 60 s refresh margin: due at the first use
    handle, _ = launch_across(cluster, "ms-adult", start=cluster.a, finish=cluster.a)
    set_token_lifetime(cluster.sandbox, 3600)  # the refreshed token is long-lived: one refresh is enough
    before = cluster.sandbox.counter.count("refresh_token")

    def check(host: ServeProcess) -> requests.Response:
        return requests.get(f"{host.url}/l/{handle}/api/check", params={"dose_value": "440"}, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(check, [cluster.a, cluster.b, cluster.a, cluster.b]))
    assert [r.status_code for r in responses] == [200, 200, 200, 200], [r.text[:200] for r in responses]
    assert all(r.json()["result"]["verdict"] for r in responses)
    assert cluster.sandbox.counter.count("refresh_token") - before == 1
    engine = create_engine(cluster.database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT tokens_version, relaunch_required, refresh_lease_owner FROM launches"
                    " ORDER BY created_at DESC LIMIT 1"
                )
            ).one()
    finally:
        engine.dispose()
    assert (row.tokens_version, row.relaunch_required, row.refresh_lease_owner) == (2, False, None)


# One note per patient: a new launch for the same user and patient adopts that patient's unfiled notes
# and files them, which would leave the runners nothing to do.
PATIENTS = ("sci-adult", "ms-adult", "titration-sci", "cp-child-9")


def queued_submissions(cluster: Cluster, count: int) -> None:
    """Submit ``count`` notes whose first write (the DocumentReference) the EHR refuses with a 5xx, so each
    note and the Provenance that waits for it stay in the outbox (the retry is due in 30 s).

    Only the first write fails: a retried QuestionnaireResponse could not be searched for with the
    sandbox's scopes, and the sender rightly refuses to resend what it cannot look up.
    """
    set_token_lifetime(cluster.sandbox, 3600)
    try:
        for patient in PATIENTS[:count]:
            browser = requests.Session()
            page = browser.get(
                f"{cluster.sandbox.url}/launch",
                params={"tenant": "full", "user": "clinician-1", "patient": patient},
                timeout=60,
            )
            assert page.status_code == 200, page.text[:300]
            handle = handle_of(page.url)
            cluster.sandbox.faults(fail_next_writes=1)
            preview, submit = preview_and_submit(
                browser,
                cluster.a.url,
                handle,
                page.text,
                {"dose_value": "5", "dose_mode": "percent"},
            )
            assert preview.status_code == 200, preview.text[:500]
            assert submit.status_code == 200, submit.text[:500]
    finally:
        cluster.sandbox.faults(reset=True)


def make_due(database_url: str) -> None:
    """Make every scheduled retry due now (as if its backoff had passed)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE writeback_outbox SET next_attempt_at = :now WHERE next_attempt_at IS NOT NULL"
                    " AND status IN ('pending', 'sending')"
                ),
                {"now": datetime.now(UTC)},
            )
    finally:
        engine.dispose()


def test_two_outbox_runners_in_two_processes_file_each_queued_note_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    ours_before = [d for d in cluster.sandbox.stored("DocumentReference") if write_id_of(d)]
    queued_submissions(cluster, 4)
    assert [d for d in cluster.sandbox.stored("DocumentReference") if write_id_of(d)] == ours_before
    assert outstanding_rows(cluster.database_url) > 0
    cluster.sandbox.faults(latency_ms=50)  # slow EHR: the two runners' rounds overlap
    logs = [tmp_path / "runner-0.log", tmp_path / "runner-1.log"]
    runners = []
    for n, log in enumerate(logs):
        with log.open("wb") as output:  # the child keeps its own copy of the file
            runners.append(
                subprocess.Popen(  # noqa: S603 - our own console script
                    [itb_executable(), "outbox", "run", "--interval", "0.2", "--limit", "1"],
                    env={**cluster.env, "ITB_INSTANCE_PATH": str(tmp_path / f"runner-{n}")},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        deadline = time.monotonic() + 60
        while not all("claimed" in log.read_text() for log in logs):  # both runners are polling
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            time.sleep(0.2)
        make_due(cluster.database_url)  # the retries become due while both runners poll
        deadline = time.monotonic() + 90
        while outstanding_rows(cluster.database_url) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for runner in runners:
            runner.send_signal(signal.SIGINT)
            runner.wait(timeout=30)
        cluster.sandbox.faults(reset=True)
    outputs = [log.read_text() for log in logs]
    assert outstanding_rows(cluster.database_url) == 0, (outputs, outbox_summary(cluster.database_url))
    sent_by = [
        sum(int(line.split("sent ")[1].split(",")[0]) for line in out.splitlines() if "sent " in line)
        for out in outputs
    ]
    assert all(count > 0 for count in sent_by), f"both runners should have filed rows: {sent_by}"
    notes = [d for d in cluster.sandbox.stored("DocumentReference") if write_id_of(d)]
    new = [d for d in notes if d not in ours_before]
    assert len(new) == 4
    assert len({write_id_of(d) for d in notes}) == len(notes), "a note was filed twice"
