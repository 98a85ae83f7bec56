"""Validation of dose-bearing medication records with ``fhir.resources.R4B``, cached by content.

Only the current intrathecal records are validated; an invalid one is kept as unconvertible (with the first
validation error) so that the check cannot pass on a broken record. Validation is a pure function of the
record's content, and the same records come back on every check of the same patient (each CDS order-sign
call carries the whole chart again), so its result is cached by a hash of the canonical JSON of the record:
a repeated record costs a serialisation, not an R4B model.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import orjson

from plugin.domain.loader.fhir import JSON
from plugin.domain.loader.med_records import MedRecord


class _ValidationCache:
    """A bounded, thread-safe LRU of validation results keyed by (type, digest of canonical JSON)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, str | None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(resource_type: str, resource: JSON) -> bytes | None:
        """Return the cache key of a resource, or None when it is not plain JSON (then it is not cached)."""
        try:
            canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            return None
        return resource_type.encode() + b"\0" + hashlib.blake2b(canonical, digest_size=20).digest()

    def get(self, key: bytes) -> tuple[bool, str | None]:
        """Return (found, result)."""
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: bytes, result: str | None) -> None:
        """Remember a result, dropping the least recently used beyond the size."""
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._items.clear()


VALIDATION_CACHE = _ValidationCache(4096)


def validate_r4b(record: MedRecord) -> str | None:
    """Validate one record with its fhir.resources.R4B model (uncached)."""
    from pydantic import ValidationError

    if record.resource_type == "MedicationStatement":
        from fhir.resources.R4B.medicationstatement import MedicationStatement as Model
    else:
        from fhir.resources.R4B.medicationrequest import MedicationRequest as Model  # type: ignore[assignment]
    try:
        Model.model_validate(dict(record.resource))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"the record is not valid FHIR R4 ({where}: {first.get('msg', 'invalid')})"
    except (TypeError, ValueError) as error:  # fhir.resources raises these for some shapes
        return f"the record is not valid FHIR R4 ({type(error).__name__})"
    return None
