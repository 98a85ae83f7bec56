"""Specification of scores, vital signs, eGFR and withdrawal signs read from Observations."""

from __future__ import annotations

import pytest
from loader_builders import LOINC, SPASTICITY, UCUM, chart, condition, observation, quantity


def mas(rid: str = "m1", **value: object) -> dict:
    """Return a MAS Observation."""
    return observation(rid, SPASTICITY, "mas", **value)


@pytest.mark.parametrize(
    ("value", "expected", "display"),
    [
        ({"valueString": "1+"}, 1.5, "1+"),
        ({"valueString": "2"}, 2.0, "2"),
        ({"valueCodeableConcept": {"coding": [{"system": "urn:x", "code": "1+"}]}}, 1.5, "1+"),
        ({"valueCodeableConcept": {"text": "1 +"}}, 1.5, "1+"),
        ({"valueDecimal": 1.5}, 1.5, "1+"),
        ({"valueInteger": 1}, 1.0, "1"),
        ({"valueQuantity": {"value": 3}}, 3.0, "3"),
    ],
)
def test_mas_grades_are_read_with_1_plus_as_one_and_a_half(
    value: dict, expected: float, display: str
) -> None:
    (score,) = chart(mas(**value)).scores
    assert (score.code, score.value, score.display) == ("mas", expected, display)


def test_mas_1_plus_is_never_read_as_1() -> None:
    assert chart(mas(valueString="1+")).scores[0].value != 1.0


@pytest.mark.parametrize("value", [{"valueInteger": 5}, {"valueString": "Not assessed"}])
def test_mas_5_means_not_assessed_and_is_skipped(value: dict) -> None:
    result = chart(mas(**value))
    assert result.scores == ()
    assert result.data_gaps == ()


@pytest.mark.parametrize("value", [{"valueDecimal": 2.5}, {"valueString": "moderate"}, {}])
def test_unreadable_mas_is_a_data_gap(value: dict) -> None:
    result = chart(mas(**value))
    assert result.scores == ()
    assert any("spasticity scores" in gap for gap in result.data_gaps)


def test_mas_components_are_summarised_by_the_highest_grade() -> None:
    components = [
        {"code": {"text": "Right elbow flexors"}, "valueString": "1+"},
        {"code": {"text": "Left knee extensors"}, "valueString": "3"},
        {"code": {"text": "Right ankle"}, "valueInteger": 5},
    ]
    (score,) = chart(mas(component=components)).scores
    assert (score.value, score.display) == (3.0, "3")
    assert score.components == (("Right elbow flexors", 1.5), ("Left knee extensors", 3.0))


@pytest.mark.parametrize(
    ("code", "value", "ok"),
    [
        ("psfs-frequency", 3, True),
        ("psfs-frequency", 5, False),
        ("psfs-severity", 0, False),
        ("spasticity-nrs", 6, True),
        ("spasticity-nrs", 11, False),
    ],
)
def test_psfs_and_nrs_are_range_checked(code: str, value: int, ok: bool) -> None:
    result = chart(observation("o", SPASTICITY, code, valueInteger=value))
    assert [s.value for s in result.scores] == ([float(value)] if ok else [])


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "cancelled", "registered"])
def test_only_final_amended_or_corrected_scores_count(status: str) -> None:
    assert chart(mas(valueString="2", status=status)).scores == ()


def test_scores_are_sorted_by_time_and_future_ones_ignored() -> None:
    result = chart(
        mas("late", valueString="2", effective="2026-11-20T10:00:00Z"),
        mas("early", valueString="3", effective="2026-06-01T10:00:00Z"),
        mas("future", valueString="4", effective="2027-01-01T10:00:00Z"),
    )
    assert [s.source for s in result.scores] == ["Observation/early", "Observation/late"]


def test_site_flowsheet_codes_map_to_scores(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from plugin.domain.codes import DEFAULT_CODES_PATH, load_code_sets
    from plugin.domain.loader import chart_from_resources

    site = Path(str(tmp_path)) / "codes.toml"
    site.write_text(
        DEFAULT_CODES_PATH.read_text(encoding="utf-8")
        + '\n[[scores.site_map]]\ncoding = "urn:oid:1.2.3|4711"\nscore = "mas"\n',
        encoding="utf-8",
    )
    from loader_builders import NOW, patient

    result = chart_from_resources(
        [patient(), observation("e", "urn:oid:1.2.3", "4711", valueDecimal=1.5)],
        codes=load_code_sets(site),
        now=NOW,
    )
    assert [(s.code, s.display) for s in result.scores] == [("mas", "1+")]


def test_temperature_in_fahrenheit_is_converted_to_celsius() -> None:
    temp = observation(
        "t",
        LOINC,
        "8310-5",
        valueQuantity={"value": 101.12, "unit": "degF", "system": UCUM, "code": "[degF]"},
    )
    (vital,) = chart(temp).vitals
    assert (vital.kind, vital.unit) == ("temperature", "Cel")
    assert vital.value == pytest.approx(38.4)


def test_blood_pressure_panel_and_standalone_pressures_are_read() -> None:
    panel = observation(
        "bp",
        LOINC,
        "85354-9",
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": quantity(85, "mm[Hg]"),
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": quantity(50, "mm[Hg]"),
            },
        ],
    )
    alone = observation(
        "sys", LOINC, "8480-6", valueQuantity=quantity(120, "mm[Hg]"), effective="2026-11-21T10:00:00Z"
    )
    vitals = chart(panel, alone).vitals
    assert sorted((v.kind, v.value) for v in vitals) == [
        ("diastolic", 50.0),
        ("systolic", 85.0),
        ("systolic", 120.0),
    ]


def test_vital_in_an_unknown_unit_is_a_data_gap_not_a_guess() -> None:
    temp = observation("t", LOINC, "8310-5", valueQuantity={"value": 311.0, "unit": "K"})
    result = chart(temp)
    assert result.vitals == ()
    assert any("vital signs" in gap for gap in result.data_gaps)


def test_latest_egfr_is_used() -> None:
    old = observation(
        "g1", LOINC, "33914-3", valueQuantity=quantity(80, "mL/min/{1.73_m2}"), effective="2025-01-01"
    )
    new = observation(
        "g2", LOINC, "98979-8", valueQuantity=quantity(25, "mL/min/{1.73_m2}"), effective="2026-10-01"
    )
    egfr = chart(old, new).egfr
    assert egfr is not None and (egfr.value, egfr.source) == (25.0, "Observation/g2")


def test_latest_egfr_that_is_only_a_bound_gives_no_egfr_and_a_gap() -> None:
    old = observation(
        "g1", LOINC, "33914-3", valueQuantity=quantity(80, "mL/min/{1.73_m2}"), effective="2025-01-01"
    )
    bound = {"value": 60, "comparator": "<", "unit": "mL/min/{1.73_m2}"}
    new = observation("g2", LOINC, "62238-1", valueQuantity=bound, effective="2026-10-01")
    result = chart(old, new)
    assert result.egfr is None
    assert any("eGFR" in gap for gap in result.data_gaps)


def test_withdrawal_signs_come_from_observation_and_condition_text() -> None:
    itch = {
        **observation("i", "urn:local", "x"),
        "code": {"text": "Pruritus, generalised"},
        "valueBoolean": True,
    }
    no_itch = {**observation("n", "urn:local", "y"), "code": {"text": "Itching"}, "valueBoolean": False}
    confused = condition("c", None, "Acute confusion", onsetDateTime="2026-11-30T08:00:00Z")
    signs = chart(itch, no_itch, confused).clinical_signs
    assert sorted((s.kind, s.source) for s in signs) == [
        ("altered-mental-status", "Condition/c"),
        ("pruritus", "Observation/i"),
    ]


def test_unrelated_observations_are_ignored_without_gaps() -> None:
    other = observation("x", LOINC, "2345-7", valueQuantity=quantity(5.4, "mmol/L"))
    result = chart(other)
    assert (result.scores, result.vitals, result.data_gaps) == ((), (), ())
