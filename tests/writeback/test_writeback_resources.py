"""The FHIR resources of a submission: R4B-valid, idempotent identifiers, EHR quirks honoured."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B import get_fhir_model_class
from writeback_support import BASE, NOW, note_input, write_context

from plugin.writeback.codes import FINDING_SYSTEM, OVERRIDE_REASON_SYSTEM, WRITE_IDENTIFIER_SYSTEM
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import render_note
from plugin.writeback.readback import dropped_paths
from plugin.writeback.resources import WriteBackSettings, validate_resource, write_id_of
from plugin.writeback.submission import build_submission


def submission(verdict: str = "warn", **settings: object) -> list[dict]:
    """Return the resources of the default note."""
    return build_submission(
        note_input(verdict), context=write_context(), settings=WriteBackSettings(**settings)
    )


def by_type(resources: list[dict], resource_type: str) -> list[dict]:
    """Return the resources of one type."""
    return [r for r in resources if r["resourceType"] == resource_type]


def test_every_built_resource_validates_with_r4b() -> None:
    resources = submission()
    assert [r["resourceType"] for r in resources] == [
        "DocumentReference",
        "DetectedIssue",
        "DetectedIssue",
        "DetectedIssue",
        "QuestionnaireResponse",
        "Provenance",
    ]
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_every_resource_carries_a_distinct_uuid_write_id() -> None:
    ids = [write_id_of(r) for r in submission()]
    assert all(ids) and len(set(ids)) == len(ids)
    assert all(len(str(i)) == 36 for i in ids)


def test_the_document_reference_puts_plain_text_first_for_epic() -> None:
    [document] = by_type(submission(), "DocumentReference")
    assert (document["status"], document["docStatus"]) == ("current", "final")
    assert document["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "11506-3",
        "display": "Progress note",
    }
    assert [c["attachment"]["contentType"] for c in document["content"]] == ["text/plain", "text/html"]
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert text == render_note(note_input()).text
    assert document["subject"] == {"reference": "Patient/123"}
    assert document["author"] == [{"reference": "Practitioner/9"}]  # Epic's absolute fhirUser made relative
    assert document["context"]["encounter"] == [{"reference": "Encounter/enc-1"}]
    assert document["identifier"][0]["system"] == WRITE_IDENTIFIER_SYSTEM
    assert "T" in document["date"] and "T" in document["content"][0]["attachment"]["creation"]


def test_the_note_type_and_attachments_follow_site_settings() -> None:
    [document] = by_type(submission(note_type_loinc="11488-4", html_attachment=False), "DocumentReference")
    assert document["type"]["coding"][0]["display"] == "Consult note"
    assert len(document["content"]) == 1


def test_without_an_encounter_in_context_there_is_no_document_context() -> None:
    resources = build_submission(
        note_input(), context=write_context(encounter_id=None), settings=WriteBackSettings()
    )
    assert "context" not in by_type(resources, "DocumentReference")[0]


def test_detected_issues_code_each_finding_with_severity_evidence_and_the_override() -> None:
    issues = by_type(submission(), "DetectedIssue")
    assert [i["code"]["coding"][0]["code"] for i in issues] == [
        "cns-depressant",
        "oral-baclofen-active",
        "origin-unknown",
    ]
    assert [i["severity"] for i in issues] == ["moderate", "low", "moderate"]
    first = issues[0]
    assert first["code"]["coding"][0]["system"] == FINDING_SYSTEM
    assert first["patient"] == {"reference": "Patient/123"}
    assert first["implicated"] == [{"reference": "MedicationStatement/abc"}]
    assert first["evidence"][0]["detail"] == [{"reference": "MedicationRequest/opioid-1"}]
    assert first["detail"] == "An opioid is active; watch for sedation."
    action = first["mitigation"][0]["action"]
    assert {
        "system": OVERRIDE_REASON_SYSTEM,
        "code": "benefit-outweighs-risk",
        "display": "Clinical benefit outweighs the risk for this patient",
    } in action["coding"]
    assert "Opioid dose is stable and low." in action["text"]
    assert "mitigation" not in issues[1]  # info findings need no override


def test_a_block_finding_is_a_high_severity_issue() -> None:
    from writeback_support import check_result

    result = check_result(
        "block",
        findings=[
            {"code": "increase-over-limit", "severity": "block", "message": "Too much.", "evidence": []}
        ],
    )
    resources = build_submission(
        note_input("block", check_result=result), context=write_context(), settings=WriteBackSettings()
    )
    [issue] = by_type(resources, "DetectedIssue")
    assert issue["severity"] == "high" and "detail" not in issue["evidence"][0]


def test_provenance_targets_the_submission_by_placeholder_and_names_the_author() -> None:
    resources = submission()
    [provenance] = by_type(resources, "Provenance")
    expected = [f"urn:uuid:{write_id_of(r)}" for r in resources if r["resourceType"] != "Provenance"]
    assert [t["reference"] for t in provenance["target"]] == expected
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/9"}
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"
    assert provenance["meta"]["tag"][0]["system"] == WRITE_IDENTIFIER_SYSTEM  # no identifier in R4


def test_a_check_about_another_patient_is_refused() -> None:
    with pytest.raises(WriteBackInputError, match="another patient"):
        build_submission(note_input(), context=write_context(patient_id="999"), settings=WriteBackSettings())


def test_validate_resource_refuses_an_invalid_resource() -> None:
    with pytest.raises(WriteBackInputError, match="invalid DocumentReference"):
        validate_resource({"resourceType": "DocumentReference", "content": []})


def test_read_back_reports_only_what_is_missing() -> None:
    sent = {
        "resourceType": "DocumentReference",
        "status": "current",
        "date": "2026-11-20T10:00:00Z",
        "content": [
            {"attachment": {"contentType": "text/plain", "data": "aGk="}},
            {"attachment": {"contentType": "text/html", "data": "aGk="}},
        ],
        "context": {"encounter": [{"reference": "Encounter/1"}], "period": {"start": "2026-11-20"}},
        "text": {"status": "generated", "div": "<div/>"},
    }
    returned = {
        "resourceType": "DocumentReference",
        "id": "x",
        "meta": {"versionId": "1"},
        "status": "current",
        "date": "2026-11-20T05:00:00-05:00",  # normalised, not dropped
        "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/1"}}],  # moved to a Binary
        "context": {"period": {"start": "2026-11-20"}},
    }
    assert dropped_paths(sent, returned) == ["content[1]", "context.encounter"]


def test_write_context_normalises_an_absolute_fhir_user() -> None:
    assert write_context().author_reference == "Practitioner/9"
    assert write_context(fhir_user="Practitioner/7").author_reference == "Practitioner/7"
    assert write_context(fhir_user=f"{BASE}/Practitioner/1", now=NOW).patient_reference == "Patient/123"
