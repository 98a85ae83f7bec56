"""``itb audit``: verify the audit hash chain and export audit records.

``verify`` exits 0 when the chain is intact and 1 when it is not, listing every broken record; both
commands exit 3 with a one-line reason when the audit table cannot be read at all.
``export`` writes CSV, NDJSON or a FHIR Bundle to stdout or a file, and records the export itself
(action ``audit.export``, actor ``system:cli``) because reading the audit log is an audited act.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import date
from typing import Any, NoReturn, cast

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import DBAPIError

from plugin.audit.export import FORMATS, ExportFormat, export_records
from plugin.audit.log import AuditEntry, record
from plugin.audit.verify import normalise_anchor, verify_chain
from plugin.db import Database, get_db

CLI_ACTOR = "system:cli"


def _parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    """Return ``--since`` as a date (start of that day, UTC) or fail with a one-line usage error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-20") from None


def _parse_anchor(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Return ``--anchor`` as a normalised hash or fail with a one-line usage error."""
    if value is None:
        return None
    try:
        return normalise_anchor(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("audit")
def audit() -> None:
    """Verify and export the audit log (who did what to which patient's pump dose)."""


@audit.command("verify")
@click.option(
    "--anchor", metavar="HASH", callback=_parse_anchor, help="A hash noted earlier that must still be there."
)
@with_appcontext
def verify_command(anchor: str | None) -> None:
    """Recompute the hash chain; exit 0 if intact, 1 if tampered (listing each broken record)."""
    try:
        report = verify_chain(get_db(), anchor=anchor)
    except DBAPIError as exc:
        _database_unreadable(exc)
    if report.ok:
        anchored = f", anchor found at seq {report.anchor_seq}" if report.anchor else ""
        click.echo(f"audit chain intact: {report.count} records, last hash {report.last_hash}{anchored}")
        return
    click.echo(f"audit chain BROKEN: {len(report.breaks)} problem(s) in {report.count} records")
    for problem in report.breaks:
        click.echo(f"  {problem}")
    sys.exit(1)


@audit.command("export")
@click.option("--patient", "patient_id", metavar="ID", help="Only records of this patient (bare FHIR id).")
@click.option("--since", metavar="DATE", callback=_parse_since, help="Records on or after this day (UTC).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="File (default stdout).")
@with_appcontext
def export_command(patient_id: str | None, since: date | None, fmt: str, output: str | None) -> None:
    """Export audit records as CSV, NDJSON or a FHIR Bundle of AuditEvents."""
    db = get_db()
    export_format = cast(ExportFormat, fmt)
    detail: dict[str, Any] = {"format": fmt, "destination": "file" if output else "stdout"}
    if since is not None:
        detail["since"] = since.isoformat()
    try:
        if output:
            # newline="" lets the csv module write its own CRLF row ends unchanged.
            with open(output, "w", encoding="utf-8", newline="") as handle:
                count = export_records(db, patient_id=patient_id, since=since, fmt=export_format, out=handle)
        else:
            count = export_records(db, patient_id=patient_id, since=since, fmt=export_format, out=sys.stdout)
    except Exception as exc:
        # A failed export attempt is audited too; if the database itself is the failure, say so plainly.
        detail["error"] = exc.__class__.__name__
        with contextlib.suppress(DBAPIError):
            _record_export(db, patient_id, detail)
        if isinstance(exc, DBAPIError):
            _database_unreadable(exc)
        raise
    detail["count"] = count
    _record_export(db, patient_id, detail)
    if output:
        click.echo(f"exported {count} audit records to {output}", err=True)


def _record_export(db: Database, patient_id: str | None, detail: dict[str, Any]) -> None:
    """Append the ``audit.export`` record of this export."""
    entry = AuditEntry(
        actor=CLI_ACTOR, actor_role="system", action="audit.export", patient_id=patient_id, detail=detail
    )
    record(db, entry)


def _database_unreadable(exc: DBAPIError) -> NoReturn:
    """Exit 3 with a one-line reason (no SQL, no parameters) when the audit table cannot be read."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else exc.__class__.__name__
    click.echo(f"cannot read the audit log: {reason} (has `itb db upgrade` run?)", err=True)
    sys.exit(3)
