"""Edge cases the loader's per-Observation fast paths must read exactly as the general path does.

``observations.read_observations`` runs on thousands of Observations per chart, so it takes shortcuts:
exact-type tests before the ``Mapping`` check, dateTimes parsed with one ``fromisoformat`` call, MAS texts
and score displays worked out once per chart, unit spellings normalised once per process. These tests pin
the readings those shortcuts must not change.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from loader_builders import LOINC, SPASTICITY, chart, observation, quantity

from plugin.domain.loader.fhir import parse_datetime
from plugin.domain.units import UnitError, pressure_mmhg, temperature_cel, volume_ml


def mas(rid: str = "m1", **value: Any) -> dict[str, Any]:
    """Return a MAS Observation."""
    return observation(rid, SPASTICITY, "mas", **value)


@pytest.mark.parametrize(
    ("concept", "expected"),
    [
        # A code that is not a grade gives way to a text that is one.
        ({"coding": [{"system": "urn:x", "code": "LA6752-5"}], "text": "2"}, (2.0, "2")),
        # A display is a candidate too, after the codes and the text.
        ({"coding": [{"system": "urn:x", "code": "LA6752-5", "display": "3"}]}, (3.0, "3")),
        # The first grade wins, codes before the text.
        ({"coding": [{"system": "urn:x", "code": "1 +"}], "text": "4"}, (1.5, "1+")),
        # No grade at all: the first candidate decides ("5" is not assessed, whatever the text says).
        ({"coding": [{"system": "urn:x", "code": "5"}], "text": "moderate"}, None),
    ],
)
def test_mas_concept_candidates_keep_their_order(concept: dict[str, Any], expected: Any) -> None:
    result = chart(mas(valueCodeableConcept=concept))
    assert [(s.value, s.display) for s in result.scores] == ([expected] if expected else [])
    assert result.data_gaps == ()


def test_mas_not_assessed_at_observation_level_falls_back_to_the_components() -> None:
    components = [
        {"code": {"text": "Right knee"}, "valueString": "2"},
        {"code": {"coding": [{"system": "urn:x", "code": "k"}]}, "valueString": "1+"},
    ]
    (score,) = chart(mas(valueString="Not assessed", component=components)).scores
    assert (score.value, score.display) == (2.0, "2")
    assert score.components == (("Right knee", 2.0), ("k", 1.5))


def test_the_same_mas_text_reads_the_same_every_time() -> None:
    result = chart(
        mas("a", valueString="moderate"),
        mas("b", valueString="moderate"),
        mas("c", valueString="1 +"),
        mas("d", valueString="1+"),
    )
    assert [(s.source, s.display) for s in result.scores] == [
        ("Observation/c", "1+"),
        ("Observation/d", "1+"),
    ]
    assert "2 spasticity scores could not be read and were ignored" in result.data_gaps


def test_score_displays_are_per_value() -> None:
    result = chart(
        observation("a", SPASTICITY, "psfs-frequency", valueInteger=0),
        observation("b", SPASTICITY, "psfs-frequency", valueDecimal=-0.0),
        observation("c", SPASTICITY, "spasticity-nrs", valueDecimal=2.5),
        observation("d", SPASTICITY, "spasticity-nrs", valueInteger=3),
    )
    assert [(s.source, s.display) for s in result.scores] == [
        ("Observation/a", "0"),
        ("Observation/b", "-0"),
        ("Observation/c", "2.5"),
        ("Observation/d", "3"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00+00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00.250Z", datetime(2026, 11, 20, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-11-20T10:00:00", None),  # no zone: refused, not guessed
        ("2026-02-30T10:00:00Z", None),
        ("yesterday at ten", None),
        (20261120, None),
    ],
)
def test_datetimes_are_read_in_utc(text: Any, expected: datetime | None) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is UTC


def test_an_observation_time_without_a_zone_is_a_gap() -> None:
    result = chart(mas(valueString="2", effective="2026-11-20T10:00:00"))
    assert result.scores == ()
    assert result.data_gaps == ("1 spasticity scores (no time) could not be read and were ignored",)


def test_a_component_coded_both_systolic_and_diastolic_is_systolic() -> None:
    both = {
        "coding": [{"system": LOINC, "code": "8462-4"}, {"system": LOINC, "code": "8480-6"}],
    }
    panel = observation(
        "bp", LOINC, "85354-9", component=[{"code": both, "valueQuantity": quantity(120, "mm[Hg]")}]
    )
    assert [(v.kind, v.value) for v in chart(panel).vitals] == [("systolic", 120.0)]


def test_a_sign_named_only_in_a_coding_display_is_read() -> None:
    itch = {
        **observation("i", "urn:local", "x"),
        "code": {"coding": [{"system": "urn:local", "code": "x", "display": "Itching"}]},
        "valueBoolean": True,
    }
    other = {**observation("o", "urn:local", "x"), "valueBoolean": True}
    assert [(s.kind, s.source) for s in chart(itch, other).clinical_signs] == [("pruritus", "Observation/i")]


@pytest.mark.parametrize("unit", [" MM[HG] ", "mm Hg", "mm[Hg]", "MMHG"])
def test_unit_spellings_normalise_the_same_every_time(unit: str) -> None:
    assert [pressure_mmhg(120, unit) for _ in range(3)] == [120.0, 120.0, 120.0]
    with pytest.raises(UnitError):
        pressure_mmhg(120, unit + "x")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "cannot be negative"),
        (-0.5, "cannot be negative"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
        (True, "is not a number"),
        ("120", "is not a number"),
    ],
)
def test_values_are_checked_on_every_path(value: Any, reason: str) -> None:
    with pytest.raises(UnitError, match=reason):
        volume_ml(value, "mL")


def test_ints_floats_and_negative_zero_pass_the_value_check() -> None:
    assert volume_ml(20, "mL") == 20.0 and type(volume_ml(20, "mL")) is float
    assert volume_ml(0.5, "L") == 500.0
    assert math.copysign(1.0, pressure_mmhg(-0.0, "mm[Hg]")) == -1.0
    assert temperature_cel(98.6, "[degF]") == pytest.approx(37.0)
    with pytest.raises(UnitError, match="not a finite number"):
        temperature_cel(math.nan, "Cel")
