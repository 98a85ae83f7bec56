"""The sandbox's in-memory, versioned, thread-safe FHIR store (one per tenant) and its search snapshots.

Resources are kept as plain JSON dicts and never handed out for mutation: every write stores a deep
copy and every read returns one. A transaction works on a staged copy of the tenant's index and swaps it
in only when every entry succeeded, so readers never see half a transaction.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .outcome import FhirError

#: HAPI answers a failed If-Match with 409 (ResourceVersionConflictException); kept as one constant.
IF_MATCH_MISMATCH_STATUS = 409


@dataclass(frozen=True)
class Record:
    """One stored version of a resource."""

    resource: dict[str, Any]
    version: int
    last_updated: datetime

    @property
    def etag(self) -> str:
        """The weak ETag HAPI sends for this version."""
        return f'W/"{self.version}"'


def new_id() -> str:
    """Mint a server-assigned resource id (HAPI-style opaque string)."""
    return secrets.token_hex(8)


class TenantStore:
    """All resources of one tenant: ``{type: {id: [versions...]}}`` behind one re-entrant lock."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        lock: threading.RLock | None = None,
        data: dict[str, dict[str, list[Record]]] | None = None,
    ):
        self._clock = clock
        self.lock = lock or threading.RLock()
        self._data: dict[str, dict[str, list[Record]]] = data if data is not None else {}

    def read(self, resource_type: str, resource_id: str) -> Record | None:
        """Return the current version of a resource, or None."""
        with self.lock:
            versions = self._data.get(resource_type, {}).get(resource_id)
            return versions[-1] if versions else None

    def resolve(self, reference: str) -> dict[str, Any] | None:
        """Return the current resource a relative ``Type/id`` reference points to, or None."""
        parts = reference.split("/")
        record = self.read(parts[0], parts[1]) if len(parts) == 2 else None
        return record.resource if record else None

    def vread(self, resource_type: str, resource_id: str, version: int) -> Record | None:
        """Return one version of a resource, or None."""
        with self.lock:
            versions = self._data.get(resource_type, {}).get(resource_id, [])
            return versions[version - 1] if 0 < version <= len(versions) else None

    def all(self, resource_type: str) -> list[dict[str, Any]]:
        """Return copies of the current versions of every resource of a type, in insertion order."""
        with self.lock:
            return [copy.deepcopy(v[-1].resource) for v in self._data.get(resource_type, {}).values()]

    def current(self, resource_type: str) -> list[Record]:
        """Return the current record of every resource of a type (records are never mutated)."""
        with self.lock:
            return [versions[-1] for versions in self._data.get(resource_type, {}).values()]

    def count(self, resource_type: str) -> int:
        """Return how many resources of a type exist."""
        with self.lock:
            return len(self._data.get(resource_type, {}))

    def _put(self, resource: dict[str, Any], previous: list[Record]) -> Record:
        """Append a new version of ``resource`` (which carries its id) and return it."""
        now = self._clock()
        version = len(previous) + 1
        stored = copy.deepcopy(resource)
        meta = dict(stored.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = now.isoformat(timespec="milliseconds")
        stored["meta"] = meta
        record = Record(stored, version, now)
        # Replace, never mutate, the version list: a staged transaction shares the old lists.
        self._data.setdefault(stored["resourceType"], {})[stored["id"]] = [*previous, record]
        return record

    def create(self, resource: dict[str, Any], resource_id: str | None = None) -> Record:
        """Store a new resource under a server-assigned id (or one pre-assigned by a transaction)."""
        with self.lock:
            resource = {**resource, "id": resource_id or new_id()}
            return self._put(resource, [])

    def update(self, resource: dict[str, Any], if_match: int | None = None) -> tuple[Record, bool]:
        """Store a new version (or create it under the client's id); return it and whether it was created."""
        with self.lock:
            previous = self._data.get(resource["resourceType"], {}).get(resource["id"], [])
            if if_match is not None and (not previous or previous[-1].version != if_match):
                current = previous[-1].version if previous else "none"
                raise FhirError(
                    IF_MATCH_MISMATCH_STATUS,
                    "conflict",
                    f"If-Match version {if_match} does not match current version {current}",
                )
            return self._put(resource, previous), not previous

    @contextmanager
    def staged(self) -> Iterator[TenantStore]:
        """Yield a copy to write a transaction into; commit it only if the block raises nothing."""
        with self.lock:
            stage = TenantStore(self._clock, self.lock, {t: dict(ids) for t, ids in self._data.items()})
            yield stage
            self._data = stage._data


class FhirStore:
    """The tenants' stores."""

    def __init__(self, tenants: tuple[str, ...], clock: Callable[[], datetime]):
        self.tenants = {name: TenantStore(clock) for name in tenants}

    def tenant(self, name: str) -> TenantStore:
        """Return one tenant's store (KeyError if unknown)."""
        return self.tenants[name]


@dataclass(frozen=True)
class Snapshot:
    """The ids matched by a search, frozen at search time, so paging is stable like HAPI's _getpages."""

    tenant: str
    resource_type: str
    ids: tuple[str, ...]
    includes: tuple[str, ...]
    count: int
    total_accurate: bool = False


class SnapshotCache:
    """A bounded, thread-safe map of page tokens to search snapshots (oldest evicted first)."""

    def __init__(self, capacity: int = 2000):
        self._capacity = capacity
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, snapshot: Snapshot) -> str:
        """Store a snapshot and return its page token."""
        token = secrets.token_hex(12)
        with self._lock:
            self._items[token] = snapshot
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> Snapshot | None:
        """Return a snapshot by token, or None when unknown or evicted."""
        with self._lock:
            return self._items.get(token)
