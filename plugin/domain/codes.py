"""Code sets from ``config/codes.toml``, precompiled into sets, dicts and regexes for fast matching.

The loader asks questions such as "is this coding intrathecal route?" thousands of times per chart, so
every coding list becomes a ``frozenset`` of ``(system, code)`` pairs and every text pattern list one
compiled regex (patterns match case-insensitively at the start of a word). Which codes are verified and
which are text-only is recorded in the TOML file itself, next to the clinical.md section it cites.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

Coding = tuple[str, str]

CODES_PATH_ENV = "ITB_CODES_PATH"
DEFAULT_CODES_PATH = Path(__file__).resolve().parents[2] / "config" / "codes.toml"

SCORE_CODES = frozenset({"mas", "psfs-frequency", "psfs-severity", "spasticity-nrs"})
PUMP_FIELDS = frozenset(
    {
        "reservoir_capacity_ml",
        "fill_volume_ml",
        "low_reservoir_alarm_volume_ml",
        "next_refill_date",
        "concentration_ug_per_ml",
    }
)


class CodeSetError(ValueError):
    """``codes.toml`` is malformed; the message names the section."""


@dataclass(frozen=True, slots=True)
class TextMatcher:
    """Case-insensitive word-start patterns, with optional exclusions (e.g. "not pregnant")."""

    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None = None

    def matches(self, text: str | None) -> bool:
        """Return whether ``text`` matches an include pattern and no exclude pattern."""
        if not text or self.include is None or self.include.search(text) is None:
            return False
        return self.exclude is None or self.exclude.search(text) is None


@dataclass(frozen=True, slots=True)
class ConceptSet:
    """A concept recognised by coding or, failing that, by text."""

    codings: frozenset[Coding]
    text: TextMatcher

    def matches(self, codings: Iterable[Coding], texts: Iterable[str]) -> bool:
        """Return whether any coding is in the set or any text matches the patterns."""
        if self.codings and not self.codings.isdisjoint(codings):
            return True
        return any(self.text.matches(text) for text in texts)


@dataclass(frozen=True, slots=True)
class CodeSets:
    """Every code set the loader uses, precompiled. Build with ``load_code_sets``."""

    baclofen: ConceptSet
    intrathecal_products: ConceptSet
    intrathecal_route: ConceptSet
    score_codes: Mapping[Coding, str]
    mas_grades: Mapping[str, float]
    mas_numeric: frozenset[float]
    mas_not_assessed: frozenset[str]
    score_ranges: Mapping[str, tuple[float, float]]
    spinal: ConceptSet
    cerebral: ConceptSet
    pregnancy: ConceptSet
    signs: Mapping[str, ConceptSet]
    cns_classes: tuple[tuple[str, TextMatcher], ...]
    temperature: frozenset[Coding]
    bp_panel: frozenset[Coding]
    systolic: frozenset[Coding]
    diastolic: frozenset[Coding]
    egfr: frozenset[Coding]
    pump_device_text: TextMatcher
    pump_observations: Mapping[Coding, str]
    implant_procedure: TextMatcher
    refill_procedure: TextMatcher
    procedure_context: TextMatcher
    # (system, code) -> (kind, detail) for one dict lookup per Observation coding:
    # ("score", "mas"), ("temperature", ""), ("bp-panel", ""), ("systolic", ""), ("diastolic", ""),
    # ("egfr", ""), ("pump", "fill_volume_ml"), ("sign", "pruritus").
    observation_kinds: Mapping[Coding, tuple[str, str]]

    def classify_drug(self, name: str) -> frozenset[str]:
        """Return the CNS-depressant classes a medication name belongs to (may be empty)."""
        return frozenset(cls for cls, matcher in self.cns_classes if matcher.matches(name))


def _matcher(patterns: Iterable[str], exclude: Iterable[str] = ()) -> TextMatcher:
    """Compile include and exclude pattern lists into one word-start regex each."""

    def compile_all(items: Iterable[str]) -> re.Pattern[str] | None:
        words = sorted({item.lower() for item in items if item}, key=len, reverse=True)
        if not words:
            return None
        return re.compile(r"\b(?:" + "|".join(re.escape(word) for word in words) + ")", re.IGNORECASE)

    return TextMatcher(compile_all(patterns), compile_all(exclude))


class _Reader:
    """Reads one parsed codes.toml, expanding short system names and naming the section on errors."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        systems = data.get("systems", {})
        self.systems = {k: v for k, v in systems.items() if isinstance(v, str) and k != "source"}

    def section(self, dotted: str) -> Mapping[str, Any]:
        """Return the table at a dotted path such as ``signs.pruritus``."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise CodeSetError(f"codes.toml: missing section [{dotted}]")
            node = node[part]
        if not isinstance(node, Mapping):
            raise CodeSetError(f"codes.toml: [{dotted}] is not a table")
        return node

    def strings(self, dotted: str, key: str) -> list[str]:
        """Return a list of strings from a section (empty when absent)."""
        values = self.section(dotted).get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise CodeSetError(f"codes.toml: [{dotted}].{key} must be a list of strings")
        return values

    def coding(self, token: str, where: str) -> Coding:
        """Expand ``"sct|72607000"`` into ``("http://snomed.info/sct", "72607000")``."""
        system, bar, code = token.partition("|")
        if not bar or not system or not code:
            raise CodeSetError(f"codes.toml: [{where}] coding '{token}' is not 'system|code'")
        return self.systems.get(system, system), code

    def codings(self, dotted: str, key: str = "codings") -> frozenset[Coding]:
        """Return a section's coding list as a set of (system, code) pairs."""
        return frozenset(self.coding(token, dotted) for token in self.strings(dotted, key))

    def concept(self, dotted: str, text_key: str = "text_patterns") -> ConceptSet:
        """Return a section's codings and text patterns as a ConceptSet."""
        return ConceptSet(
            self.codings(dotted),
            _matcher(self.strings(dotted, text_key), self.strings(dotted, "exclude_text_patterns")),
        )

    def mapped(self, dotted: str, key: str, value_key: str, allowed: frozenset[str]) -> dict[Coding, str]:
        """Return ``[{coding = .., <value_key> = ..}]`` entries as a dict, checking the values."""
        entries = self.section(dotted).get(key, [])
        result: dict[Coding, str] = {}
        for entry in entries:
            value = entry.get(value_key) if isinstance(entry, Mapping) else None
            if value not in allowed or not isinstance(entry.get("coding"), str):
                raise CodeSetError(f"codes.toml: [{dotted}].{key} entry {entry!r} is invalid")
            result[self.coding(entry["coding"], dotted)] = value
        return result


def _build(data: Mapping[str, Any]) -> CodeSets:
    """Precompile parsed TOML into CodeSets."""
    r = _Reader(data)
    score_codes = r.mapped("scores", "codings", "score", SCORE_CODES)
    score_codes.update(r.mapped("scores", "site_map", "score", SCORE_CODES))
    mas = r.section("scores.mas")
    grades = {str(k).replace(" ", "").lower(): float(v) for k, v in mas.get("grades", {}).items()}
    ranges = {
        k: (float(v[0]), float(v[1])) for k, v in r.section("scores.ranges").items() if isinstance(v, list)
    }
    sign_names = [name for name in r.section("signs") if isinstance(r.section("signs")[name], Mapping)]
    signs = {name: r.concept(f"signs.{name}") for name in sign_names}
    cns = r.section("cns_depressants")
    cns_classes = tuple(
        (name, _matcher(r.strings("cns_depressants", name))) for name in cns if isinstance(cns[name], list)
    )
    pump_observations = r.mapped("pump", "observation_codings", "field", PUMP_FIELDS)
    vitals = {kind: r.codings("vitals", f"{kind}_codings") for kind in ("temperature", "bp_panel")}
    vitals.update({kind: r.codings("vitals", f"{kind}_codings") for kind in ("systolic", "diastolic")})
    egfr = r.codings("egfr")

    kinds: dict[Coding, tuple[str, str]] = {}
    for sign_name, concept in signs.items():
        kinds.update({coding: ("sign", sign_name) for coding in concept.codings})
    kinds.update({coding: ("pump", field) for coding, field in pump_observations.items()})
    kinds.update({coding: ("egfr", "") for coding in egfr})
    for kind, codings in vitals.items():
        kinds.update({coding: (kind.replace("_", "-"), "") for coding in codings})
    kinds.update({coding: ("score", score) for coding, score in score_codes.items()})

    procedures = "procedures"
    return CodeSets(
        baclofen=r.concept("baclofen", "name_patterns"),
        intrathecal_products=r.concept("baclofen.intrathecal_products", "name_patterns"),
        intrathecal_route=r.concept("route.intrathecal"),
        score_codes=MappingProxyType(score_codes),
        mas_grades=MappingProxyType(grades),
        mas_numeric=frozenset(float(v) for v in mas.get("numeric", [])),
        mas_not_assessed=frozenset(str(v).replace(" ", "").lower() for v in mas.get("not_assessed", [])),
        score_ranges=MappingProxyType(ranges),
        spinal=ConceptSet(
            r.codings("origin", "spinal_codings"), _matcher(r.strings("origin", "spinal_text_patterns"))
        ),
        cerebral=ConceptSet(
            r.codings("origin", "cerebral_codings"), _matcher(r.strings("origin", "cerebral_text_patterns"))
        ),
        pregnancy=r.concept("pregnancy"),
        signs=MappingProxyType(signs),
        cns_classes=cns_classes,
        temperature=vitals["temperature"],
        bp_panel=vitals["bp_panel"],
        systolic=vitals["systolic"],
        diastolic=vitals["diastolic"],
        egfr=egfr,
        pump_device_text=_matcher(r.strings("pump", "device_text_patterns")),
        pump_observations=MappingProxyType(pump_observations),
        implant_procedure=_matcher(r.strings(procedures, "implant_text_patterns")),
        refill_procedure=_matcher(r.strings(procedures, "refill_text_patterns")),
        procedure_context=_matcher(r.strings(procedures, "context_text_patterns")),
        observation_kinds=MappingProxyType(kinds),
    )


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> CodeSets:
    """Read and precompile one codes.toml (cached per path and modification time)."""
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise CodeSetError(f"codes.toml ({path.name}) is not valid TOML: {error}") from error
    return _build(data)


def load_code_sets(path: Path | None = None) -> CodeSets:
    """Load the code sets from ``path``, ``$ITB_CODES_PATH`` or ``config/codes.toml`` (cached)."""
    if path is None:
        env_path = os.environ.get(CODES_PATH_ENV)
        path = Path(env_path) if env_path else DEFAULT_CODES_PATH
    resolved = path.resolve()
    return _load_cached(resolved, resolved.stat().st_mtime_ns)
