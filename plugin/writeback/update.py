"""Append one element to a resource the app filed earlier: what to send, and how to recognise it again.

An update row (``OutboxItem.operation == "update"``) carries ``{"resourceType": T, element: [value]}``
and the id of the create row that filed the resource (``target_id``). The appended value carries the
``WRITE_ID_EXTENSION`` with the update row's id. Before appending, the sender reads the resource and
looks for that marker, so a retry after a lost response never appends twice. Some EHRs drop extensions
they do not support, so a value is also recognised by its coded action, date and author.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugin.writeback.codes import WRITE_ID_EXTENSION, WRITE_IDENTIFIER_SYSTEM
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.readback import dropped_paths
from plugin.writeback.resources import validate_resource


@dataclass(frozen=True, slots=True)
class Append:
    """Append ``value`` to the list ``element`` of the resource filed by outbox row ``target_id``.

    ``write_id`` becomes the update row's id and the marker inside ``value``."""

    write_id: str
    target_id: str
    element: str
    value: Mapping[str, Any]


def marked(value: Mapping[str, Any], write_id: str) -> dict[str, Any]:
    """Return ``value`` carrying the write-id extension (and no other copy of it)."""
    extensions = [e for e in value.get("extension") or () if e.get("url") != WRITE_ID_EXTENSION]
    marker = {
        "url": WRITE_ID_EXTENSION,
        "valueIdentifier": {"system": WRITE_IDENTIFIER_SYSTEM, "value": write_id},
    }
    return {**value, "extension": [*extensions, marker]}


def marker_of(value: Mapping[str, Any]) -> str | None:
    """Return the write id an appended value carries, or None."""
    for extension in value.get("extension") or ():
        identifier = extension.get("valueIdentifier") if isinstance(extension, Mapping) else None
        if extension.get("url") == WRITE_ID_EXTENSION and isinstance(identifier, Mapping):
            found = identifier.get("value")
            return str(found) if found else None
    return None


def checked_append(target_resource: Mapping[str, Any], append: Append) -> dict[str, Any]:
    """Return the marked value after validating the target with it appended (R4B); raise
    WriteBackInputError when the element is not a list of that type or the value is invalid."""
    existing = target_resource.get(append.element) or []
    if not isinstance(existing, list):
        raise WriteBackInputError(f"{append.element} is not a list element")
    value = marked(append.value, append.write_id)
    checked = validate_resource({**target_resource, append.element: [*existing, value]})
    appended = (checked.get(append.element) or [None])[-1]
    if not isinstance(appended, dict) or marker_of(appended) != append.write_id:
        raise WriteBackInputError(f"{target_resource.get('resourceType')} has no element {append.element}")
    return appended


def payload_of(payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return (element, value) from an update row's payload ``{"resourceType": T, element: [value]}``."""
    elements = [(k, v) for k, v in payload.items() if k != "resourceType"]
    if len(elements) != 1 or not isinstance(elements[0][1], list) or len(elements[0][1]) != 1:
        raise WriteBackInputError("an update row appends exactly one element")
    element, values = elements[0]
    return element, dict(values[0])


def _instant(value: Any) -> datetime | None:
    """Return a dateTime as an aware datetime to the second (servers may reformat it), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(microsecond=0) if parsed.tzinfo else None


def _codes(value: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Return the (system, code) pairs of the value's ``action`` CodeableConcept."""
    action = value.get("action")
    codings = action.get("coding") if isinstance(action, Mapping) else None
    return {(str(c.get("system")), str(c.get("code"))) for c in codings or () if isinstance(c, Mapping)}


def _same_without_marker(found: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    """Whether ``found`` (which lost its extensions) is ``value``: same coded action, instant and author."""
    if marker_of(found) is not None or not _codes(value) or not _codes(value) <= _codes(found):
        return False
    when = _instant(value.get("date"))
    if when is None or _instant(found.get("date")) != when:
        return False
    author = (value.get("author") or {}).get("reference")
    found_author = (found.get("author") or {}).get("reference")
    if author is None or found_author is None:
        return True
    return str(found_author) == str(author) or str(found_author).endswith(f"/{author}")


def find_appended(
    resource: Mapping[str, Any], element: str, value: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Return the entry of ``resource[element]`` that is this appended value, or None."""
    entries = [e for e in resource.get(element) or () if isinstance(e, Mapping)]
    write_id = marker_of(value)
    for entry in entries:
        if write_id is not None and marker_of(entry) == write_id:
            return dict(entry)
    for entry in entries:
        if _same_without_marker(entry, value):
            return dict(entry)
    return None


def with_appended(resource: Mapping[str, Any], element: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of the server's resource with ``value`` appended to ``element`` (nothing else changed)."""
    existing = resource.get(element) or []
    if not isinstance(existing, list):
        raise WriteBackInputError(f"the EHR's {resource.get('resourceType')}.{element} is not a list")
    return {**resource, element: [*existing, dict(value)]}


def dropped_on_update(element: str, value: Mapping[str, Any], returned: Mapping[str, Any]) -> list[str]:
    """Return what the EHR did not keep of the appended value (``[element]`` when all of it is missing)."""
    found = find_appended(returned, element, value)
    if found is None:
        return [element]
    sent = {k: v for k, v in value.items() if k != "extension"} if marker_of(found) is None else dict(value)
    paths = dropped_paths({element: sent}, {element: found})
    if marker_of(found) is None:
        paths.append(f"{element}.extension")
    return paths
