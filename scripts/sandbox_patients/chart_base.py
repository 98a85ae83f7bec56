"""The state of one synthetic patient under construction, and the builders every other part relies on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .fhir import CONDITIONS, MRN_SYSTEM, OBS_CATEGORY, SNOMED, Json, cc, reference

ABBREVIATIONS = {
    "Patient": "",
    "Medication": "med",
    "MedicationStatement": "ms",
    "MedicationRequest": "mr",
    "Observation": "obs",
    "Condition": "cond",
    "Device": "dev",
    "DeviceUseStatement": "dus",
    "Procedure": "proc",
}
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


@dataclass
class ChartBase:
    """One synthetic patient under construction: its resources and the facts the self-check needs."""

    pid: str
    resources: list[Json] = field(default_factory=list)
    history: list[tuple[str, float]] = field(default_factory=list)  # (start, ug/d), oldest first
    conc: float | None = None
    fills: list[tuple[str, float]] = field(default_factory=list)
    next_refill: str | None = None
    alarm_ml: float = 2.0
    birth: date | None = None
    score_log: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # code -> (day, ordinal)

    @property
    def ref(self) -> str:
        """Return the Patient reference."""
        return f"Patient/{self.pid}"

    @property
    def subject(self) -> Json:
        """Return a Reference to the Patient."""
        return reference(self.ref)

    def add(self, rtype: str, suffix: str, body: Json) -> str:
        """Add a resource with id ``<abbr>-<pid>-<suffix>`` (the Patient's id is the pid); return its ref."""
        abbr = ABBREVIATIONS[rtype]
        rid = self.pid if rtype == "Patient" else f"{abbr}-{self.pid}-{suffix}"
        self.resources.append({"resourceType": rtype, "id": rid} | body)
        return f"{rtype}/{rid}"

    def patient(self, given: str, family: str, gender: str, birth: str, mrn: str) -> None:
        """Add the Patient."""
        self.birth = date.fromisoformat(birth)
        self.add(
            "Patient",
            "",
            {
                "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            },
        )

    def condition(
        self,
        suffix: str,
        onset: str,
        key: str | None = None,
        text: str | None = None,
        category: str = "problem-list-item",
    ) -> None:
        """Add an active, confirmed Condition: SNOMED ``key`` from CONDITIONS, or text only."""
        if key:
            code, display = CONDITIONS[key]
            concept = cc(SNOMED, code, display, text or display or key)
        else:
            concept = {"text": text}
        self.add(
            "Condition",
            suffix,
            {
                "clinicalStatus": cc(CONDITION_CLINICAL, "active", "Active", "Active"),
                "verificationStatus": cc(CONDITION_VER_STATUS, "confirmed", "Confirmed", "Confirmed"),
                "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
                "code": concept,
                "subject": self.subject,
                "onsetDateTime": onset,
                "recordedDate": onset,
            },
        )

    def observation(self, suffix: str, category: str | None, code: Json, when: str, value: Json) -> str:
        """Add a final Observation."""
        body: Json = {"status": "final"}
        if category:
            body["category"] = [{"coding": [{"system": OBS_CATEGORY, "code": category}]}]
        body |= {"code": code, "subject": self.subject, "effectiveDateTime": when} | value
        return self.add("Observation", suffix, body)

    def bundle(self) -> Json:
        """Return the transaction Bundle (PUT entries, no fullUrl)."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in self.resources
            ],
        }
