"""How long launch state is kept: pending authorizations go, and expired launches lose their tokens.

* A pending authorization (``pending_launches``: the PKCE verifier, nonce and state) is deleted once it
  was used, or one ``LAUNCH_TTL_SECONDS`` after it expired: a callback that arrives that late still
  finds its row and gets "the sign-in took too long" rather than "not valid". Nothing refers to these
  rows.
* A launch (``launches``) keeps its row: dose changes, verification actions and outbox rows name it
  (by value, not by a foreign key), and the row says who launched for which patient and when. Its
  secrets go instead: ``tokens_enc`` becomes ``""`` (the tombstone) and ``relaunch_required`` is set,
  so every reader of the launch (``launch_for_handle``, ``tokens._read_tokens``) raises
  ``LaunchExpired`` (a one-line "launch again" message) instead of decrypting anything. That happens
  one ``LAUNCH_TTL_SECONDS`` after the session expired (far longer than any request that found the
  launch live can still run), unless the outbox still has work for the launch (rows pending, being
  sent or awaiting read-back): the sender files those with the launch's tokens, refreshing them, long
  after the session. Those tokens go at the first purge after the rows are settled (confirmed, failed
  or held) or adopted by a newer launch. A launch whose refresh failed (``relaunch_required``) can never
  use its tokens again: they go at once. A launch in the middle of a refresh (an unexpired refresh
  lease) is left for the next purge.

* The previewed charts of expired launches (``note_previews``) go in the same purge.

The purge runs at every completed launch (``service.finish_launch``) and from ``itb launches purge``
(for instances that may sit idle); time is explicit (``now``), and the grace defaults to the app's
``LAUNCH_TTL_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, delete, exists, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from plugin.clinician.models import purge_expired_previews
from plugin.db import rows_changed
from plugin.launches.models import Launch, PendingLaunch
from plugin.writeback.models import OutboxItem, OutboxStatus

#: What ``tokens_enc`` holds once a launch's tokens are purged.
PURGED_TOKENS = ""
#: Outbox states in which the sender may still act with the row's launch (``leases.due_ids``).
UNSETTLED = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value, OutboxStatus.SENT.value)


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """What one purge did: rows counted, nothing about whom they were for."""

    pending_deleted: int
    launches_purged: int
    previews_deleted: int


def default_grace() -> timedelta:
    """Return how long after expiry rows are kept: the app's ``LAUNCH_TTL_SECONDS``."""
    return timedelta(seconds=int(current_app.config["LAUNCH_TTL_SECONDS"]))


def _has_tokens() -> ColumnElement[bool]:
    # A literal, not a bound parameter: SQLite uses the partial index ix_launches_with_tokens only when
    # the query repeats its WHERE term as written.
    return Launch.tokens_enc != literal_column("''")


def _outbox_needs_it() -> ColumnElement[bool]:
    """Whether an unsettled outbox row still names the launch (correlated to the launch row)."""
    return exists().where(OutboxItem.launch_id == Launch.id, OutboxItem.status.in_(UNSETTLED))


def purge_launch_state(session: Session, now: datetime, grace: timedelta | None = None) -> PurgeCounts:
    """Delete used and expired pending authorizations and the previewed charts of expired launches, and
    purge the tokens of ended launches."""
    previews = purge_expired_previews(session, now)
    cutoff = now - (default_grace() if grace is None else grace)
    pending = session.execute(
        delete(PendingLaunch).where(
            or_(PendingLaunch.consumed_at.is_not(None), PendingLaunch.expires_at < cutoff)
        )
    )
    launches = session.execute(
        update(Launch)
        .where(
            _has_tokens(),
            or_(Launch.refresh_lease_until.is_(None), Launch.refresh_lease_until < now),
            or_(
                Launch.relaunch_required.is_(True),
                and_(Launch.expires_at < cutoff, ~_outbox_needs_it()),
            ),
        )
        .values(
            tokens_enc=PURGED_TOKENS,
            relaunch_required=True,
            refresh_lease_owner=None,
            refresh_lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return PurgeCounts(
        pending_deleted=rows_changed(pending),
        launches_purged=rows_changed(launches),
        previews_deleted=previews,
    )


def launches_kept_for_outbox(session: Session, now: datetime, grace: timedelta | None = None) -> int:
    """Return how many ended launches keep their tokens because the outbox still has work for them."""
    cutoff = now - (default_grace() if grace is None else grace)
    query = (
        select(func.count())
        .select_from(Launch)
        .where(_has_tokens(), Launch.expires_at < cutoff, _outbox_needs_it())
    )
    return int(session.scalar(query) or 0)
