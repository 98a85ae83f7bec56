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
    from plugin.audit.cli import audit
    from plugin.check_cli import check
    from plugin.demo import demo
    from plugin.keys_cli import keys_group
    from plugin.launches.cli import launches_cli
    from plugin.serve import serve
    from plugin.writeback.cli import outbox_cli

    for command in (audit, check, demo, keys_group, launches_cli, outbox_cli, serve):
        cli.add_command(command)


_register_optional_commands()
