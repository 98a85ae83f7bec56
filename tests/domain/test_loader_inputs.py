"""Specification of the loader's inputs: Bundles, resource lists, CDS Hooks prefetch, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loader_builders import CODES, NOW, PID, patient, rate, request, statement

from plugin.cds.prefetch import prefetch_templates
from plugin.domain.chart import Origin
from plugin.domain.loader import ChartInputError, chart_from_bundle, chart_from_prefetch, chart_from_resources

FIXTURES = Path(__file__).parent / "fixtures"
# The one list of prefetch keys: what the CDS service advertises.
KEYS = tuple(prefetch_templates(CODES))
SANDBOX_PATIENTS = sorted(
    (Path(__file__).resolve().parents[2] / "config" / "sandbox" / "patients").glob("*.json")
)


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    """Return a Bundle of ``resources``."""
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


@pytest.mark.parametrize("kind", ["collection", "searchset", "transaction", "batch"])
def test_accepted_bundle_types_load(kind: str) -> None:
    result = chart_from_bundle(bundle(patient(), statement("s1"), kind=kind), codes=CODES, now=NOW)
    assert result.patient.reference == "Patient/p1"
    assert len(result.dose_records) == 1


@pytest.mark.parametrize("kind", ["document", "message", "history", "transaction-response", None])
def test_other_bundle_types_are_input_errors(kind: str | None) -> None:
    with pytest.raises(ChartInputError, match="cannot be checked"):
        chart_from_bundle(bundle(patient(), kind=kind), codes=CODES, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"resourceType": "Patient", "id": "p1"}, "not a FHIR Bundle"),
        ({"resourceType": "Bundle", "type": "collection", "entry": "x"}, "not a list"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [3]}, "not a JSON object"),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "x"}}]},
            "no resourceType",
        ),
        ([], "not a JSON object"),
    ],
)
def test_unreadable_input_is_an_input_error(payload: Any, reason: str) -> None:
    with pytest.raises(ChartInputError, match=reason):
        chart_from_bundle(payload, codes=CODES, now=NOW)


def test_no_patient_is_an_input_error() -> None:
    with pytest.raises(ChartInputError, match="no Patient"):
        chart_from_bundle(bundle(statement("s1")), codes=CODES, now=NOW)


def test_two_patients_are_an_input_error() -> None:
    with pytest.raises(ChartInputError, match="more than one Patient"):
        chart_from_bundle(bundle(patient("p1"), patient("p2")), codes=CODES, now=NOW)


@pytest.mark.parametrize(
    "subject",
    [{"reference": "Patient/p2"}, {"identifier": {"value": "123"}}, {"reference": "Group/g1"}],
)
def test_resources_of_another_patient_are_an_input_error(subject: dict[str, Any]) -> None:
    with pytest.raises(ChartInputError, match="another patient"):
        chart_from_bundle(bundle(patient(), statement("s1", subject=subject)), codes=CODES, now=NOW)


def test_absolute_subject_references_to_the_patient_are_accepted() -> None:
    subject = {"reference": "https://ehr.example/fhir/Patient/p1/_history/3"}
    result = chart_from_bundle(bundle(patient(), statement("s1", subject=subject)), codes=CODES, now=NOW)
    assert len(result.dose_records) == 1


def test_patient_id_must_match_the_patient() -> None:
    with pytest.raises(ChartInputError, match="not the patient"):
        chart_from_resources([patient()], codes=CODES, now=NOW, patient_id="other")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        chart_from_resources([patient()], codes=CODES, now=NOW.replace(tzinfo=None))


def test_duplicates_from_two_searches_are_read_once() -> None:
    result = chart_from_resources([patient(), statement("s1"), statement("s1")], codes=CODES, now=NOW)
    assert len(result.dose_records) == 1


def test_transaction_with_urn_uuid_references_and_contained_medication() -> None:
    payload = json.loads((FIXTURES / "transaction_urn_uuid.json").read_text(encoding="utf-8"))
    result = chart_from_bundle(payload, codes=CODES, now=NOW)
    assert result.patient.reference == "urn:uuid:7f1e6c1a-0000-4000-8000-000000000001"
    assert result.patient.name == "Test Person"
    (record,) = result.dose_records
    assert record.daily_dose_ug == pytest.approx(300.0)  # 0.0125 mL/h x 24 h x 1000 ug/mL
    assert record.concentration_ug_per_ml == 1000.0
    assert result.origin == Origin.SPINAL


def searchset(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    """Return a searchset Bundle, with a next link when given."""
    result = bundle(*resources, kind="searchset")
    if next_url:
        result["link"] = [{"relation": "next", "url": next_url}]
    return result


def test_prefetch_builds_the_chart_and_returns_nothing_missing_when_complete() -> None:
    prefetch: dict[str, Any] = {key: searchset() for key in KEYS}
    prefetch["patient"] = patient()
    prefetch["medicationRequests"] = searchset(request("r1", rate(350, "ug/d")))
    result, missing = chart_from_prefetch(prefetch, keys=KEYS, codes=CODES, now=NOW, patient_id=PID)
    assert missing == []
    assert result.dose_records[0].daily_dose_ug == 350.0
    assert result.data_gaps == ()


def test_prefetch_null_outcome_paged_and_absent_keys_are_returned_to_fetch() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
    prefetch: dict[str, Any] = {key: searchset() for key in KEYS if key != "vitals"}
    prefetch["patient"] = patient()
    prefetch["medicationRequests"] = searchset(request("r1"), next_url="https://ehr.example/fhir?page=2")
    prefetch["medicationStatements"] = None
    prefetch["scores"] = outcome
    result, missing = chart_from_prefetch(prefetch, keys=KEYS, codes=CODES, now=NOW, patient_id=PID)
    assert sorted(missing) == ["medicationRequests", "medicationStatements", "scores", "vitals"]
    assert len(result.dose_records) == 1  # the first page is still read
    assert len(result.data_gaps) == 4


def test_prefetch_without_patient_keeps_the_reference_and_asks_for_it() -> None:
    result, missing = chart_from_prefetch({"patient": None}, keys=KEYS, codes=CODES, now=NOW, patient_id=PID)
    assert result.patient.reference == "Patient/p1" and result.patient.name is None
    assert "patient" in missing


def test_prefetch_of_another_patient_is_an_input_error() -> None:
    with pytest.raises(ChartInputError):
        chart_from_prefetch(
            {"medicationStatements": searchset(statement("s1", subject={"reference": "Patient/zz"}))},
            keys=KEYS,
            codes=CODES,
            now=NOW,
            patient_id=PID,
        )


@pytest.mark.skipif(not SANDBOX_PATIENTS, reason="no sandbox patients generated yet")
@pytest.mark.parametrize("path", SANDBOX_PATIENTS, ids=lambda p: p.stem)
def test_every_sandbox_patient_loads(path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    result = chart_from_bundle(payload, codes=CODES, now=NOW)
    assert result.patient.reference.startswith("Patient/")
    assert result.data_gaps == ()


def test_an_element_of_the_wrong_json_type_is_an_input_error_not_a_crash() -> None:
    """A coding whose system is a list (FHIR says string) must give a one-line input error."""
    from datetime import UTC, datetime

    from plugin.domain.codes import load_code_sets
    from plugin.domain.loader import ChartInputError, chart_from_bundle

    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "o",
                    "status": "final",
                    "subject": {"reference": "Patient/p"},
                    "code": {"coding": [{"system": ["not", "a", "string"], "code": {"x": 1}}]},
                    "effectiveDateTime": "2026-11-01T00:00:00Z",
                }
            },
        ],
    }
    with pytest.raises(ChartInputError, match="wrong JSON type"):
        chart_from_bundle(bundle, codes=load_code_sets(), now=datetime(2026, 12, 1, tzinfo=UTC))
