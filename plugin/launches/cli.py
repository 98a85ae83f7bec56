"""``itb launches purge``: delete used or expired pending authorizations and purge ended launches' tokens.

The same purge runs at every completed launch; run this from cron on an instance that may sit idle, so
tokens and previewed charts do not wait for the next launch. It prints counts only (no patient, user
or token).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from plugin.db import get_db, utcnow
from plugin.launches.retention import launches_kept_for_outbox, purge_launch_state

# AppGroup: every subcommand runs inside the app context (get_db, current_app).
launches_cli = AppGroup("launches", help="Launch state kept in the app's database.")


@launches_cli.command("purge")
def purge_command() -> None:
    """Purge what ended launches leave behind (see docs/security.md, "Retention")."""
    now = utcnow()
    with get_db().session() as session:
        counts = purge_launch_state(session, now)
        kept = launches_kept_for_outbox(session, now)
    click.echo(f"pending authorizations deleted: {counts.pending_deleted}")
    click.echo(f"ended launches whose tokens were purged: {counts.launches_purged}")
    click.echo(f"previewed charts deleted: {counts.previews_deleted}")
    click.echo(f"ended launches keeping their tokens for unsettled outbox rows: {kept}")
