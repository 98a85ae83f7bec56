"""Shift the dates of FHIR JSON by whole days, so demo data written against an anchor always looks recent.

Only full dates (``YYYY-MM-DD``, optionally with a time) in date-like elements are shifted; year or
year-month values carry no day to shift and are kept. ``meta`` is never touched (lastUpdated is the
server's business). Shifting ``birthDate`` by the same whole-day delta keeps every age as written.
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime, timedelta
from typing import Any

_FULL_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})"
    r"(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$"
)
#: Date-typed elements whose names do not contain "date" (Period, Observation.issued, ...).
_DATE_ELEMENTS = frozenset(
    {"start", "end", "issued", "authoredOn", "recorded", "event", "timestamp", "created", "occurrenceInstant"}
)
_NEVER = frozenset({"lastUpdated", "meta"})


def _is_date_element(name: str) -> bool:
    """Tell whether an element name is one that holds a date, dateTime, instant or Period bound."""
    if name in _NEVER:
        return False
    lowered = name.lower()
    return name in _DATE_ELEMENTS or "date" in lowered or lowered.endswith("instant")


def shift_value(value: str, days: int) -> str:
    """Shift one date/dateTime/instant string by whole days, keeping its time, offset and precision."""
    match = _FULL_DATE.match(value)
    if not match:
        return value
    shifted = date.fromisoformat(match.group(1)) + timedelta(days=days)
    return shifted.isoformat() + value[10:]


def _shift(node: Any, days: int, parent_is_date: bool) -> Any:
    """Walk JSON, shifting strings that sit in date-like elements (or inside a date-like Period)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _NEVER:
                out[key] = value
            else:
                out[key] = _shift(
                    value, days, _is_date_element(key) or (parent_is_date and key in {"start", "end"})
                )
        return out
    if isinstance(node, list):
        return [_shift(item, days, parent_is_date) for item in node]
    if isinstance(node, str) and parent_is_date:
        return shift_value(node, days)
    return node


def shift_dates(resource: dict[str, Any], days: int) -> dict[str, Any]:
    """Return a copy of a FHIR resource (or Bundle) with every full date shifted by ``days`` days."""
    if days == 0:
        return copy.deepcopy(resource)
    shifted: dict[str, Any] = _shift(resource, days, False)
    return shifted


def days_between(anchor: datetime, today: datetime) -> int:
    """Whole days from the anchor's UTC date to today's UTC date."""
    return (today.date() - anchor.date()).days
