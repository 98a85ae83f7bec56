"""Specification of config/codes.toml and its precompiled CodeSets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from plugin.domain.codes import DEFAULT_CODES_PATH, CodeSetError, load_code_sets

SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_default_code_sets_hold_the_contract_codes() -> None:
    codes = load_code_sets()
    assert (RXNORM, "1292") in codes.baclofen.codings
    assert (SCT, "387342009") in codes.baclofen.codings
    assert {(RXNORM, "1300890"), (RXNORM, "1666613")} <= codes.intrathecal_products.codings
    assert (SCT, "72607000") in codes.intrathecal_route.codings
    assert codes.mas_grades["1+"] == 1.5
    assert {(SCT, "90584004"), (SCT, "24700007")} == codes.spinal.codings
    assert {(SCT, "128188000"), (SCT, "127295002"), (SCT, "230690007")} == codes.cerebral.codings
    assert set(codes.pump_observations.values()) == {
        "reservoir_capacity_ml",
        "fill_volume_ml",
        "low_reservoir_alarm_volume_ml",
        "next_refill_date",
        "concentration_ug_per_ml",
    }


def test_every_section_cites_its_source_and_unverified_codes_are_marked() -> None:
    text = DEFAULT_CODES_PATH.read_text(encoding="utf-8")
    data = tomllib.loads(text)

    def tables(node: dict, path: str = "") -> list[tuple[str, dict]]:
        found = [(path, node)] if path else []
        for key, value in node.items():
            if isinstance(value, dict) and key != "grades":
                found += tables(value, f"{path}.{key}".strip("."))
        return found

    top_level = [(p, t) for p, t in tables(data) if "." not in p]
    assert all("source" in table for _path, table in top_level)
    assert "1292" in text and "UNVERIFIED" in text
    assert "text only" in text  # signs and pregnancy have no verified codes


def test_text_patterns_match_at_word_start_case_insensitively() -> None:
    codes = load_code_sets()
    assert codes.intrathecal_route.text.matches("INTRATHECAL")
    assert codes.signs["pruritus"].text.matches("Pruritic rash")
    assert not codes.signs["pruritus"].text.matches("No itching reported")
    assert codes.classify_drug("LORazepam 1 mg") == frozenset({"benzodiazepine"})
    assert codes.classify_drug("paracetamol") == frozenset()


def test_code_sets_are_cached() -> None:
    assert load_code_sets() is load_code_sets()


def test_environment_variable_overrides_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "codes.toml"
    site.write_text(
        DEFAULT_CODES_PATH.read_text(encoding="utf-8").replace(
            '"gabapentin", "pregabalin"', '"gabapentin", "mirogabalin"'
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("ITB_CODES_PATH", str(site))
    assert load_code_sets().classify_drug("mirogabalin") == frozenset({"gabapentinoid"})


@pytest.mark.parametrize(
    ("replace", "by"),
    [
        ('codings = ["sct|72607000"]', 'codings = ["72607000"]'),
        ("[origin]", "[origin_gone]"),
        ('score = "mas"', 'score = "x"'),
    ],
)
def test_malformed_code_sets_name_the_problem(tmp_path: Path, replace: str, by: str) -> None:
    site = tmp_path / "codes.toml"
    site.write_text(DEFAULT_CODES_PATH.read_text(encoding="utf-8").replace(replace, by, 1), encoding="utf-8")
    with pytest.raises(CodeSetError, match="codes.toml"):
        load_code_sets(site)


def test_invalid_toml_is_a_code_set_error(tmp_path: Path) -> None:
    site = tmp_path / "codes.toml"
    site.write_text("[broken", encoding="utf-8")
    with pytest.raises(CodeSetError):
        load_code_sets(site)
