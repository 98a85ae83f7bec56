"""The app's own database: SQLAlchemy 2 engine and sessions (SQLite by default, PostgreSQL in production).

Models live beside the code that owns them (``plugin.launches.models``, ``plugin.writeback.models``, ...)
and all derive from ``Base``; Alembic migrations in ``plugin/migrations`` create the tables.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: threads of one process are still serialised
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from plugin.wal_checkpoint import SAFETY_NET_PAGES, WalCheckpointer


class Base(DeclarativeBase):
    """The declarative base of every table of the app."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store aware datetimes as UTC; refuse naive ones, which would be ambiguous."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Return values as aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys so several threads can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL: a commit appends to the WAL without an fsync (the WAL is synced at each
            # checkpoint instead). Every committed transaction survives a crash of the process (the WAL is
            # in the OS page cache), and the database can never be corrupted; what a power loss or kernel
            # crash can lose is the last transactions committed since the last checkpoint. FULL (SQLite's
            # default) fsyncs on every commit, which costs more than the CDS call's own work. SQLite is
            # the single-host default; production durability against power loss is PostgreSQL's job.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Checkpoints run on a background thread (plugin/wal_checkpoint.py), not in the commit that
            # happens to cross 1,000 pages; a connection still checkpoints past this safety net.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class HostWriteLock:
    """A lock held by one thread of one process on the host at a time: a mutex, then flock(2) on a file.

    SQLite lets one writer in at a time and makes the others sleep and retry (sleeps of 1 to 100 ms,
    whatever moment the lock frees). Under concurrent writes from two gunicorn workers those sleeps,
    not the work, set the latency. Writers that queue here first wake as soon as the lock is released
    and leave SQLite only writers that do not take this lock to arbitrate. flock belongs to an open
    file, so a forked child gets a fresh mutex and opens the file again (``_after_fork``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        _HOST_LOCKS.add(self)

    def __enter__(self) -> HostWriteLock:
        """Take the process's mutex, then the host-wide file lock."""
        self._mutex.acquire()
        try:
            if fcntl is not None:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._mutex.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        """Release the file lock, then the mutex."""
        try:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's mutex state and its open file (never unlock it)."""
        self._mutex = threading.Lock()
        if self._fd is not None:
            os.close(self._fd)  # the parent's lock, if held, stays: the parent still has the file open
            self._fd = None


_HOST_LOCKS: weakref.WeakSet[HostWriteLock] = weakref.WeakSet()


def _reset_host_locks_after_fork() -> None:
    """Give every host write lock of a freshly forked child its own mutex and file."""
    for lock in list(_HOST_LOCKS):
        lock._after_fork()  # noqa: SLF001 - the module's own at-fork hook


os.register_at_fork(after_in_child=_reset_host_locks_after_fork)


class Database:
    """One engine and session factory for the app; ``session()`` is a unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = _write_lock_for(self.engine)
        self._checkpointer = _checkpointer_for(self.engine)
        if self._checkpointer is not None:
            self._checkpointer.start()
            weakref.finalize(self, self._checkpointer.stop)

    def write_lock(self) -> AbstractContextManager[Any]:
        """Return the lock that hot writers take before a write transaction (none for PostgreSQL).

        Only an optimisation of queueing: SQLite's own locking keeps writes correct without it.
        """
        return self._write_lock if self._write_lock is not None else nullcontext()

    @property
    def is_postgres(self) -> bool:
        """Whether the database is PostgreSQL (row locks and advisory locks are available)."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection (and stop the WAL checkpoint thread)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


def _write_lock_for(engine: Engine) -> HostWriteLock | threading.Lock | None:
    """Return a host-wide lock for a SQLite file, a process lock for in-memory SQLite, else None."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        return threading.Lock()
    return HostWriteLock(Path(f"{url.database}.writelock"))


def _checkpointer_for(engine: Engine) -> WalCheckpointer | None:
    """Return a WAL checkpointer for a SQLite file, else None (in-memory SQLite, PostgreSQL)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return WalCheckpointer(Path(url.database))


def rows_changed(result: Any) -> int:
    """Return how many rows an UPDATE/DELETE changed (its compare-and-set outcome)."""
    return int(getattr(result, "rowcount", 0) or 0)


def get_db() -> Database:
    """Return the current Flask app's database."""
    from flask import current_app

    db: Database = current_app.extensions["itb.db"]
    return db
