"""Times relative to the fixed anchor: every date in the sandbox patients is written through these."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(day: int, clock: str = "10:00") -> str:
    """Return the ISO dateTime ``day`` days from the anchor's date at ``clock`` UTC."""
    return f"{(ANCHOR.date() + timedelta(days=day)).isoformat()}T{clock}:00Z"


def hours_before(hours: int) -> str:
    """Return the ISO dateTime ``hours`` hours before the anchor."""
    return iso(ANCHOR - timedelta(hours=hours))


def iso(moment: datetime) -> str:
    """Format a UTC datetime as one of our ISO dateTimes (seconds, ``Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(iso_text: str) -> datetime:
    """Parse one of our ISO dateTimes."""
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00"))


def monthly(last_day: int, n: int = 12) -> list[int]:
    """Return ``n`` visit days 30 days apart, ending on ``last_day``."""
    return [last_day - 30 * (n - 1 - i) for i in range(n)]
