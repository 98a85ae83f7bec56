"""Append audit records to the hash chain, one serialised transaction per record.

Concurrent writers (threads or processes, several hosts on PostgreSQL) must keep ONE chain: each writer
reads the last hash and inserts the next row while holding a chain-wide lock.

- PostgreSQL: ``pg_advisory_xact_lock(CHAIN_LOCK_KEY)`` inside the transaction, released at commit. The
  lock is taken before the last row is read, so under READ COMMITTED the read sees every committed row.
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the read. The pysqlite driver starts
  transactions lazily and only before DML, so a dedicated engine turns its transaction handling off
  (``isolation_level = None``) and emits ``BEGIN IMMEDIATE`` from SQLAlchemy's ``begin`` event.

The ``itb.audit`` logger mirrors each record for sites that ship audit events elsewhere (a SIEM); it does
not propagate to the application log, which must never see who-did-what-to-which-patient.

``audited_session`` puts a change of the app's own tables and its audit records in ONE transaction, so a
process killed between the two cannot leave a dose change without its record (or a record of a change
that was rolled back).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, select, text
from sqlalchemy.orm import Session

from plugin.audit.models import AUDIT_TABLE, GENESIS_HASH, AuditRecord, canonical_json, compute_hash
from plugin.db import Database, make_engine, utcnow

audit_logger = logging.getLogger("itb.audit")
audit_logger.propagate = False
# A NullHandler so that, with no site handler attached, records go nowhere (not to logging's stderr
# last-resort handler): the database is the audit log's store.
audit_logger.addHandler(logging.NullHandler())

# Any fixed 64-bit number works; it only has to be the same for every writer of this database.
CHAIN_LOCK_KEY = 0x17B_A0D1_7C4A_1E55

ACTIONS = frozenset(
    {
        "launch.read-record",
        "check.run",
        "dose-change.propose",
        "dose-change.override",
        "writeback.filed",
        "writeback.queued",
        "writeback.refused",
        "verification.verify",
        "verification.reject",
        "verification.undo",
        "cds.card",
        "cds.feedback",
        "action.refused",
        "audit.export",
        "audit.view",
    }
)
ACTOR_ROLES = frozenset({"clinician", "pharmacist", "auditor", "system", "cds"})
VERDICTS = frozenset({"pass", "warn", "block", "cannot-check"})
MAX_DETAIL_CHARS = 4000

# Keys that name credentials or session handles: their values must never reach the audit table.
_SECRET_KEY_PARTS = ("token", "secret", "password", "verifier", "assertion", "authorization", "cookie")
_SECRET_KEYS = frozenset({"code", "state", "launch", "nonce", "jti"})


@dataclass(frozen=True)
class AuditEntry:
    """What a caller tells the audit log; the writer adds id, time, sequence and hashes."""

    actor: str  # fhirUser reference, "cds-client:<iss>", "system" or "system:<job>"
    actor_role: str  # clinician | pharmacist | auditor | system | cds
    action: str  # one of ACTIONS
    patient_id: str | None = None  # the bare FHIR id at ``iss``
    iss: str | None = None
    dose_before_ug_per_day: float | None = None
    dose_after_ug_per_day: float | None = None
    verdict: str | None = None
    finding_codes: Sequence[str] = ()
    override_reason_code: str | None = None
    override_reason_text: str | None = None
    related: Sequence[str] = ()  # resource references, e.g. "MedicationRequest/42"
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the entry and normalise it so that every value survives CSV and hashing unchanged."""
        if not self.actor or not self.actor.strip():
            raise ValueError("audit entry needs an actor")
        if self.actor_role not in ACTOR_ROLES:
            raise ValueError(f"unknown actor_role {self.actor_role!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        # Empty optional strings become None: a CSV cell cannot tell "" from null.
        for name in (
            "patient_id",
            "iss",
            "verdict",
            "override_reason_code",
            "override_reason_text",
            "request_id",
        ):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        for name in ("dose_before_ug_per_day", "dose_after_ug_per_day"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number")
                object.__setattr__(self, name, float(value))
        for name in ("finding_codes", "related"):
            values = getattr(self, name)
            if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
                raise ValueError(f"{name} must be a list of non-empty strings")
            object.__setattr__(self, name, tuple(values))
        detail = dict(self.detail)
        _refuse_secrets(detail, "detail")
        if len(canonical_json(detail)) > MAX_DETAIL_CHARS:
            raise ValueError(f"audit detail is over {MAX_DETAIL_CHARS} characters")
        object.__setattr__(self, "detail", detail)


def _refuse_secrets(value: Any, path: str) -> None:
    """Raise ValueError if ``value`` holds a credential-named key or a bearer token or JWT."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            lowered = str(key).lower()
            if lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS):
                raise ValueError(f"{path}.{key}: credentials never go in the audit log")
            _refuse_secrets(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{path}[{index}]")
    elif isinstance(value, str) and (
        value.lower().startswith("bearer ") or (value.startswith("eyJ") and value.count(".") == 2)
    ):
        raise ValueError(f"{path}: looks like a token; credentials never go in the audit log")


# Built once: every audited request runs both, and building a statement costs more than executing it.
_CHAIN_TAIL = select(AUDIT_TABLE.c.seq, AUDIT_TABLE.c.hash).order_by(AUDIT_TABLE.c.seq.desc()).limit(1)
_INSERT_RECORDS = insert(AUDIT_TABLE)

_writer_engines: weakref.WeakKeyDictionary[Database, Engine] = weakref.WeakKeyDictionary()
_writer_engines_lock = threading.Lock()


def _is_memory_sqlite(db: Database) -> bool:
    """Whether ``db`` is an in-memory SQLite database."""
    url = db.engine.url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def _writer_engine(db: Database) -> Engine:
    """Return the engine audit writes go through: ``db.engine``, or for SQLite a BEGIN IMMEDIATE twin."""
    if db.engine.url.get_backend_name() != "sqlite" or _is_memory_sqlite(db):
        return db.engine
    with _writer_engines_lock:
        engine = _writer_engines.get(db)
        if engine is None:
            engine = make_engine(db.engine.url.render_as_string(hide_password=False))
            event.listen(engine, "connect", _disable_pysqlite_transactions)
            event.listen(engine, "begin", _begin_immediate)
            # Closing the app's database closes its audit writer too.
            event.listen(db.engine, "engine_disposed", lambda _engine, writer=engine: writer.dispose())
            _writer_engines[db] = engine
        return engine


def _disable_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
    """Stop pysqlite from issuing its own (deferred, DML-only) BEGIN."""
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    """Open every audit write transaction with SQLite's write lock already held."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def chain_transaction(db: Database) -> Iterator[Connection]:
    """Yield a connection in a transaction that holds the chain lock; commit on success."""
    engine = _writer_engine(db)
    # SQLite: the host-wide write lock first, so that concurrent writers queue instead of sleeping in
    # SQLite's busy handler (and in-memory SQLite, which cannot be opened twice, is serialised at all).
    with db.write_lock(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:key AS bigint))"), {"key": CHAIN_LOCK_KEY}
            )
        yield connection


@dataclass
class AuditedWrite:
    """An ORM session and the audit entries to append in the same transaction (``audited_session``)."""

    session: Session
    entries: list[AuditEntry] = field(default_factory=list)


@contextmanager
def audited_session(db: Database, *, now: datetime | None = None) -> Iterator[AuditedWrite]:
    """Yield a session whose writes commit together with the audit entries added to it, or not at all.

    The transaction holds the chain lock from its start (as every audit write does), so keep it short:
    no network calls inside. On PostgreSQL take the chain lock before any other advisory lock, as this
    does, so that two writers never wait for each other's lock the other way round.
    """
    with chain_transaction(db) as connection:
        # Bound to a connection already in a transaction, the session joins it: its commit() only
        # flushes, and the transaction commits (or rolls back) when chain_transaction ends.
        session = Session(bind=connection, expire_on_commit=False)
        try:
            write = AuditedWrite(session)
            yield write
            session.flush()
            rows = append_entries(connection, write.entries, now=now)
        finally:
            session.close()
    for values in rows:
        mirror_to_logger(values)


def append_entries(
    connection: Connection, entries: Sequence[AuditEntry], *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Append ``entries`` to the chain on a connection from ``chain_transaction``; return the stored rows.

    One SELECT of the chain's tail and one multi-row INSERT, so a caller that already holds the chain
    lock (the CDS service writes its cards and their audit records in one transaction) pays once.
    """
    recorded_at = now if now is not None else utcnow()
    if recorded_at.tzinfo is None:
        raise ValueError("audit records need an aware datetime")
    recorded_at = recorded_at.astimezone(UTC)
    last = connection.execute(_CHAIN_TAIL).first()
    seq, prev_hash = (0, GENESIS_HASH) if last is None else (int(last.seq), str(last.hash))
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        values: dict[str, Any] = {
            "seq": seq,
            "id": str(uuid.uuid4()),
            "recorded_at": recorded_at,
            "actor": entry.actor,
            "actor_role": entry.actor_role,
            "patient_id": entry.patient_id,
            "iss": entry.iss,
            "action": entry.action,
            "dose_before_ug_per_day": entry.dose_before_ug_per_day,
            "dose_after_ug_per_day": entry.dose_after_ug_per_day,
            "verdict": entry.verdict,
            "finding_codes": canonical_json(list(entry.finding_codes)),
            "override_reason_code": entry.override_reason_code,
            "override_reason_text": entry.override_reason_text,
            "related": canonical_json(list(entry.related)),
            "request_id": entry.request_id,
            "detail": canonical_json(dict(entry.detail)),
            "prev_hash": prev_hash,
        }
        values["hash"] = prev_hash = compute_hash(values)
        rows.append(values)
    if rows:
        connection.execute(_INSERT_RECORDS, rows)
    return rows


def mirror_to_logger(values: Mapping[str, Any]) -> None:
    """Mirror one stored record to the ``itb.audit`` logger (which has no handler by default)."""
    audit_logger.info(
        "%s by %s",
        values["action"],
        values["actor"],
        extra={
            "audit_seq": values["seq"],
            "audit_patient_id": values["patient_id"],
            "audit_hash": values["hash"],
        },
    )


def record(db: Database, entry: AuditEntry, *, now: datetime | None = None) -> AuditRecord:
    """Append ``entry`` to the audit chain in its own transaction and return the stored record."""
    with chain_transaction(db) as connection:
        [values] = append_entries(connection, [entry], now=now)
    mirror_to_logger(values)
    return AuditRecord(**values)
