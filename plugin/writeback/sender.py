"""File queued resources in the EHR: claim a row with a lease, send it idempotently, read it back.

Idempotency: every resource carries its write id (identifier, or meta.tag for Provenance). A create is
conditional (``If-None-Exist``) when the CapabilityStatement says so; otherwise, and on every retry, the
row is first looked up by its write id, so a timeout after the server stored the note makes no duplicate.

The write strategy is decided when a row is sent, from the CapabilityStatement the EHR gives then: a
submission queued while the EHR could not say what it stores has every row pending, and a row whose type
the EHR cannot create is held in the app database at its first send (the rows referring to it go without
that reference), exactly as if the statement had been known when it was queued.

An update row (``docs/verification.md``) waits until its target row has a server id, then reads the
resource, stops if the element it appends is already there (an earlier attempt whose answer was lost),
else PUTs the resource with the element appended and ``If-Match`` of the version read; a 409/412 reads
again. It is held when its target is held or the EHR cannot update the type.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select, update

from plugin.db import Database
from plugin.writeback.capability import can_create, can_update, supports_conditional_create
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.leases import arm_dependents, claim, due_ids, finish, resolved_payload
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.outbox import NEEDS_LAUNCH_MESSAGE, is_about_patient, placeholder_ids, strip_references
from plugin.writeback.readback import dropped_paths
from plugin.writeback.resources import validate_resource, write_id_of, write_key
from plugin.writeback.update import dropped_on_update, find_appended, payload_of, with_appended
from smart_launch.fhir_client import FhirAuthError, FhirClient, FhirConflict, FhirError

log = logging.getLogger(__name__)
# How soon a row waiting for another row of its submission looks again (if nothing armed it sooner).
DEPENDENCY_RECHECK = timedelta(seconds=10)
S = OutboxStatus
# Returns the client for a row's launch (it owns the client's lifetime: run_once never closes it);
# raising (e.g. LaunchExpired) parks the row until a new launch adopts it.
ClientFactory = Callable[[OutboxItem], FhirClient]
NEEDS_LAUNCH_RECHECK = timedelta(minutes=15)  # an offline_access refresh may still work later
MAX_BACKOFF = timedelta(hours=1)
# An update re-reads and PUTs again this often when another writer changed the resource in between.
MAX_VERSION_CONFLICTS = 3


@dataclass(slots=True)
class RunReport:
    """What one ``run_once`` did (counts of rows)."""

    claimed: int = 0
    sent: int = 0
    confirmed: int = 0
    retry_later: int = 0
    failed: int = 0
    waiting_for_launch: int = 0
    held: int = 0  # kept in the app database: the EHR says it cannot store the type
    # Submissions with a row this run brought to an end (confirmed, failed or held): the callers that
    # run in the background audit the ones now settled (plugin.audit.writeback_outcomes).
    touched: set[str] = field(default_factory=set)


class _Retry(Exception):
    """A retryable problem: try again after the backoff."""


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next attempt: 30 s, 1 min, 2 min, ... at most an hour."""
    return min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _one_line(text: str) -> str:
    """Return text fit for ``last_error``: one line, bounded, without NUL characters.

    The text is often the EHR's own (OperationOutcome diagnostics). PostgreSQL refuses a NUL in a text
    column (SQLite stores it): the row's outcome could not be written, the round failed, and the row,
    still leased as ``sending``, was sent again each time its lease ran out.
    """
    return " ".join(text.replace("\x00", " ").split())[:480]


def find_existing(client: FhirClient, resource_type: str, write_id: str) -> str | None:
    """Return the server id of the resource carrying this write id, or None."""
    name, value = write_key(resource_type, write_id)
    for found in client.search(resource_type, {name: value}):
        # Check the match ourselves: a server that ignores an unknown parameter returns everything.
        if found.get("resourceType") == resource_type and write_id_of(found) == write_id and found.get("id"):
            return str(found["id"])
    return None


def _known_capabilities(client: FhirClient) -> Mapping[str, Any] | None:
    """Return the server's CapabilityStatement, or None when the server will not give one; an EHR that
    does not answer now (5xx, timeout) raises, so the row is retried later without counting an attempt."""
    try:
        return client.capabilities()
    except FhirError as exc:
        if exc.retryable:
            raise
        return None


def _conditional(client: FhirClient, resource_type: str) -> bool:
    """Whether the server honours If-None-Exist for this type (False when metadata is unavailable)."""
    try:
        return supports_conditional_create(client.capabilities(), resource_type)
    except FhirError:
        return False


def _send(client: FhirClient, item: OutboxItem, resource: dict[str, Any]) -> str:
    """Create the resource unless it already exists; return its server id."""
    conditional = _conditional(client, item.resource_type)
    if item.attempts > 1 or not conditional:
        try:
            existing = find_existing(client, item.resource_type, item.id)
        except FhirError as exc:
            if exc.retryable or isinstance(exc, FhirAuthError):
                raise
            if item.attempts > 1:
                # An earlier attempt may have stored it and we cannot tell: a person must look first.
                raise FhirError(
                    exc.status,
                    "could not check whether an earlier attempt already filed this (the EHR cannot search "
                    f"by identifier); look in the chart, then retry if it is missing: {exc.safe_message}",
                ) from None
            existing = None  # first attempt ever: nothing can exist yet, a plain create is safe
        if existing:
            return existing
    name, value = write_key(item.resource_type, item.id)
    try:
        result = client.create(resource, if_none_exist=f"{name}={value}" if conditional else None)
    except FhirConflict:
        # 412 on a conditional create: several copies already carry our write id. Keep the first.
        existing = find_existing(client, item.resource_type, item.id)
        if existing:
            return existing
        raise
    server_id = result.resource_id or find_existing(client, item.resource_type, item.id)
    if not server_id:
        raise _Retry("the EHR did not say where it stored the resource")
    return server_id


def _process(
    db: Database, item: OutboxItem, client: FhirClient, *, owner: str, now: datetime, report: RunReport
) -> None:
    """Send (or read back) one claimed row and record the outcome."""
    try:
        if item.status != S.SENT:
            send = _send_update_row if item.is_update else _send_create_row
            if not send(db, item, client, owner=owner, now=now, report=report):
                return
        _read_back(db, item, client, owner=owner, now=now, report=report)
    except FhirAuthError as exc:
        if exc.status == 401:  # FhirClient already tried its one refresh: wait for a new launch
            # Not an attempt the EHR refused: give back the one counted for this send, if any.
            uncounted = item.attempts - 1 if item.status != S.SENT else item.attempts
            _wait_for_launch(db, item, owner=owner, now=now, attempts=uncounted)
            report.waiting_for_launch += 1
        else:
            _fail_or_park(db, item, exc.safe_message, owner=owner, now=now, report=report)
    except FhirError as exc:
        if exc.retryable:
            _retry_later(
                db, item, exc.safe_message, owner=owner, now=now, attempts=item.attempts, report=report
            )
        else:
            _fail_or_park(db, item, exc.safe_message, owner=owner, now=now, report=report)
    except (_Retry, requests.RequestException) as exc:
        _retry_later(
            db,
            item,
            str(exc) or type(exc).__name__,
            owner=owner,
            now=now,
            attempts=item.attempts,
            report=report,
        )
    except WriteBackInputError as exc:
        _fail(db, item, _one_line(f"not sent: {exc}"), owner=owner, now=now, report=report)


def _fail(
    db: Database, item: OutboxItem, message: str, *, owner: str, now: datetime, report: RunReport
) -> None:
    """Give a row up for good with a one-line reason (it will not be retried)."""
    finish(db, item, owner=owner, now=now, status=S.FAILED.value, next_attempt_at=None, last_error=message)
    report.failed += 1
    report.touched.add(item.submission_id)


def _send_create_row(
    db: Database, item: OutboxItem, client: FhirClient, *, owner: str, now: datetime, report: RunReport
) -> bool:
    """Create a row's resource (or find it stored by an earlier attempt); True when it is now sent."""
    if item.status == S.PENDING:
        capabilities = _known_capabilities(client)
        if capabilities is not None and not can_create(capabilities, item.resource_type):
            _hold(db, item, owner=owner, now=now, report=report)
            return False
    item.attempts += 1
    resource = resolved_payload(db, item)
    if resource is None and _without_held_references(db, item, owner=owner, now=now, report=report):
        return False
    if resource is None:
        # A row it refers to is not filed yet. Look again soon rather than only when that row
        # arms it: another runner may file it while we hold this lease, and its wake-up would
        # then find this row still due and move on (a lost wake-up left rows stuck for good).
        finish(
            db, item, owner=owner, now=now, status=S.PENDING.value, next_attempt_at=now + DEPENDENCY_RECHECK
        )
        return False
    if not is_about_patient(resource, item.patient_id, item.iss):
        _fail(
            db,
            item,
            "not sent: the resource is about another patient than its launch",
            owner=owner,
            now=now,
            report=report,
        )
        return False
    resource = validate_resource(resource)
    finish(db, item, owner=owner, now=now, keep_lease=True, status=S.SENDING.value, attempts=item.attempts)
    item.server_id = _send(client, item, resource)
    _mark_sent(db, item, owner=owner, now=now, report=report)
    item.payload = json.dumps(resource)
    return True


def _send_update_row(
    db: Database, item: OutboxItem, client: FhirClient, *, owner: str, now: datetime, report: RunReport
) -> bool:
    """Append an update row's element to its target once the target is filed; True when it is now sent.

    A target kept in the app (held), or an EHR that cannot update the type, holds the update too."""
    with db.session() as session:
        target = session.get(OutboxItem, item.target_id) if item.target_id else None
    if target is None:
        raise WriteBackInputError("the resource to update is not in the outbox")
    if target.status == S.HELD:  # the EHR never got the resource: the change stays in the app with it
        _hold(db, item, owner=owner, now=now, report=report)
        return False
    if target.status not in (S.SENT, S.CONFIRMED) or not target.server_id:
        # Not filed yet: filing it arms this row; look again soon anyway (see _send_create_row).
        finish(
            db, item, owner=owner, now=now, status=S.PENDING.value, next_attempt_at=now + DEPENDENCY_RECHECK
        )
        return False
    capabilities = _known_capabilities(client)
    if capabilities is not None and not can_update(capabilities, item.resource_type):
        _hold(db, item, owner=owner, now=now, report=report)
        return False
    element, value = payload_of(item.resource)
    item.attempts += 1
    finish(db, item, owner=owner, now=now, keep_lease=True, status=S.SENDING.value, attempts=item.attempts)
    _append(client, item, target.server_id, element, value)
    item.server_id = target.server_id
    _mark_sent(db, item, owner=owner, now=now, report=report)
    return True


def _append(
    client: FhirClient, item: OutboxItem, server_id: str, element: str, value: dict[str, Any]
) -> None:
    """Read the resource; unless it already carries ``value`` (an earlier attempt whose answer was lost),
    PUT it back with ``value`` appended, If-Match the version read; a version conflict reads again."""
    for _ in range(MAX_VERSION_CONFLICTS):
        current = client.read(item.resource_type, server_id)
        if not is_about_patient(current, item.patient_id, item.iss):
            raise WriteBackInputError(f"the {item.resource_type} to update is about another patient")
        if find_appended(current, element, value) is not None:
            return
        version = (current.get("meta") or {}).get("versionId")
        updated = with_appended(
            {**current, "resourceType": item.resource_type, "id": server_id}, element, value
        )
        try:
            # Without a versionId the server offers no optimistic locking: a plain PUT is all there is.
            client.update(updated, if_match=f'W/"{version}"' if version else None)
        except FhirConflict:
            log.info(
                "outbox item %s: %s changed since it was read; reading again", item.id, item.resource_type
            )
            continue
        return
    raise _Retry(f"the {item.resource_type} kept changing in the EHR while it was being updated")


def _mark_sent(db: Database, item: OutboxItem, *, owner: str, now: datetime, report: RunReport) -> None:
    """Record that the EHR stored the row (``item.server_id``); the read-back follows under the lease."""
    finish(
        db,
        item,
        owner=owner,
        now=now,
        status=S.SENT.value,
        server_id=item.server_id,
        keep_lease=True,
        needs_launch=False,
        last_error=None,
    )
    report.sent += 1
    item.status = S.SENT.value


def _read_back(
    db: Database, item: OutboxItem, client: FhirClient, *, owner: str, now: datetime, report: RunReport
) -> None:
    """Read a sent row's resource back, record what the EHR did not keep, and confirm the row."""
    returned = client.read(item.resource_type, str(item.server_id))
    if item.is_update:
        element, value = payload_of(item.resource)
        dropped = dropped_on_update(element, value, returned)
    else:
        dropped = dropped_paths(resolved_payload(db, item) or item.resource, returned)
    finish(
        db,
        item,
        owner=owner,
        now=now,
        status=S.CONFIRMED.value,
        next_attempt_at=None,
        dropped_fields=json.dumps(dropped),
        last_error=None,
    )
    report.confirmed += 1
    report.touched.add(item.submission_id)
    log.info("outbox item %s (%s) confirmed, %d field(s) dropped", item.id, item.resource_type, len(dropped))


def _hold(db: Database, item: OutboxItem, *, owner: str, now: datetime, report: RunReport) -> None:
    """Keep a row the EHR cannot store in the app database, and wake the rows that refer to it (each
    then drops its reference to this row, or is held too, under its own lease)."""
    with db.session() as session:
        held = session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id, OutboxItem.lease_owner == owner)
            .values(
                status=S.HELD.value,
                next_attempt_at=None,
                last_error=None,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(held, "rowcount", 0) == 1:
            arm_dependents(session, item, now)
            report.held += 1
            report.touched.add(item.submission_id)
            log.info(
                "outbox item %s kept in the app: the EHR cannot %s %s",
                item.id,
                "update" if item.is_update else "store",
                item.resource_type,
            )


def _without_held_references(
    db: Database, item: OutboxItem, *, owner: str, now: datetime, report: RunReport
) -> bool:
    """Drop this row's references to held rows (the EHR never gets them); hold it when it is not a valid
    resource without them. Return False when none of the rows it waits for is held."""
    with db.session() as session:
        held = set(
            session.scalars(
                select(OutboxItem.id).where(
                    OutboxItem.id.in_(item.dependencies), OutboxItem.status == S.HELD.value
                )
            )
        )
    if not held:
        return False
    try:
        resource = strip_references(item.resource, held)
        if set(placeholder_ids(resource)) & held:
            raise WriteBackInputError("a reference to a held resource cannot be dropped")
        resource = validate_resource(resource)
    except WriteBackInputError:
        _hold(db, item, owner=owner, now=now, report=report)
        return True
    deps = [d for d in placeholder_ids(resource) if d not in held]
    finish(
        db,
        item,
        owner=owner,
        now=now,
        payload=json.dumps(resource, separators=(",", ":")),
        depends_on=json.dumps(deps) if deps else None,
        next_attempt_at=now,  # due again at once: what it still refers to may be filed already
    )
    return True


def _wait_for_launch(db: Database, item: OutboxItem, *, owner: str, now: datetime, attempts: int) -> None:
    """Keep the row pending without burning an attempt until a launch brings a valid token."""
    status = S.SENT.value if item.status == S.SENT else S.PENDING.value
    finish(
        db,
        item,
        owner=owner,
        now=now,
        status=status,
        attempts=max(attempts, 0),
        needs_launch=True,
        next_attempt_at=now + NEEDS_LAUNCH_RECHECK,
        last_error=NEEDS_LAUNCH_MESSAGE,
    )


def _retry_later(
    db: Database,
    item: OutboxItem,
    reason: str,
    *,
    owner: str,
    now: datetime,
    attempts: int,
    report: RunReport,
) -> None:
    """Schedule another attempt after the backoff (5xx, timeout, network)."""
    status = S.SENT.value if item.status == S.SENT else S.PENDING.value
    finish(
        db,
        item,
        owner=owner,
        now=now,
        status=status,
        next_attempt_at=now + backoff(attempts),
        last_error=_one_line(reason),
    )
    report.retry_later += 1
    log.warning("outbox item %s (%s) will be retried: attempt %d", item.id, item.resource_type, attempts)


def _fail_or_park(
    db: Database, item: OutboxItem, reason: str, *, owner: str, now: datetime, report: RunReport
) -> None:
    """Mark a refused create failed; a refused read-back leaves the row sent (it was stored)."""
    if item.status == S.SENT:
        finish(
            db,
            item,
            owner=owner,
            now=now,
            next_attempt_at=None,
            last_error=_one_line(f"stored, but could not be read back: {reason}"),
        )
        return
    _fail(db, item, _one_line(reason), owner=owner, now=now, report=report)
    log.warning("outbox item %s (%s) refused by the EHR", item.id, item.resource_type)


def run_once(
    db: Database,
    client_factory: ClientFactory,
    *,
    now: datetime,
    owner: str,
    limit: int = 20,
    submission_id: str | None = None,
    deadline: float | None = None,
) -> RunReport:
    """Claim and send due rows (at most ``limit``, only of ``submission_id`` when given); rows armed on
    the way are sent in the same run.

    With a ``deadline`` (a ``time.monotonic()`` value) no row is claimed after it: the row being sent
    then is finished, and the rest stay due for the next run (a web request waits for the EHR only so
    long). The row in progress at the deadline keeps its lease until it is finished.
    """
    report = RunReport()
    clients: dict[str, FhirClient | None] = {}
    while report.claimed < limit and not _past(deadline):
        progressed = False
        for item_id in due_ids(db, now, limit - report.claimed, submission_id=submission_id):
            if _past(deadline):
                break
            item = claim(db, item_id, owner=owner, now=now)
            if item is None:
                continue
            progressed = True
            report.claimed += 1
            if item.launch_id not in clients:
                try:
                    clients[item.launch_id] = client_factory(item)
                except Exception:  # e.g. LaunchExpired: there is no token to act with
                    log.info("no EHR client for outbox item %s: waiting for a launch", item.id)
                    clients[item.launch_id] = None
            client = clients[item.launch_id]
            if client is None:
                _wait_for_launch(db, item, owner=owner, now=now, attempts=item.attempts)
                report.waiting_for_launch += 1
            else:
                _process(db, item, client, owner=owner, now=now, report=report)
            if report.claimed >= limit:
                break
        if not progressed:
            break
    return report


def _past(deadline: float | None) -> bool:
    """Whether a run's deadline has passed."""
    return deadline is not None and time.monotonic() >= deadline
