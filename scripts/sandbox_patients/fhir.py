"""Code systems, verified codes and small FHIR datatype builders shared by the sandbox patient builders."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SPASTICITY = "http://itb-dose-check.org/CodeSystem/spasticity"
MAS_GRADE = "http://itb-dose-check.org/CodeSystem/mas-grade"
PUMP = "http://itb-dose-check.org/CodeSystem/pump"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "http://itb-dose-check.org/sandbox/mrn"
ROUTE_IT = {
    "coding": [{"system": SNOMED, "code": "72607000", "display": "Intrathecal route"}],
    "text": "intrathecal",
}
ROUTE_ORAL = {"text": "oral"}  # no verified SNOMED route code for oral in the reference
# Origin conditions (SNOMED, clinical.md §5); SCI has no verified display, so text only beside the code.
CONDITIONS = {
    "sci": ("90584004", None),
    "ms": ("24700007", "Multiple sclerosis"),
    "cp": ("128188000", "Cerebral palsy"),
    "tbi": ("127295002", "Traumatic brain injury"),
    "stroke": ("230690007", "Cerebrovascular accident"),
    "spasticity": ("221360009", "Spasticity"),
}
# Pump concentrations (ug/mL) -> verified RxNorm SCD or None (text only).
PRODUCTS: dict[float, tuple[str | None, str]] = {
    2000: ("1666613", "20 ML baclofen 2 MG/ML Injection"),
    1000: ("1300890", "20 ML baclofen 1 MG/ML Injection"),
    500: (None, "Lioresal Intrathecal (baclofen) 500 mcg/mL"),
    1500: (None, "baclofen 1500 mcg/mL intrathecal, compounded dilution"),
}
MAS_LOWER = {"0": "0", "1": "0", "1+": "1", "2": "1+", "3": "2", "4": "3"}
SCORE_NAMES = {
    "mas": "Modified Ashworth Scale",
    "psfs-frequency": "Penn Spasm Frequency Scale, frequency",
    "psfs-severity": "Penn Spasm Frequency Scale, severity",
    "spasticity-nrs": "Spasticity numeric rating scale (0-10)",
}


def qty(value: float, code: str, unit: str | None = None) -> Json:
    """Return a UCUM Quantity."""
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


def cc(system: str, code: str, display: str | None, text: str) -> Json:
    """Return a CodeableConcept with one coding (display omitted when unknown) and text."""
    coding = {"system": system, "code": code} | ({"display": display} if display else {})
    return {"coding": [coding], "text": text}


def pump_code(code: str, display: str) -> Json:
    """Return a CodeableConcept in the project's pump CodeSystem."""
    return cc(PUMP, code, display, display)


def reference(ref: str) -> Json:
    """Return a Reference to ``ref`` ("Type/id")."""
    return {"reference": ref}
