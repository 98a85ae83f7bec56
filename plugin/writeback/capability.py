"""Read what an EHR can store from its CapabilityStatement (plain dict helpers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _resource_entry(capabilities: Mapping[str, Any], resource_type: str) -> Mapping[str, Any] | None:
    """Return the server-mode ``rest.resource`` entry for a type, or None."""
    for rest in capabilities.get("rest") or ():
        if rest.get("mode", "server") != "server":
            continue
        for entry in rest.get("resource") or ():
            if entry.get("type") == resource_type:
                found: Mapping[str, Any] = entry
                return found
    return None


def can_create(capabilities: Mapping[str, Any], resource_type: str) -> bool:
    """Whether the server lists the ``create`` interaction for this type."""
    entry = _resource_entry(capabilities, resource_type)
    if entry is None:
        return False
    return any(i.get("code") == "create" for i in entry.get("interaction") or ())


def can_update(capabilities: Mapping[str, Any], resource_type: str) -> bool:
    """Whether the server lists the ``update`` interaction for this type."""
    entry = _resource_entry(capabilities, resource_type)
    if entry is None:
        return False
    return any(i.get("code") == "update" for i in entry.get("interaction") or ())


def supports_conditional_create(capabilities: Mapping[str, Any], resource_type: str) -> bool:
    """Whether the server says it honours ``If-None-Exist`` for this type."""
    entry = _resource_entry(capabilities, resource_type)
    return bool(entry and entry.get("conditionalCreate") is True)
