"""The ``itb`` command: a Flask CLI group (so ``itb routes`` and ``itb run`` work) with the app's commands."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from plugin.app import create_app


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=True)
def cli() -> None:
    """ITB Dose Check: intrathecal baclofen dose-change safety checks for SMART-on-FHIR EHRs."""


@cli.group("db")
def db_group() -> None:
    """Manage the app's database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Run the Alembic migrations up to the newest schema."""
    from flask import current_app

    from plugin.migrations_runner import upgrade

    upgrade(str(current_app.config["DATABASE_URL"]))
    click.echo("database schema is current")


def _register_optional_commands() -> None:
    """Add the commands that live beside the code they drive."""
    from plugin.check_cli import check
    from plugin.demo import demo

    cli.add_command(check)
    cli.add_command(demo)
    try:
        from plugin.writeback.cli import outbox_cli as outbox
    except ImportError:  # pragma: no cover - the write-back package lands separately
        return
    cli.add_command(outbox)


_register_optional_commands()
