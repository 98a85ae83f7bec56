"""Pure helpers for the FHIR client: origins, Retry-After, backoff, OperationOutcome messages, ids."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from smart_launch.errors import one_line

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_WAIT_S = 30.0
BACKOFF_BASE_S = 0.5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_URL_QUERY = re.compile(r"(https?://[^\s?#]+)\?[^\s]*")


def origin(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of ``url`` with default ports filled in and the host lower-cased."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Return the wait a ``Retry-After`` header asks for (seconds or HTTP date), capped; None if absent."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_WAIT_S)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max((moment - now).total_seconds(), 0.0), MAX_RETRY_WAIT_S)


def backoff_seconds(attempt: int) -> float:
    """Return an exponential backoff with full jitter for retry number ``attempt`` (0-based), capped."""
    ceiling = min(BACKOFF_BASE_S * (2**attempt), MAX_RETRY_WAIT_S)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def outcome_message(outcome: dict[str, Any] | None) -> str | None:
    """Return a one-line message from an OperationOutcome's issue diagnostics / details.text."""
    if not outcome or outcome.get("resourceType") != "OperationOutcome":
        return None
    texts: list[str] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        for text in (issue.get("diagnostics"), details.get("text") if isinstance(details, dict) else None):
            if isinstance(text, str) and text.strip() and text.strip() not in texts:
                texts.append(text.strip())
    if not texts:
        return None
    return safe_text("; ".join(texts))


def safe_text(text: str) -> str:
    """Return ``text`` on one line, truncated, with query strings of any URLs in it removed."""
    # Servers (HAPI among them) echo the request URL in diagnostics; its query may hold patient ids.
    return one_line(_URL_QUERY.sub(r"\1?…", text))


def check_resource_type(resource_type: str) -> str:
    """Return ``resource_type`` if it looks like a FHIR type name, else raise ValueError."""
    if not _RESOURCE_TYPE.match(resource_type):
        raise ValueError("not a FHIR resource type name")
    return resource_type


def check_id(resource_id: str) -> str:
    """Return ``resource_id`` if it is a valid FHIR id, else raise ValueError (no path tricks)."""
    if not _FHIR_ID.match(resource_id):
        raise ValueError("not a valid FHIR id")
    return resource_id


def id_from_location(location: str | None) -> str | None:
    """Return the resource id in a Location like ``[base/]Type/id[/_history/n]``."""
    if not location:
        return None
    segments = [segment for segment in location.split("?")[0].split("/") if segment]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) < 2 or not _FHIR_ID.match(segments[-1]):
        return None
    return segments[-1]


def search_pairs(params: Mapping[str, str] | Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Return search parameters as a list of (name, value) pairs."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [(str(name), str(value)) for name, value in params.items()]
    return [(str(name), str(value)) for name, value in params]


def entry_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the resources of a searchset page, skipping ``outcome`` entries (warnings, not data)."""
    resources = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        resources.append(entry["resource"])
    return resources


def bundle_total(bundle: Mapping[str, Any]) -> int | None:
    """Return a searchset Bundle's ``total`` (the number of matches), or None when absent or not a count."""
    total = bundle.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


def offset_page_urls(next_url: str, total: int | None) -> list[str] | None:
    """Return the URLs of every remaining page of an offset-paged search, or None when they are not known.

    HAPI (and the sandbox) page with ``?_getpages=<id>&_getpagesoffset=<n>&_count=<n>`` over a stored
    result set, and say the ``total``: the pages after the first can then all be asked for at once
    instead of one ``next`` link after another. Only that exact shape qualifies - a second page starting
    right after a full first one, and a total beyond it; any other server's (opaque) links return None
    and are followed one by one.
    """
    if total is None:
        return None
    parts = urlsplit(next_url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(pairs)
    if len(values) != len(pairs) or not values.get("_getpages"):
        return None
    offset_text, count_text = values.get("_getpagesoffset", ""), values.get("_count", "")
    if not offset_text.isdigit() or (count_text and not count_text.isdigit()):
        return None
    offset = int(offset_text)
    step = int(count_text) if count_text else offset
    if step <= 0 or offset != step or total <= offset:
        return None
    urls = []
    for start in range(offset, total, step):
        query = urlencode([(k, str(start) if k == "_getpagesoffset" else v) for k, v in pairs])
        urls.append(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))
    return urls


def is_transient(exc: requests.RequestException) -> bool:
    """Return whether a network error may go away on retry (connection trouble or a timeout)."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout)
