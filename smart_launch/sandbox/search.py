"""FHIR search for the sandbox store: parse a query, test resources against it, sort and include.

Pure functions over plain dicts. Unknown parameters, unsupported modifiers and malformed values raise
``FhirError(400)`` as HAPI does; dates are compared as ranges, so a date, a dateTime, an instant and a
Period all match the way R4 search.html describes (a Period is the range between its bounds).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .outcome import FhirError
from .search_params import CONTROL_PARAMS, SEARCH_PARAMS, ParamDef

DEFAULT_COUNT = 50
#: The largest page served; a larger ``_count`` is capped silently. 1,000 as our HAPI configuration
#: (scripts/hapi: ``setMaximumPageSize(1000)``), so benchmarks page as against HAPI.
MAX_COUNT = 1000

_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)
_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
Range = tuple[datetime, datetime]


@dataclass
class SearchQuery:
    """A parsed search: AND-ed filters (each an OR list of values) and the result parameters."""

    resource_type: str
    filters: list[tuple[ParamDef, list[str]]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    sort: list[tuple[ParamDef, bool]] = field(default_factory=list)
    includes: list[ParamDef] = field(default_factory=list)
    summary_count: bool = False
    total_accurate: bool = False  # _total=accurate: name the total on every page, as HAPI then does


def _bad(message: str) -> FhirError:
    """Build a 400 error for a malformed search."""
    return FhirError(400, "invalid", message)


def parse_search(resource_type: str, params: Iterable[tuple[str, str]]) -> SearchQuery:
    """Parse query parameters into a SearchQuery, rejecting anything unknown."""
    known = SEARCH_PARAMS[resource_type]
    query = SearchQuery(resource_type)
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if name in CONTROL_PARAMS:
            _parse_control(query, name, value)
        elif name in known:
            if modifier:
                raise _bad(f"Modifier ':{modifier}' is not supported on '{name}'")
            query.filters.append((known[name], [v for v in value.split(",") if v != ""]))
        else:
            raise _bad(
                f"Unknown search parameter '{raw_name}' for resource type '{resource_type}'. "
                f"Valid parameters: {sorted(known)}"
            )
    for param, values in query.filters:
        if param.kind == "date":
            for value in values:
                _parse_prefixed_date(value)
    # AND-ed filters: test the patient/subject reference first, it rules out most resources cheaply.
    query.filters.sort(key=lambda item: item[0].kind != "reference")
    return query


def _parse_control(query: SearchQuery, name: str, value: str) -> None:
    """Apply one result parameter (_count, _sort, _include, _summary, _total) to the query."""
    known = SEARCH_PARAMS[query.resource_type]
    if name == "_count":
        if not value.isdigit():
            raise _bad(f"Invalid _count '{value}'")
        query.count = min(int(value), MAX_COUNT)
        query.summary_count = query.summary_count or query.count == 0  # _count=0 asks for the total only
    elif name == "_sort":
        for key in value.split(","):
            descending = key.startswith("-")
            param = known.get(key.lstrip("-"))
            if param is None or param.kind != "date":
                raise _bad(f"Cannot sort {query.resource_type} by '{key}'")
            query.sort.append((param, descending))
    elif name == "_include":
        source, _, param_name = value.partition(":")
        param = known.get(param_name)
        if source != query.resource_type or param is None or param.kind != "reference":
            raise _bad(f"Unsupported _include '{value}'")
        query.includes.append(param)
    elif name == "_total":
        # HAPI counts on "accurate" and ignores "none", "estimated" and any other value (200, no total).
        query.total_accurate = query.total_accurate or value == "accurate"
    elif name == "_summary":
        if value == "count":
            query.summary_count = True
        elif value != "false":
            raise _bad(f"Unsupported _summary '{value}'")


def element_values(resource: Any, path: str) -> list[Any]:
    """Return the values at a dotted element path, flattening lists and expanding ``[x]`` choices."""
    nodes: list[Any] = [resource]
    for segment in path.split("."):
        found: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            if segment.endswith("[x]"):
                stem = segment[:-3]
                picked = [v for k, v in node.items() if k.startswith(stem) and k[len(stem) :][:1].isupper()]
            else:
                picked = [node[segment]] if segment in node else []
            for value in picked:
                found.extend(value if isinstance(value, list) else [value])
        nodes = found
    return nodes


@functools.lru_cache(maxsize=65536)
def parse_date_range(text: str) -> Range:
    """Turn a FHIR date/dateTime/instant into the [start, end) range its precision covers (UTC)."""
    match = _DATE_RE.match(text)
    if not match:
        raise _bad(f"Invalid date '{text}'")
    g = match.groupdict()
    tz = UTC
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(g["tz"][1:3]), minutes=int(g["tz"][4:6])))
    year, month, day = int(g["y"]), int(g["m"] or 1), int(g["d"] or 1)
    try:
        start = datetime(year, month, day, int(g["H"] or 0), int(g["M"] or 0), int(g["S"] or 0), tzinfo=tz)
    except ValueError as error:
        raise _bad(f"Invalid date '{text}'") from error
    if g["f"]:
        start = start.replace(microsecond=int((g["f"][1:] + "000000")[:6]))
        end = start + timedelta(microseconds=1)
    elif g["S"]:
        end = start + timedelta(seconds=1)
    elif g["M"]:
        end = start + timedelta(minutes=1)
    elif g["d"]:
        end = start + timedelta(days=1)
    elif g["m"]:
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    else:
        end = datetime(year + 1, 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def value_range(value: Any) -> Range | None:
    """Return the time range of a date-like element value (string or Period), or None."""
    if isinstance(value, str):
        try:
            return parse_date_range(value)
        except FhirError:
            return None
    if isinstance(value, dict) and ("start" in value or "end" in value):
        start = parse_date_range(value["start"])[0] if "start" in value else _MIN
        end = parse_date_range(value["end"])[1] if "end" in value else _MAX
        return start, end
    return None


@functools.lru_cache(maxsize=1024)
def _parse_prefixed_date(value: str) -> tuple[str, Range]:
    """Split a date search value into its prefix (default eq) and range."""
    prefix = value[:2] if value[:2].isalpha() else "eq"
    if prefix not in _PREFIXES:
        raise _bad(f"Unsupported date prefix '{prefix}'")
    return prefix, parse_date_range(value[2:] if value[:2].isalpha() else value)


def _date_matches(target: Range, value: str) -> bool:
    """Compare a target range with one prefixed search value (R4 search.html §3.1.1.4.3)."""
    prefix, (low, high) = _parse_prefixed_date(value)
    t_low, t_high = target
    if prefix in ("eq", "ne"):
        contained = low <= t_low and t_high <= high
        return contained if prefix == "eq" else not contained
    if prefix == "gt":
        return t_high > high
    if prefix == "lt":
        return t_low < low
    if prefix == "ge":
        return t_high > low
    return t_low < high  # le


def _token_matches(value: Any, wanted: str) -> bool:
    """Match a code, Coding, CodeableConcept or Identifier against ``[system|]code``."""
    system, bar, code = wanted.rpartition("|") if "|" in wanted else (None, "", wanted)
    if isinstance(value, bool):
        return not bar and str(value).lower() == code
    if isinstance(value, str):
        return not system and value == code
    if not isinstance(value, dict):
        return False
    if "coding" in value:
        return any(_token_matches(coding, wanted) for coding in value["coding"])
    actual = value.get("code", value.get("value"))
    if bar and system == "" and "system" in value:
        return False
    if system and value.get("system") != system:
        return False
    return code == "" or actual == code


def _reference_key(reference: str) -> tuple[str | None, str]:
    """Reduce a (relative or absolute, maybe versioned) reference to (type, id)."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (None, parts[-1])


def _reference_matches(value: Any, wanted: str, target: str | None) -> bool:
    """Match a Reference against ``Type/id``, an absolute URL or a bare id."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return False
    ref_type, ref_id = _reference_key(value["reference"])
    want_type, want_id = _reference_key(wanted)
    if want_type is None:
        return ref_id == want_id and (target is None or ref_type == target)
    return (ref_type, ref_id) == (want_type, want_id)


def _string_matches(value: Any, wanted: str) -> bool:
    """Case-insensitive starts-with, as FHIR string search does by default."""
    return isinstance(value, str) and value.lower().startswith(wanted.lower())


def value_matches(param: ParamDef, value: Any, wanted: str) -> bool:
    """Test one element value against one search value of the given parameter."""
    if param.kind == "token":
        return _token_matches(value, wanted)
    if param.kind == "reference":
        return _reference_matches(value, wanted, param.target)
    if param.kind == "string":
        return _string_matches(value, wanted)
    target = value_range(value)
    return target is not None and _date_matches(target, wanted)


@functools.lru_cache(maxsize=1024)
def _system_code_pairs(wanted: tuple[str, ...]) -> frozenset[tuple[str, str]] | None:
    """Return ``{(system, code)}`` when every token value is a full ``system|code``, else None."""
    pairs = set()
    for value in wanted:
        system, bar, code = value.rpartition("|")
        if not (bar and system and code):
            return None
        pairs.add((system, code))
    return frozenset(pairs)


def _coding_in(value: Any, pairs: frozenset[tuple[str, str]]) -> bool:
    """``_token_matches`` for values that are all ``system|code``, as one set lookup per coding."""
    if not isinstance(value, dict):
        return False  # a bare code or boolean never matches a value with a system
    if "coding" in value:
        return any(_coding_in(coding, pairs) for coding in value["coding"])
    return (value.get("system"), value.get("code", value.get("value"))) in pairs


def matches(resource: dict[str, Any], query: SearchQuery) -> bool:
    """Tell whether a resource satisfies every filter of the query."""
    for param, wanted in query.filters:
        values = [v for path in param.paths for v in element_values(resource, path)]
        pairs = _system_code_pairs(tuple(wanted)) if param.kind == "token" else None
        if pairs is not None:
            if not any(_coding_in(v, pairs) for v in values):
                return False
        elif not any(value_matches(param, v, w) for v in values for w in wanted):
            return False
    return True


def sort_resources(resources: Sequence[dict[str, Any]], query: SearchQuery) -> list[dict[str, Any]]:
    """Sort by the query's date keys (stable; resources without the element go last)."""
    ordered = list(resources)
    for param, descending in reversed(query.sort):

        def key(resource: dict[str, Any], param: ParamDef = param) -> datetime | None:
            ranges = [
                r for path in param.paths for v in element_values(resource, path) if (r := value_range(v))
            ]
            return min(r[0] for r in ranges) if ranges else None

        present = [r for r in ordered if key(r) is not None]
        missing = [r for r in ordered if key(r) is None]
        present.sort(key=lambda r: key(r) or _MIN, reverse=descending)
        ordered = present + missing
    return ordered
