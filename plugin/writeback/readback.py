"""Compare what was sent with what the EHR kept: Oracle Health ignores unsupported fields silently.

A field is "dropped" when it is present in what we sent and absent from what the server returns. Values
the server normalises (a date's timezone, a reference made absolute) are not reported: only absence is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Elements the server owns or may rewrite at the root: not ours to compare.
IGNORED_ROOT_ELEMENTS = frozenset({"meta", "id", "text", "resourceType"})


def dropped_paths(sent: Mapping[str, Any], returned: Mapping[str, Any]) -> list[str]:
    """Return the element paths (``content[1]``, ``context.encounter``) sent but missing on read-back."""
    paths: list[str] = []
    for key, value in sent.items():
        if key in IGNORED_ROOT_ELEMENTS:
            continue
        _compare(key, value, returned.get(key), paths)
    return paths


def _is_empty(value: Any) -> bool:
    """Whether a JSON value carries nothing."""
    return value is None or value == [] or value == {} or value == ""


def _compare(path: str, sent: Any, returned: Any, paths: list[str]) -> None:
    """Append to ``paths`` every part of ``sent`` that ``returned`` lacks."""
    if _is_empty(sent):
        return
    if _is_empty(returned):
        paths.append(path)
        return
    if isinstance(sent, Mapping):
        if not isinstance(returned, Mapping):
            return
        for key, value in sent.items():
            if key == "data" and "url" in returned and "data" not in returned:
                # Some EHRs move attachment bytes to a Binary and return its url instead: not a loss.
                continue
            _compare(f"{path}.{key}", value, returned.get(key), paths)
    elif isinstance(sent, list):
        if not isinstance(returned, list):
            return
        for index, value in enumerate(sent):
            _compare(f"{path}[{index}]", value, returned[index] if index < len(returned) else None, paths)
