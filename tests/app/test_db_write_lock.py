"""The host-wide write lock SQLite writers queue on (``plugin.db.HostWriteLock``, ADR 0002)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from plugin.db import Database, HostWriteLock

_FORK = multiprocessing.get_context("fork")


def _enter_and_report(lock: HostWriteLock, holding: Any, released: Any, saw_release: Any) -> None:
    """In a child process: wait until the parent holds the lock, take it, say whether it was released."""
    holding.wait(10)
    with lock:
        saw_release.value = released.value


def _child_gets_in_only_after_the_parent_left(parent_lock: HostWriteLock, child_lock: HostWriteLock) -> bool:
    """Hold ``parent_lock`` while a forked child takes ``child_lock``; return what the child saw."""
    holding, released, saw_release = _FORK.Event(), _FORK.Value("b", 0), _FORK.Value("b", -1)
    child = _FORK.Process(target=_enter_and_report, args=(child_lock, holding, released, saw_release))
    child.start()
    with parent_lock:
        holding.set()
        time.sleep(0.3)  # room for the child to get in wrongly while we hold the lock
        released.value = 1
    child.join(10)
    assert child.exitcode == 0
    return bool(saw_release.value == 1)


def test_a_second_process_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "db.writelock"
    assert _child_gets_in_only_after_the_parent_left(HostWriteLock(path), HostWriteLock(path))


def test_a_forked_worker_does_not_share_the_parent_s_open_lock_file(tmp_path: Path) -> None:
    # gunicorn forks workers; flock belongs to the open file, so a child reusing the parent's file
    # descriptor would walk straight in while the parent holds the lock.
    lock = HostWriteLock(tmp_path / "db.writelock")
    with lock:
        pass  # the file is now open in the parent
    assert _child_gets_in_only_after_the_parent_left(lock, lock)


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    lock = HostWriteLock(tmp_path / "db.writelock")
    inside, most = [0], [0]

    def work() -> None:
        for _ in range(200):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_each_kind_of_database_gets_the_lock_it_needs(tmp_path: Path) -> None:
    on_file = Database(f"sqlite:///{tmp_path / 'itb.sqlite'}")
    in_memory = Database("sqlite://")
    try:
        lock = on_file.write_lock()
        assert isinstance(lock, HostWriteLock) and lock.path == tmp_path / "itb.sqlite.writelock"
        assert not isinstance(in_memory.write_lock(), HostWriteLock)
        with in_memory.write_lock():
            pass
    finally:
        on_file.dispose()
        in_memory.dispose()
