"""Checkpoint a SQLite database's write-ahead log from a background thread, so no request pays for it.

With SQLite's default auto-checkpoint, the commit that takes the WAL past 1,000 pages copies it into the
database file and syncs it before returning. A CDS call writes about 16 pages, so every ~60th call paid
~20 ms for that, while holding the write lock every other writer was queued on (ADR 0002). Instead,
each process checkpoints on its own thread (``PASSIVE``: it never waits for, or blocks, readers and
writers; SQLite releases the GIL while it runs), and connections auto-checkpoint only far later, as a
safety net should this thread fall behind.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path

log = logging.getLogger(__name__)

#: Connections still checkpoint by themselves past this many WAL pages (~40 MiB), if this thread lags.
SAFETY_NET_PAGES = 10_000
INTERVAL_SECONDS = 1.0


class WalCheckpointer:
    """A daemon thread that runs ``PRAGMA wal_checkpoint(PASSIVE)`` on one database file periodically."""

    def __init__(self, path: Path, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self.last_result: tuple[int, int, int] | None = None  # (busy, WAL frames, frames checkpointed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _CHECKPOINTERS.add(self)

    def start(self) -> None:
        """Start the thread (again, in a forked child: threads do not survive a fork)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="itb-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait briefly for it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def is_alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def checkpoint_once(self) -> tuple[int, int, int] | None:
        """Copy what the WAL holds into the database file now; return SQLite's (busy, log, done) counts."""
        if not self.path.exists():
            return None  # not created yet (or removed with its test's temporary folder)
        try:
            connection = sqlite3.connect(self.path, timeout=1, check_same_thread=False)
            try:
                row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            log.warning(
                "WAL checkpoint failed: %s", type(error).__name__, extra={"event": "db.checkpoint_fail"}
            )
            return None
        self.last_result = (int(row[0]), int(row[1]), int(row[2])) if row else None
        return self.last_result

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.checkpoint_once()


_CHECKPOINTERS: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()


def _restart_after_fork() -> None:
    """Give a forked child (a gunicorn worker) its own checkpoint thread for each running checkpointer."""
    for checkpointer in list(_CHECKPOINTERS):
        if checkpointer._thread is not None:  # noqa: SLF001 - the module's own at-fork hook
            checkpointer.start()


os.register_at_fork(after_in_child=_restart_after_fork)
