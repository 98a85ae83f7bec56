"""The core contract: every sandbox patient read from a real server checks exactly like its Bundle.

For each patient, ``load_chart`` against the server (one round of date-bounded searches) and
``chart_from_bundle`` of the same shifted Bundle go through the engine with the manifest's proposed
dose at an explicit ``now``: same verdict, same findings, same current dose, and both match the
manifest's ``expect`` (every expected code raised, nothing above info unexpected). On HAPI this
proves the loader's searches (date prefixes, token lists, _include, paging) mean what the app
assumes; on the sandbox it proves the sandbox behaves like HAPI.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from contract.support import NOW, PATIENT_IDS, FhirServer, patient_entry, shifted_bundle
from plugin.domain.codes import CodeSets, load_code_sets
from plugin.domain.engine import check
from plugin.domain.loader import chart_from_bundle, load_chart
from plugin.domain.result import CheckResult, Proposal, Severity
from plugin.domain.rules_config import Rules, load_rules

pytestmark = pytest.mark.fhir_server


@pytest.fixture(scope="module")
def codes() -> CodeSets:
    """Return the repository's code sets."""
    return load_code_sets()


@pytest.fixture(scope="module")
def rules() -> Rules:
    """Return the repository's rules."""
    return load_rules()


def _essentials(result: CheckResult) -> dict[str, Any]:
    """Return what must agree between the two paths: the whole result except free-text messages."""
    as_json = result.to_json()
    as_json["findings"] = [
        {"code": f["code"], "severity": f["severity"], "evidence": sorted(f["evidence"])}
        for f in as_json["findings"]
    ]
    return as_json


@pytest.mark.parametrize("patient_id", PATIENT_IDS)
def test_chart_from_the_server_checks_like_its_bundle_and_the_manifest(
    loaded_server: FhirServer, patient_id: str, codes: CodeSets, rules: Rules
) -> None:
    expect = patient_entry(patient_id)["expect"]
    proposal = Proposal(float(expect["proposed_ug_per_day"]))

    served = load_chart(loaded_server.client, patient_id, codes=codes, now=NOW)
    offline = chart_from_bundle(shifted_bundle(patient_id), codes=codes, now=NOW)
    assert served.data_gaps == (), served.data_gaps
    from_server = check(served, proposal, rules, NOW)
    from_bundle = check(offline, proposal, rules, NOW)

    assert _essentials(from_server) == _essentials(from_bundle)
    assert from_server.verdict.value == expect["verdict"]
    # The manifest lists the findings the proposal raises; info findings it leaves out are rules that
    # could not be evaluated (no eGFR, no pump) or notes beside the point of the scenario.
    raised = {f.code for f in from_server.findings}
    serious = {f.code for f in from_server.findings if f.severity is not Severity.INFO}
    assert set(expect["findings"]) <= raised
    assert serious <= set(expect["findings"])
    assert served.patient.reference == f"Patient/{patient_id}"


def test_a_score_and_a_withdrawal_sign_filed_as_exam_findings_are_read_from_the_server(
    fhir_server: FhirServer, codes: CodeSets
) -> None:
    # itb check reads every Observation of a Bundle; the live loader must not miss what a site files
    # under another category than survey or vital-signs.
    import uuid

    patient_id = f"contract-{uuid.uuid4().hex[:12]}"
    exam = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]
    }
    when = (NOW - timedelta(hours=12)).isoformat().replace("+00:00", "Z")
    observations = [
        {
            "resourceType": "Observation", "status": "final", "category": [exam],
            "code": {"text": "Pruritus"}, "valueBoolean": True, "effectiveDateTime": when,
        },
        {
            "resourceType": "Observation", "status": "final", "category": [exam],
            "code": {"coding": [{"system": "http://itb-dose-check.org/CodeSystem/spasticity", "code": "mas"}]},
            "valueString": "2", "effectiveDateTime": when,
        },
    ]  # fmt: skip
    entries: list[dict[str, Any]] = [
        {"resource": {"resourceType": "Patient", "id": patient_id}, "request": {"method": "PUT", "url": f"Patient/{patient_id}"}}
    ]  # fmt: skip
    for resource in observations:
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        entries.append({"resource": resource, "request": {"method": "POST", "url": "Observation"}})
    fhir_server.client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})

    chart = load_chart(fhir_server.client, patient_id, codes=codes, now=NOW)
    assert [sign.kind for sign in chart.clinical_signs] == ["pruritus"]
    assert [(score.code, score.value) for score in chart.scores] == [("mas", 2.0)]
