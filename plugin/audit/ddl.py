"""Database-side protection of ``audit_log``: triggers that refuse UPDATE, DELETE and TRUNCATE.

The hash chain makes tampering *detectable*; these triggers make the ordinary paths to it *fail*. They do
not stop someone with DDL rights (who can drop a trigger), which is why the app's role should also be
granted only INSERT and SELECT on the table (see docs/audit.md) and why ``itb audit verify`` exists.

Alembic migrations call ``install_triggers(op.get_bind())`` after creating the table and
``drop_triggers(op.get_bind())`` before dropping it.
"""

from __future__ import annotations

from sqlalchemy import Connection

APPEND_ONLY_MESSAGE = "audit_log is append-only"

POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- No percent signs in this body: drivers that format parameters would read them as placeholders.
    RAISE EXCEPTION USING MESSAGE = '{APPEND_ONLY_MESSAGE}: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$
"""
POSTGRES_ROW_TRIGGER = """
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()
"""
POSTGRES_TRUNCATE_TRIGGER = """
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()
"""
# CREATE OR REPLACE TRIGGER needs PostgreSQL 14; drop-then-create keeps installing idempotent on 12+.
POSTGRES_INSTALL: tuple[str, ...] = (
    POSTGRES_FUNCTION,
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    POSTGRES_ROW_TRIGGER,
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    POSTGRES_TRUNCATE_TRIGGER,
)
POSTGRES_DROP: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "DROP FUNCTION IF EXISTS audit_log_refuse_change()",
)

# SQLite has no TRUNCATE (``DELETE FROM audit_log`` is caught by the DELETE trigger).
SQLITE_INSTALL: tuple[str, ...] = (
    f"""CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
)
SQLITE_DROP: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS audit_log_no_update",
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
)


def _statements(connection: Connection, *, install: bool) -> tuple[str, ...]:
    """Return the install or drop statements for the connection's database."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return POSTGRES_INSTALL if install else POSTGRES_DROP
    if dialect == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_DROP
    raise NotImplementedError(f"no audit_log triggers for {dialect}")


def install_triggers(connection: Connection) -> None:
    """Create (or replace) the triggers that make ``audit_log`` append-only; idempotent."""
    for statement in _statements(connection, install=True):
        connection.exec_driver_sql(statement)


def drop_triggers(connection: Connection) -> None:
    """Remove the append-only triggers (migration downgrades; tests that play an attacker)."""
    for statement in _statements(connection, install=False):
        connection.exec_driver_sql(statement)
