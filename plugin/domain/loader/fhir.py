"""Small typed helpers that read plain FHIR R4 JSON dicts (cumulus-etl style): no model validation here.

Bulk resources (thousands of Observations) are read through these helpers only; pydantic models from
``fhir.resources.R4B`` are reserved for the few dose-bearing records (see ``medications``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

Coding = tuple[str, str]
JSON = Mapping[str, Any]


def as_map(value: Any) -> JSON:
    """Return ``value`` when it is a JSON object, else an empty mapping."""
    if type(value) is dict:  # the common case, without the slower ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """Return ``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def iter_codings(concept: Any) -> Iterator[Coding]:
    """Yield the (system, code) pairs of a CodeableConcept."""
    for coding in as_list(as_map(concept).get("coding")):
        if isinstance(coding, Mapping):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                yield system, code


def concept_texts(concept: Any) -> list[str]:
    """Return a CodeableConcept's text and its codings' displays."""
    concept = as_map(concept)
    text = concept.get("text")
    texts = [text] if type(text) is str else []
    codings = concept.get("coding")
    if type(codings) is list:
        for coding in codings:
            display = as_map(coding).get("display")
            if type(display) is str:
                texts.append(display)
    return texts


def concept_display(concept: Any) -> str | None:
    """Return the best human label of a CodeableConcept (text, else first display, else code)."""
    texts = concept_texts(concept)
    if texts:
        return texts[0]
    for _system, code in iter_codings(concept):
        return code
    return None


def number(value: Any) -> float | None:
    """Return a JSON number as float (booleans are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_datetime(value: Any) -> datetime | None:
    """Parse a FHIR date, dateTime or instant into an aware UTC datetime (None when unreadable).

    A date without time (``2024-05-01``, ``2024-05``, ``2024``) means the start of that day, month or
    year in UTC. A time without a zone is invalid FHIR and is refused rather than guessed.
    """
    if type(value) is not str and not isinstance(value, str):
        return None
    length = len(value)
    if length > 10:  # a dateTime or instant, the common case ("2024-05-01T10:00:00Z")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        tz = parsed.tzinfo
        if tz is UTC:  # what fromisoformat gives for "Z" and "+00:00"
            return parsed
        return None if tz is None else parsed.astimezone(UTC)
    try:
        if length == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if length == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        if length == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def parse_full_date(value: Any) -> date | None:
    """Parse a full FHIR date (YYYY-MM-DD); partial dates give None (an age needs the day)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def period_start(resource: JSON, prefix: str) -> datetime | None:
    """Return ``{prefix}DateTime`` or ``{prefix}Period.start`` (else ``.end``) or ``{prefix}Instant``."""
    moment = parse_datetime(resource.get(f"{prefix}DateTime"))
    if moment is not None:
        return moment
    period = resource.get(f"{prefix}Period")
    if isinstance(period, Mapping):
        return parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
    return parse_datetime(resource.get(f"{prefix}Instant"))


def reference_key(reference: str) -> str:
    """Reduce ``https://x/fhir/Patient/1/_history/2`` to ``Patient/1``; other forms are returned as is."""
    if reference.startswith(("http://", "https://")):
        parts = reference.rstrip("/").split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return reference


def plain_codes(concept: Any) -> list[str]:
    """Return the codes of a CodeableConcept whatever their system (for fixed value sets)."""
    return [
        code
        for coding in as_list(as_map(concept).get("coding"))
        if isinstance(code := as_map(coding).get("code"), str)
    ]


def status_code(concept: Any) -> str | None:
    """Return the first code of a status CodeableConcept (Condition.clinicalStatus), any system."""
    codes = plain_codes(concept)
    return codes[0] if codes else None
