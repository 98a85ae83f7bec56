"""``itb outbox``: file queued notes (``run``), list the queue (``list``), export a submission."""

from __future__ import annotations

import json
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from plugin.db import get_db
from plugin.writeback.export import submission_bundle
from plugin.writeback.models import OutboxItem, OutboxStatus
from plugin.writeback.runner import run_round, runner_owner
from plugin.writeback.sender import ClientFactory

# AppGroup: every subcommand runs inside the app context (get_db, current_app).
outbox_cli = AppGroup("outbox", help="File dose-change notes waiting in the outbox.")


@outbox_cli.command("run")
@click.option("--once", is_flag=True, help="Run one round and exit.")
@click.option("--interval", type=float, default=15.0, show_default=True, help="Seconds between rounds.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows per round.")
def run_command(once: bool, interval: float, limit: int) -> None:
    """Send due rows to their EHRs (one round, or a loop until interrupted)."""
    factory: ClientFactory = current_app.extensions["itb.client_factory"]
    db = get_db()
    owner = runner_owner()
    try:
        while True:
            report = run_round(db, factory, owner=owner, limit=limit)
            click.echo(
                f"claimed {report.claimed}, sent {report.sent}, confirmed {report.confirmed}, "
                f"retry later {report.retry_later}, failed {report.failed}, held {report.held}, "
                f"waiting for launch {report.waiting_for_launch}"
            )
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped")


@outbox_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]), help="Only rows in this state.")
@click.option("--limit", type=int, default=50, show_default=True)
def list_command(status: str | None, limit: int) -> None:
    """List outbox rows, newest first (no patient data: ids, types, states and reasons only)."""
    query = select(OutboxItem).order_by(OutboxItem.created_at.desc(), OutboxItem.seq).limit(limit)
    if status:
        query = query.where(OutboxItem.status == status)
    with get_db().session() as session:
        rows = session.scalars(query).all()
        for row in rows:
            due = row.next_attempt_at.isoformat() if row.next_attempt_at else "-"
            kind = f"{row.resource_type} (update)" if row.is_update else row.resource_type
            click.echo(
                f"{row.id}  {row.submission_id}  {kind:<22} {row.status:<9} "
                f"attempts={row.attempts} next={due} server_id={row.server_id or '-'}"
                + (f"  error={row.last_error}" if row.last_error else "")
            )
    if not rows:
        click.echo("the outbox is empty")


@outbox_cli.command("export")
@click.argument("submission_id")
def export_command(submission_id: str) -> None:
    """Print a submission (held rows included) as a FHIR collection Bundle."""
    with get_db().session() as session:
        try:
            bundle = submission_bundle(session, submission_id)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(bundle, indent=2))
