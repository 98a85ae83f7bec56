"""Shifting seed dates to 'today' by whole days."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from smart_launch.sandbox.dates import days_between, shift_dates


def test_shift_moves_every_kind_of_date_and_keeps_time_and_offset() -> None:
    resource = {
        "resourceType": "Observation",
        "meta": {"lastUpdated": "2026-11-30T10:00:00Z"},
        "effectivePeriod": {"start": "2026-11-28T08:00:00Z", "end": "2026-11-30T23:30:00+01:00"},
        "issued": "2026-11-30T10:00:00.123Z",
        "valueDateTime": "2026-11-30",
        "component": [{"valuePeriod": {"start": "2026-01-31"}}],
        "extension": [{"url": "x", "valueDateTime": "2026-02-28T12:00:00-05:00"}],
    }
    shifted = shift_dates(resource, 3)
    assert shifted["effectivePeriod"] == {"start": "2026-12-01T08:00:00Z", "end": "2026-12-03T23:30:00+01:00"}
    assert shifted["issued"] == "2026-12-03T10:00:00.123Z"
    assert shifted["valueDateTime"] == "2026-12-03"
    assert shifted["component"][0]["valuePeriod"]["start"] == "2026-02-03"
    assert shifted["extension"][0]["valueDateTime"] == "2026-03-03T12:00:00-05:00"
    assert shifted["meta"]["lastUpdated"] == "2026-11-30T10:00:00Z"


def test_shift_covers_named_clinical_dates_and_birth_date() -> None:
    resource = {
        "authoredOn": "2026-11-01",
        "recordedDate": "2026-10-01T00:00:00Z",
        "onsetDateTime": "2015-03-02",
        "performedPeriod": {"start": "2026-09-01"},
        "birthDate": "1980-06-15",
        "dateAsserted": "2026-11-02",
    }
    shifted = shift_dates(resource, -1)
    assert shifted == {
        "authoredOn": "2026-10-31",
        "recordedDate": "2026-09-30T00:00:00Z",
        "onsetDateTime": "2015-03-01",
        "performedPeriod": {"start": "2026-08-31"},
        "birthDate": "1980-06-14",
        "dateAsserted": "2026-11-01",
    }


def test_shift_leaves_non_dates_partial_dates_and_the_input_alone() -> None:
    resource = {
        "valueString": "2026-11-30",
        "identifier": [{"value": "2026-11-30"}],
        "birthDate": "1980",
        "code": {"text": "2026-11-30"},
        "timing": {"repeat": {"timeOfDay": ["08:00:00"]}},
    }
    original = copy.deepcopy(resource)
    assert shift_dates(resource, 10) == original
    assert resource == original


def test_days_between_uses_utc_calendar_days() -> None:
    anchor = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert days_between(anchor, datetime(2026, 12, 1, 0, 1, tzinfo=UTC)) == 0
    assert days_between(anchor, datetime(2027, 1, 1, 23, 59, tzinfo=UTC)) == 31
