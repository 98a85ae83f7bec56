"""Small builders of FHIR R4 JSON for the loader tests: one patient, intrathecal baclofen records, scores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from plugin.domain.chart import Chart
from plugin.domain.codes import load_code_sets
from plugin.domain.loader import chart_from_resources

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PID = "p1"
SUBJECT = {"reference": f"Patient/{PID}"}
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SPASTICITY = "http://itb-dose-check.org/CodeSystem/spasticity"
PUMP = "http://itb-dose-check.org/CodeSystem/pump"
CODES = load_code_sets()
IT_ROUTE = {"coding": [{"system": SCT, "code": "72607000", "display": "Intrathecal route"}]}
BACLOFEN = {"text": "baclofen injection"}

JSON = dict[str, Any]


def patient(pid: str = PID, **extra: Any) -> JSON:
    """Return a Patient."""
    return {"resourceType": "Patient", "id": pid, "birthDate": "1980-04-02", "gender": "female", **extra}


def quantity(value: float, unit: str) -> JSON:
    """Return a UCUM Quantity."""
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def rate(value: float, unit: str, **timing: Any) -> JSON:
    """Return an intrathecal Dosage with a rateQuantity (and an optional timing.repeat)."""
    dosage: JSON = {"route": IT_ROUTE, "doseAndRate": [{"rateQuantity": quantity(value, unit)}]}
    if timing:
        dosage["timing"] = {"repeat": timing}
    return dosage


def statement(
    rid: str,
    *dosages: JSON,
    status: str = "active",
    start: str = "2026-10-01T10:00:00Z",
    kind: str = "MedicationStatement",
    medication: JSON | None = None,
    **extra: Any,
) -> JSON:
    """Return a MedicationStatement (or, with kind, a MedicationRequest) of baclofen."""
    resource: JSON = {"resourceType": kind, "id": rid, "status": status, "subject": SUBJECT, **extra}
    if medication is None:
        resource["medicationCodeableConcept"] = BACLOFEN
    else:
        resource.update(medication)
    if kind == "MedicationStatement":
        resource["effectivePeriod"] = {"start": start}
        resource["dosage"] = list(dosages) or [rate(400, "ug/d")]
    else:
        resource.setdefault("intent", "order")
        resource["authoredOn"] = start
        resource["dosageInstruction"] = list(dosages) or [rate(400, "ug/d")]
    return resource


def request(rid: str, *dosages: JSON, **kwargs: Any) -> JSON:
    """Return a MedicationRequest of baclofen."""
    return statement(rid, *dosages, kind="MedicationRequest", **kwargs)


def medication(mid: str, mg_per_ml: float | None = 2.0, name: str = "baclofen 2 MG/ML Injection") -> JSON:
    """Return a Medication with a baclofen strength in mg/mL."""
    resource: JSON = {"resourceType": "Medication", "id": mid, "code": {"text": name}}
    if mg_per_ml is not None:
        resource["ingredient"] = [
            {
                "itemCodeableConcept": {"text": "baclofen"},
                "strength": {"numerator": quantity(mg_per_ml, "mg"), "denominator": quantity(1, "mL")},
            }
        ]
    return resource


def observation(
    rid: str,
    system: str,
    code: str,
    *,
    effective: str = "2026-11-20T10:00:00Z",
    status: str = "final",
    **value: Any,
) -> JSON:
    """Return an Observation with one coding and the given value[x]/component fields."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": SUBJECT,
        "effectiveDateTime": effective,
        **value,
    }


def condition(rid: str, code: str | None, text: str, *, clinical: str = "active", **extra: Any) -> JSON:
    """Return a Condition coded in SNOMED (or text only when code is None)."""
    concept: JSON = {"text": text}
    if code is not None:
        concept["coding"] = [{"system": SCT, "code": code, "display": text}]
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"code": clinical}]},
        "code": concept,
        "subject": SUBJECT,
        **extra,
    }


def chart(*resources: JSON, now: datetime = NOW) -> Chart:
    """Return the Chart of a Patient plus ``resources``."""
    return chart_from_resources([patient(), *resources], codes=CODES, now=now)
