"""What ended launches leave behind is purged (``plugin.launches.retention``), never what the outbox needs.

Each test runs on the app's SQLite database and, with ITB_TEST_DATABASE_URL, on PostgreSQL (both
migrated by the app, so migration 0009 is what is tested). Time is explicit: ``NOW`` is passed in,
except where the code under test reads the clock itself (the callback's test client, the CLI).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from sqlalchemy import inspect, select, update

from plugin.cli import cli
from plugin.db import Database, utcnow
from plugin.launches.base import LaunchError, LaunchExpired, cipher
from plugin.launches.cli import launches_cli
from plugin.launches.crypto import sha256_hex
from plugin.launches.models import Launch, PendingLaunch
from plugin.launches.retention import PURGED_TOKENS, purge_launch_state
from plugin.launches.service import finish_launch, launch_for_handle
from plugin.launches.smart import forget_discovery
from plugin.launches.tokens import current_access_token, fhir_client_for_launch
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.outbox import NEEDS_LAUNCH_MESSAGE, retry
from plugin.writeback.sender import run_once
from tests.pg_support import BACKENDS, app_on, fresh_database

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
ISS = "https://ehr.example.org/fhir"
AUTHORIZE = "https://ehr.example.org/oauth/authorize"
TOKEN = "https://ehr.example.org/oauth/token"
GRACE = timedelta(seconds=600)  # the default LAUNCH_TTL_SECONDS: what the purge waits after expiry
REGISTRY = [
    {
        "name": "Example EHR",
        "iss": ISS,
        "client_id": "itb-test",
        "auth": "client_secret_basic",
        "client_secret": "test-secret",
        "frame_ancestors": ["https://ehr.example.org"],
    }
]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """Create a PostgreSQL database for this module; drop it at the end (or skip)."""
    with fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """Yield the app (schema by its migrations) on SQLite or PostgreSQL, inside its app context."""
    forget_discovery()
    config = {"TESTING": True, "SECRET_KEY": "purge-secret", "EHR_REGISTRY": REGISTRY}
    with app_on(request, tmp_path, config) as app, app.app_context():
        yield app


def db_of(app: Flask) -> Database:
    database: Database = app.extensions["itb.db"]
    return database


def access_token_of(name: str) -> str:
    return f"access-{name}"


def add_launch(app: Flask, name: str, *, expires_at: datetime, relaunch_required: bool = False) -> Launch:
    """Store a launch with really sealed tokens (as the callback does); its handle is ``name``."""
    tokens = {
        "access_token": access_token_of(name),
        "refresh_token": f"refresh-{name}",
        "id_token": None,
        "expires_at": datetime(2100, 1, 1, tzinfo=UTC).isoformat(),  # no refresh on the real clock
        "scope": "launch patient/*.rs",
    }
    launch = Launch(
        id=str(uuid.uuid4()),
        handle_hash=sha256_hex(name),
        iss=ISS,
        client_id="itb-test",
        patient_id=f"patient-{name}",
        fhir_user="Practitioner/dr-1",
        tokens_enc=cipher().seal(tokens),
        access_expires_at=datetime(2100, 1, 1, tzinfo=UTC),
        created_at=expires_at - timedelta(hours=8),
        expires_at=expires_at,
        relaunch_required=relaunch_required,
    )
    with db_of(app).session() as session:
        session.add(launch)
    return launch


def add_pending(app: Flask, state: str, *, expires_at: datetime, consumed: bool = False) -> None:
    """Store a pending authorization for ``state``."""
    with db_of(app).session() as session:
        session.add(
            PendingLaunch(
                state_hash=sha256_hex(state),
                iss=ISS,
                redirect_uri="https://itb.example.org/callback",
                scope="launch openid",
                launch_param="L1",
                secrets_enc=cipher().seal({"state": state, "code_verifier": "v" * 43, "nonce": "n"}),
                created_at=expires_at - GRACE,
                expires_at=expires_at,
                consumed_at=expires_at - timedelta(minutes=5) if consumed else None,
            )
        )


def add_outbox_row(app: Flask, launch: Launch, status: OutboxStatus) -> str:
    """Queue one Communication row of ``launch`` in ``status``; return its id."""
    item_id = str(uuid.uuid4())
    resource = {
        "resourceType": "Communication",
        "status": "completed",
        "identifier": [{"system": "urn:itb:write-id", "value": item_id}],
        "subject": {"reference": f"Patient/{launch.patient_id}"},
    }
    with db_of(app).session() as session:
        session.add(
            OutboxItem(
                id=item_id,
                submission_id=str(uuid.uuid4()),
                seq=0,
                launch_id=launch.id,
                iss=ISS,
                patient_id=str(launch.patient_id),
                author_ref=launch.fhir_user,
                resource_type="Communication",
                payload=json.dumps(resource),
                status=status.value,
                attempts=1,
                next_attempt_at=NOW - timedelta(hours=3) if status != OutboxStatus.FAILED else None,
                created_at=NOW - timedelta(hours=3),
                updated_at=NOW - timedelta(hours=3),
            )
        )
    return item_id


def stored(app: Flask, launch: Launch) -> Launch:
    with db_of(app).session() as session:
        row = session.get(Launch, launch.id)
    assert row is not None, "a launch row is never deleted, only its tokens"
    return row


def purge(app: Flask, now: datetime = NOW) -> tuple[int, int]:
    with db_of(app).session() as session:
        counts = purge_launch_state(session, now)
    return counts.pending_deleted, counts.launches_purged


def test_used_and_expired_pending_authorizations_go_and_live_ones_stay(app: Flask) -> None:
    add_pending(app, "live", expires_at=NOW + timedelta(minutes=5))
    add_pending(app, "used", expires_at=NOW + timedelta(minutes=5), consumed=True)
    add_pending(app, "just-expired", expires_at=NOW - timedelta(minutes=1))
    add_pending(app, "long-expired", expires_at=NOW - GRACE - timedelta(seconds=1))

    assert purge(app) == (2, 0)

    with db_of(app).session() as session:
        kept = set(session.scalars(select(PendingLaunch.state_hash)))
    assert kept == {sha256_hex("live"), sha256_hex("just-expired")}
    # A callback in flight at the boundary still gets the proper message (the row is within the grace);
    # one far later gets the same advice to launch again, as for an unknown state.
    with pytest.raises(LaunchError, match="took too long"):
        finish_launch("just-expired", "code", None, now=NOW)
    with pytest.raises(LaunchError, match="not valid or was already used"):
        finish_launch("long-expired", "code", None, now=NOW)


def test_ended_launches_lose_their_tokens_and_live_ones_keep_them(app: Flask) -> None:
    live = add_launch(app, "live", expires_at=NOW + timedelta(hours=1))
    just_ended = add_launch(app, "just-ended", expires_at=NOW - timedelta(minutes=1))
    ended = add_launch(app, "ended", expires_at=NOW - timedelta(hours=2))
    refresh_failed = add_launch(
        app, "refresh-failed", expires_at=NOW + timedelta(hours=1), relaunch_required=True
    )

    assert purge(app) == (0, 2)

    for launch in (live, just_ended):
        assert stored(app, launch).tokens_enc == launch.tokens_enc
        assert not stored(app, launch).relaunch_required
    for launch in (ended, refresh_failed):
        row = stored(app, launch)
        assert row.tokens_enc == PURGED_TOKENS
        assert row.relaunch_required
        # The history stays: who launched for which patient, and when.
        assert (row.patient_id, row.fhir_user, row.created_at) == (
            launch.patient_id,
            launch.fhir_user,
            launch.created_at,
        )
    assert launch_for_handle("live", now=NOW).id == live.id
    assert purge(app) == (0, 0), "a purged launch is not counted again"
    assert "ix_launches_with_tokens" in {
        i["name"] for i in inspect(db_of(app).engine).get_indexes("launches")
    }


def test_a_launch_in_the_middle_of_a_refresh_waits_for_the_next_purge(app: Flask) -> None:
    ended = add_launch(app, "ended", expires_at=NOW - timedelta(hours=2))
    with db_of(app).session() as session:
        session.execute(
            update(Launch)
            .where(Launch.id == ended.id)
            .values(refresh_lease_owner="another-worker", refresh_lease_until=NOW + timedelta(seconds=20))
        )
    assert purge(app) == (0, 0)
    assert purge(app, NOW + timedelta(seconds=30)) == (0, 1)
    assert stored(app, ended).tokens_enc == PURGED_TOKENS


@pytest.mark.parametrize("status", [OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT])
def test_a_launch_with_unsettled_outbox_rows_keeps_its_tokens_until_they_are_settled(
    app: Flask, status: OutboxStatus
) -> None:
    busy = add_launch(app, "busy", expires_at=NOW - timedelta(hours=2))
    settled = add_launch(app, "settled", expires_at=NOW - timedelta(hours=2))
    for done in (OutboxStatus.CONFIRMED, OutboxStatus.FAILED, OutboxStatus.HELD):
        add_outbox_row(app, busy, done)
        add_outbox_row(app, settled, done)
    unsettled = add_outbox_row(app, busy, status)

    assert purge(app) == (0, 1)
    assert stored(app, settled).tokens_enc == PURGED_TOKENS
    assert stored(app, busy).tokens_enc == busy.tokens_enc
    # The sender still acts with the ended launch's tokens.
    assert current_access_token(busy.id) == access_token_of("busy")

    with db_of(app).session() as session:
        session.execute(
            update(OutboxItem).where(OutboxItem.id == unsettled).values(status=OutboxStatus.CONFIRMED.value)
        )
    assert purge(app) == (0, 1)
    assert stored(app, busy).tokens_enc == PURGED_TOKENS
    with db_of(app).session() as session:
        assert session.scalar(select(OutboxItem.launch_id).where(OutboxItem.id == unsettled)) == busy.id


def test_rows_moved_to_a_newer_launch_free_the_old_one(app: Flask) -> None:
    old = add_launch(app, "old", expires_at=NOW - timedelta(hours=2))
    new = add_launch(app, "new", expires_at=NOW + timedelta(hours=8))
    row = add_outbox_row(app, old, OutboxStatus.PENDING)
    assert purge(app) == (0, 0)
    with db_of(app).session() as session:  # what outbox.adopt_after_launch does at the new launch
        session.execute(update(OutboxItem).where(OutboxItem.id == row).values(launch_id=new.id))
    assert purge(app) == (0, 1)
    assert stored(app, old).tokens_enc == PURGED_TOKENS
    assert stored(app, new).tokens_enc == new.tokens_enc


def test_a_purged_launch_gives_the_clean_relaunch_error_to_every_reader(app: Flask) -> None:
    ended = add_launch(app, "ended", expires_at=NOW - timedelta(hours=2))
    purge(app)

    with pytest.raises(LaunchExpired, match="launch the app again"):
        launch_for_handle("ended", now=ended.expires_at - timedelta(hours=1))  # even inside its session
    with pytest.raises(LaunchExpired, match="launch the app again"):
        current_access_token(ended.id)
    response = app.test_client().get("/l/ended/")
    assert response.status_code == 401
    assert b"launch the app again" in response.data
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("cached", [False, True], ids=["no-client", "cached-client"])
def test_a_row_retried_after_its_launch_was_purged_waits_for_a_new_launch(app: Flask, cached: bool) -> None:
    ended = add_launch(app, "ended", expires_at=NOW - timedelta(hours=2))
    failed = add_outbox_row(app, ended, OutboxStatus.FAILED)
    if cached:  # a page of this launch ran in this process: its FHIR client is kept for reuse
        fhir_client_for_launch(ended.id)
    assert purge(app) == (0, 1)
    with db_of(app).session() as session:
        retry(session, failed, now=NOW)

    with responses.RequestsMock() as rsps:  # nothing may reach the EHR: there is no token to send
        report = run_once(db_of(app), app.extensions["itb.client_factory"], now=NOW, owner="test")
        assert len(rsps.calls) == 0
    assert (report.claimed, report.waiting_for_launch) == (1, 1)
    with db_of(app).session() as session:
        row = session.get(OutboxItem, failed)
    assert row is not None
    assert (row.status, row.needs_launch, row.last_error) == ("pending", True, NEEDS_LAUNCH_MESSAGE)


def _mock_ehr(rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{ISS}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": AUTHORIZE,
            "token_endpoint": TOKEN,
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "client-confidential-symmetric", "context-ehr-patient"],
        },
    )
    rsps.post(
        TOKEN,
        json={
            "access_token": "token-new",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "launch patient/Patient.rs",
            "patient": "p-new",
            "refresh_token": "refresh-new",
        },
    )


def test_a_completed_launch_purges_what_ended_launches_left(app: Flask) -> None:
    now = utcnow()  # the callback reads the clock
    add_pending(app, "abandoned", expires_at=now - timedelta(hours=1))
    ended = add_launch(app, "ended", expires_at=now - timedelta(hours=2))
    busy = add_launch(app, "busy", expires_at=now - timedelta(hours=2))
    add_outbox_row(app, busy, OutboxStatus.PENDING)
    live = add_launch(app, "live", expires_at=now + timedelta(hours=2))

    client = app.test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _mock_ehr(rsps)
        location = client.get(f"/launch?iss={ISS}&launch=L1").headers["Location"]
        state = parse_qs(urlsplit(location).query)["state"][0]
        assert client.get(f"/callback?code=c1&state={state}").status_code == 303

    with db_of(app).session() as session:
        assert session.scalars(select(PendingLaunch)).all() == []  # the abandoned one and the used one
    assert stored(app, ended).tokens_enc == PURGED_TOKENS
    assert stored(app, busy).tokens_enc == busy.tokens_enc
    assert stored(app, live).tokens_enc == live.tokens_enc


def test_itb_launches_purge_prints_counts_only(app: Flask) -> None:
    now = utcnow()  # the command reads the clock
    add_pending(app, "abandoned-state", expires_at=now - timedelta(hours=1))
    add_pending(app, "live-state", expires_at=now + timedelta(minutes=5))
    add_launch(app, "ended", expires_at=now - timedelta(days=2))
    busy = add_launch(app, "busy", expires_at=now - timedelta(days=2))
    add_outbox_row(app, busy, OutboxStatus.SENT)
    add_launch(app, "live", expires_at=now + timedelta(hours=2))

    assert "purge" in cli.commands["launches"].commands  # type: ignore[attr-defined]
    result = app.test_cli_runner().invoke(launches_cli, ["purge"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "pending authorizations deleted: 1",
        "ended launches whose tokens were purged: 1",
        "previewed charts deleted: 0",
        "ended launches keeping their tokens for unsettled outbox rows: 1",
    ]
    for secret in ("patient-", "Practitioner", "access-", "refresh-", "abandoned-state", busy.id):
        assert secret not in result.output
    again = app.test_cli_runner().invoke(launches_cli, ["purge"])
    assert again.output.splitlines()[:2] == [
        "pending authorizations deleted: 0",
        "ended launches whose tokens were purged: 0",
    ]
