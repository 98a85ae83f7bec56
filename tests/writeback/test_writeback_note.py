"""The dose-change note (text and HTML) and its QuestionnaireResponse carry every clinical.md §8 field."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from writeback_support import NOW, check_result, note_input

from plugin.writeback.codes import QUESTIONNAIRE_URL, TEMPLATES_DIR, override_reasons
from plugin.writeback.errors import WriteBackInputError
from plugin.writeback.note import render_note
from plugin.writeback.questionnaire import load_questionnaire, questionnaire_response

SECTION_8_FIELDS = [
    "Current dose: 400 mcg/day (16.667 mcg/h)",
    "New dose: 480 mcg/day (20 mcg/h)",
    "Change: +20 %",
    "Phase: maintenance",
    "Origin of spasticity: spinal",
    "Concentration: 2000 mcg/mL",
    "Reservoir volume: 20 mL",
    "Volume remaining: 12.5 mL",
    "Low-reservoir alarm volume: 2 mL",
    "New low-reservoir alarm date (at the new dose): 2027-01-31",
    "Next refill date: 2027-02-14",
    "Modified Ashworth Scale (Bohannon & Smith: 0, 1, 1+, 2, 3, 4): 1+ (2026-11-01 09:30 UTC)",
    "Spasticity numeric rating scale (0-10): 6 (2026-10-15 08:00 UTC)",
    "Rationale: Spasms still wake the patient twice a night.",
    "Side effects reviewed: No drowsiness, no hypotonia.",
    "Withdrawal and overdose education given: yes",
    "Oral baclofen rescue plan: Oral baclofen 10 mg three times daily",
    "Monitoring plan: Phone review in 48 hours; clinic in 2 weeks.",
    "Verdict: WARN",
    "[warn] cns-depressant: An opioid is active; watch for sedation.",
    "[info] oral-baclofen-active: Oral baclofen is active alongside the pump.",
    "OVERRIDE",
    "The clinician went ahead despite the warn result above.",
    "Overridden by: Dr Ada Example on 2026-11-20 10:00 UTC",
    "Reason: Clinical benefit outweighs the risk for this patient [benefit-outweighs-risk]",
    "Comment: Opioid dose is stable and low.",
]


@pytest.mark.parametrize("field", SECTION_8_FIELDS)
def test_the_text_note_contains_each_section_8_field(field: str) -> None:
    assert field in render_note(note_input()).text


def test_the_html_note_contains_the_same_fields_escaped() -> None:
    html = render_note(note_input(rationale="Spasms <worse> & painful")).html
    assert "Spasms &lt;worse&gt; &amp; painful" in html
    assert "<code>cns-depressant</code>" in html
    for value in ("400 mcg/day", "2027-01-31", "12.5 mL", "Opioid dose is stable and low."):
        assert value in html


def test_a_pass_needs_no_override_section() -> None:
    note = note_input("pass", override_reason_code=None, override_reason_display=None, attested=False)
    text = render_note(note).text
    assert "Verdict: PASS" in text and "OVERRIDE" not in text


def test_missing_chart_values_say_not_recorded_instead_of_blank() -> None:
    result = check_result(
        "cannot-check",
        findings=[
            {
                "code": "current-dose-unknown",
                "severity": "cannot-check",
                "message": "No current dose.",
                "evidence": [],
            }
        ],
    )
    result["current_dose"] = None
    result["change_percent"] = None
    text = render_note(note_input(check_result=result, chart_summary={})).text
    assert "Current dose: not recorded mcg/day" in text
    assert "Change: not computable" in text
    assert "Next refill date: not recorded" in text
    assert "- none recorded" in text


def test_a_block_is_refused_without_the_attestation() -> None:
    with pytest.raises(WriteBackInputError, match="attestation"):
        render_note(note_input("block", attested=False))


@pytest.mark.parametrize("verdict", ["warn", "cannot-check"])
def test_warn_and_cannot_check_need_a_coded_reason_but_no_attestation(verdict: str) -> None:
    assert render_note(note_input(verdict, attested=False)).text
    with pytest.raises(WriteBackInputError, match="coded override reason"):
        render_note(note_input(verdict, override_reason_code=None, override_reason_display=None))


def test_a_draft_for_the_preview_may_lack_the_rationale_but_the_filed_note_may_not() -> None:
    assert render_note(note_input(rationale=""), draft=True).text
    with pytest.raises(WriteBackInputError, match="rationale"):
        render_note(note_input(rationale=""))


def test_a_block_without_a_coded_reason_is_refused() -> None:
    with pytest.raises(WriteBackInputError, match="coded override reason"):
        render_note(note_input("block", override_reason_code=None))


def test_a_site_can_replace_the_templates(tmp_path: Path) -> None:
    for name in ("dose-change-note.txt.j2", "dose-change-note.html.j2"):
        (tmp_path / name).write_text("New dose {{ new_dose_ug_per_d | num }} for {{ patient_display }}")
    assert render_note(note_input(), templates_dir=tmp_path).text == "New dose 480 for Jane Testpatient"


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    for name in ("dose-change-note.txt.j2", "dose-change-note.html.j2"):
        (tmp_path / name).write_text("{{ rationale.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(Exception, match="unsafe|not safely"):
        render_note(note_input(), templates_dir=tmp_path)


def test_the_questionnaire_and_the_override_code_system_validate() -> None:
    questionnaire = Questionnaire.model_validate(load_questionnaire())
    assert questionnaire.url == QUESTIONNAIRE_URL and questionnaire.version
    assert {r.code for r in override_reasons()} >= {"benefit-outweighs-risk", "other"}
    assert (TEMPLATES_DIR / "override-reasons.json").exists()


def _answers(items: list[dict], found: dict | None = None) -> dict:
    """Return linkId -> list of answers, flattened over groups."""
    found = {} if found is None else found
    for item in items:
        if "answer" in item:
            found.setdefault(item["linkId"], []).extend(item["answer"])
        _answers(item.get("item", []), found)
    return found


def test_the_questionnaire_response_is_completed_valid_and_answers_the_template() -> None:
    response = questionnaire_response(
        note_input(), subject_reference="Patient/123", author_reference="Practitioner/9", authored=NOW
    )
    QuestionnaireResponse.model_validate(response)
    assert response["status"] == "completed"
    assert response["questionnaire"].startswith(QUESTIONNAIRE_URL + "|")
    assert response["subject"]["reference"] == "Patient/123"
    assert response["author"]["reference"] == "Practitioner/9"
    answers = _answers(response["item"])
    assert answers["new-dose-ug-per-d"] == [{"valueDecimal": 480.0}]
    assert answers["low-reservoir-alarm-date"] == [{"valueDate": "2027-01-31"}]
    assert answers["education-given"] == [{"valueBoolean": True}]
    assert answers["override-reason"][0]["valueCoding"]["code"] == "benefit-outweighs-risk"
    assert [a["valueString"] for a in answers["score-value"]] == ["1+", "6"]
    assert len(answers["finding-code"]) == 3


def test_every_questionnaire_link_id_is_answered_for_a_complete_note() -> None:
    def link_ids(items: list[dict]) -> set[str]:
        ids: set[str] = set()
        for item in items:
            if item["type"] == "group":
                ids |= link_ids(item["item"])
            else:
                ids.add(item["linkId"])
        return ids

    # A block asks every item, the attestation included (enableWhen: block only).
    response = questionnaire_response(
        note_input("block"), subject_reference="Patient/123", author_reference=None, authored=NOW
    )
    assert link_ids(load_questionnaire()["item"]) == set(_answers(response["item"]))
    warn = questionnaire_response(
        note_input(), subject_reference="Patient/123", author_reference=None, authored=NOW
    )
    assert link_ids(load_questionnaire()["item"]) - set(_answers(warn["item"])) == {"attested"}
