"""Compare-and-set on PostgreSQL under real concurrency: launch state, the refresh lease, the outbox lease.

Each test starts its contenders behind a barrier so they hit the database at the same moment; the
assertions count what the outside world saw (callbacks accepted, refresh tokens presented, POSTs sent).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from flask import Flask
from sqlalchemy import select
from writeback.writeback_support import BASE, FULL_CAPS, NOW, FakeEhr, queue_note

from plugin.db import Database
from plugin.launches import service, tokens
from plugin.launches.crypto import TokenCipher, sha256_hex
from plugin.launches.models import Launch, PendingLaunch
from plugin.launches.smart import forget_discovery
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.resources import write_id_of
from plugin.writeback.sender import run_once
from smart_launch import fhir_client
from smart_launch.fhir_client import FhirClient

pytestmark = pytest.mark.postgres
ISS = "https://ehr.example.org/fhir"  # registered by tests/conftest.py
TOKEN_URL = "https://ehr.example.org/oauth/token"


def race(workers: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``workers`` threads released together; return each result or exception."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except Exception as error:  # noqa: BLE001 - the test inspects what each contender got
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _pending(app: Flask, state: str, now: datetime) -> None:
    """Store a pending launch for ``state``."""
    cipher: TokenCipher = app.extensions["itb.cipher"]
    with app.extensions["itb.db"].session() as session:
        session.add(
            PendingLaunch(
                state_hash=sha256_hex(state),
                iss=ISS,
                redirect_uri="http://localhost/callback",
                scope="launch openid fhirUser patient/*.rs",
                launch_param="L1",
                secrets_enc=cipher.seal({"state": state, "code_verifier": "v" * 50, "nonce": None}),
                created_at=now,
                expires_at=now + timedelta(minutes=10),
            )
        )


def test_a_launch_state_is_consumed_by_exactly_one_of_two_callbacks(app: Flask) -> None:
    now = datetime.now(UTC)
    for _ in range(10):
        state = uuid.uuid4().hex
        _pending(app, state, now)

        def consume(_: int, state: str = state) -> PendingLaunch:
            with app.app_context():
                return service._consume_pending(state, now)

        results = race(2, consume)
        winners = [r for r in results if isinstance(r, PendingLaunch)]
        losers = [r for r in results if isinstance(r, service.LaunchError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert winners[0].consumed_at is not None


def _launch(app: Flask, refresh_token: str) -> str:
    """Store a completed launch whose access token is still valid; return its id."""
    cipher: TokenCipher = app.extensions["itb.cipher"]
    now = datetime.now(UTC)
    launch_id = str(uuid.uuid4())
    tokens = {
        "access_token": "AT-old",
        "refresh_token": refresh_token,
        "id_token": None,
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "scope": "launch patient/*.rs",
    }
    with app.extensions["itb.db"].session() as session:
        session.add(
            Launch(
                id=launch_id,
                handle_hash=sha256_hex(uuid.uuid4().hex),
                iss=ISS,
                client_id="itb-test",
                patient_id="p1",
                tokens_enc=cipher.seal(tokens),
                access_expires_at=now + timedelta(hours=1),
                created_at=now,
                expires_at=now + timedelta(hours=8),
            )
        )
    return launch_id


def test_two_workers_forcing_a_refresh_present_the_refresh_token_once(app: Flask) -> None:
    forget_discovery()
    launch_id = _launch(app, "RT-1")
    presented: list[str] = []

    def token_endpoint(request: Any) -> tuple[int, dict[str, str], str]:
        presented.append(parse_qs(request.body)["refresh_token"][0])
        time.sleep(0.3)  # the other worker arrives while this refresh is in flight
        body = {
            "access_token": "AT-new",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "launch patient/*.rs",
            "refresh_token": "RT-2",
        }
        return 200, {}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{ISS}/.well-known/smart-configuration",
            json={
                "authorization_endpoint": "https://ehr.example.org/oauth/authorize",
                "token_endpoint": TOKEN_URL,
                "code_challenge_methods_supported": ["S256"],
                "capabilities": ["launch-ehr", "client-confidential-symmetric"],
            },
        )
        rsps.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)

        def refresh(_: int) -> str:
            with app.app_context():
                return tokens.current_access_token(launch_id, force_refresh=True)

        results = race(2, refresh)

    assert results == ["AT-new", "AT-new"]
    assert presented == ["RT-1"]
    with app.extensions["itb.db"].session() as session:
        launch = session.get(Launch, launch_id)
        assert launch is not None
        assert (
            launch.tokens_version == 2 and launch.refresh_lease_owner is None and not launch.relaunch_required
        )
    stored = app.extensions["itb.cipher"].open(launch.tokens_enc)
    assert stored["refresh_token"] == "RT-2"


def test_two_outbox_runners_never_send_a_row_twice(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fhir_client, "_sleep", lambda seconds: None)
    fhir_client.clear_capabilities_cache()
    db: Database = app.extensions["itb.db"]
    submissions = [queue_note(db, FULL_CAPS, launch_id=f"launch-{n}") for n in range(6)]
    with db.session() as session:
        rows = session.scalars(select(OutboxItem)).all()
        assert len(rows) >= 6 * 5
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        ehr = FakeEhr(rsps, FULL_CAPS)
        clients: list[FhirClient] = []

        def runner(index: int) -> int:
            client = FhirClient(BASE, lambda: "AT-1", max_retries=1)
            clients.append(client)
            sent = 0
            for _ in range(20):  # until nothing is left: rows armed by a dependency become due later
                report = run_once(
                    db, lambda item: client, now=NOW + timedelta(seconds=1), owner=f"runner-{index}"
                )
                sent += report.sent
                if report.claimed == 0:
                    break
            return sent

        results = race(2, runner)
        for client in clients:
            client.close()
    fhir_client.clear_capabilities_cache()

    assert all(isinstance(r, int) for r in results), results
    write_ids = [write_id_of(body) for body in ehr.posts]
    assert sorted(map(str, write_ids)) == sorted(r.id for r in rows), "every row POSTed exactly once"
    assert sum(results) == len(rows)
    with db.session() as session:
        statuses = {r.status for r in session.scalars(select(OutboxItem))}
        assert statuses == {OutboxStatus.CONFIRMED.value}
    assert len(submissions) == 6
