"""Specification of the sandbox's synthetic patients (config/sandbox): format, integrity, determinism."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from plugin.domain.rules_config import FINDING_CODES as RULE_FINDING_CODES

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "config" / "sandbox"
PATIENT_FILES = sorted((SANDBOX / "patients").glob("*.json"))
MANIFEST = tomllib.loads((SANDBOX / "manifest.toml").read_text(encoding="utf-8"))
ANCHOR = "2026-12-01T12:00:00Z"
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
FINDING_CODES = set(RULE_FINDING_CODES)  # CONTRACT §4


def load(path: Path) -> dict[str, Any]:
    """Read one patient Bundle."""
    bundle: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return bundle


def walk(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Yield every (key, value) pair in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def by_id(pid: str) -> dict[str, Any]:
    """Return a patient's Bundle by its manifest id."""
    return load(SANDBOX / "patients" / f"{pid}.json")


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """Return the bundle's resources of one type."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_there_are_at_least_13_patients() -> None:
    assert len(PATIENT_FILES) >= 13


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.stem)
def test_each_resource_parses_with_fhir_r4b(path: Path) -> None:
    bundle = load(path)
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.stem)
def test_bundle_is_a_put_transaction_with_the_patient_first(path: Path) -> None:
    bundle = load(path)
    assert bundle["type"] == "transaction"
    first = bundle["entry"][0]["resource"]
    assert (first["resourceType"], first["id"]) == ("Patient", path.stem)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert "fullUrl" not in entry
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert ID_PATTERN.match(resource["id"])
        assert resource["id"] == path.stem or f"-{path.stem}-" in resource["id"]


def test_ids_are_unique_across_all_files() -> None:
    ids = [e["resource"]["id"] for path in PATIENT_FILES for e in load(path)["entry"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.stem)
def test_every_reference_resolves_within_the_bundle(path: Path) -> None:
    bundle = load(path)
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    references = [v for k, v in walk(bundle) if k == "reference"]
    assert references
    for ref in references:
        assert ref in present or ref.startswith("Practitioner/"), ref
    subjects = {v["reference"] for k, v in walk(bundle) if k in ("subject", "patient")}
    assert subjects == {f"Patient/{path.stem}"}


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.stem)
def test_clinical_times_are_full_utc_datetimes_up_to_the_anchor(path: Path) -> None:
    for key, value in walk(load(path)):
        if isinstance(value, str) and DATETIME.match(value):
            assert value.endswith("Z"), (key, value)
            if key != "valueDateTime":  # next-refill-date is the only future time
                assert value <= ANCHOR, (key, value)


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.stem)
def test_the_sandbox_date_shift_moves_every_date(path: Path) -> None:
    dates = pytest.importorskip("smart_launch.sandbox.dates")
    bundle = load(path)

    def dated(node: Any) -> list[str]:
        return [v for _, v in walk(node) if isinstance(v, str) and FULL_DATE.match(v)]

    before, after = dated(bundle), dated(dates.shift_dates(bundle, 1))
    assert len(before) == len(after)
    assert all(a != b for a, b in zip(before, after, strict=True))


def test_manifest_lists_every_file_and_only_those() -> None:
    assert MANIFEST["anchor"] == ANCHOR
    listed = {p["file"] for p in MANIFEST["patients"]}
    assert listed == {f"patients/{p.name}" for p in PATIENT_FILES}
    for entry in MANIFEST["patients"]:
        assert entry["file"] == f"patients/{entry['id']}.json"
        assert entry["name"] and entry["summary"] and "\n" not in entry["summary"]
        assert set(entry["tenants"]) <= {"full", "epic-like"} and "full" in entry["tenants"]


def test_manifest_expectations_use_contract_finding_codes() -> None:
    for entry in MANIFEST["patients"]:
        expect = entry["expect"]
        assert expect["proposed_ug_per_day"] > 0
        assert set(expect["findings"]) <= FINDING_CODES, entry["id"]
        assert expect["verdict"] in {"pass", "warn", "block", "cannot-check"}


def test_epic_only_has_no_medication_statement_but_an_active_request() -> None:
    bundle = by_id("epic-only")
    assert not resources(bundle, "MedicationStatement")
    assert [r for r in resources(bundle, "MedicationRequest") if r["status"] == "active"]


def test_every_intrathecal_patient_has_requests_matching_statements_for_the_epic_like_tenant() -> None:
    for entry in MANIFEST["patients"]:
        bundle = by_id(entry["id"])
        statements = {
            r["dosage"][0]["text"]
            for r in resources(bundle, "MedicationStatement")
            if r["status"] == "active"
        }
        requests = {
            r["dosageInstruction"][0]["text"]
            for r in resources(bundle, "MedicationRequest")
            if r["status"] == "active"
        }
        assert statements <= requests, entry["id"]


def test_ages_at_the_anchor_match_the_scenarios() -> None:
    def age(pid: str) -> int:
        born = date.fromisoformat(by_id(pid)["entry"][0]["resource"]["birthDate"])
        return 2026 - born.year - ((born.month, born.day) > (12, 1))

    assert age("cp-child-3") == 3
    assert age("cp-child-9") == 9


def test_oral_only_has_no_intrathecal_record() -> None:
    bundle = by_id("oral-only")
    assert not resources(bundle, "Medication") and not resources(bundle, "Device")
    assert all(
        d["route"] == {"text": "oral"} for _, d in walk(bundle) if isinstance(d, dict) and "route" in d
    )


def test_pump_observations_use_the_pump_codesystem_codes() -> None:
    codes = {
        c["code"]
        for path in PATIENT_FILES
        for obs in resources(load(path), "Observation")
        for c in obs["code"].get("coding", [])
        if c["system"] == "http://itb-dose-check.org/CodeSystem/pump"
    }
    assert codes == {
        "reservoir-capacity",
        "fill-volume",
        "low-reservoir-alarm-volume",
        "next-refill-date",
        "concentration",
    }


def test_generator_is_deterministic(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "make_sandbox_patients.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True)  # noqa: S603
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(SANDBOX) for p in [SANDBOX / "manifest.toml", *PATIENT_FILES])
    assert generated == committed
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (SANDBOX / rel).read_bytes(), rel


def test_sandbox_stays_small() -> None:
    total = sum(p.stat().st_size for p in [SANDBOX / "manifest.toml", *PATIENT_FILES])
    assert total < 1_000_000
