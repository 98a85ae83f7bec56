"""The sandbox's users: a clinician, a pharmacist and an auditor, as Practitioner resources the sandbox
creates itself in every tenant (the pharmacist also gets a PractitionerRole coded pharmacist)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SNOMED = "http://snomed.info/sct"


@dataclass(frozen=True)
class SandboxUser:
    """One person who can be 'logged in' when launching."""

    id: str
    name: str
    role: str
    family: str
    given: tuple[str, ...]
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()

    @property
    def fhir_user(self) -> str:
        """The relative fhirUser reference."""
        return f"Practitioner/{self.id}"


#: Users by id, in the order the launch page lists them. The names differ from every synthetic patient's
#: (the brief's examples "Alex Rivera" and "Okafor" are patient names in the seed), so a screen never
#: shows a user who could be mistaken for the patient.
USERS: dict[str, SandboxUser] = {
    user.id: user
    for user in (
        SandboxUser("clinician-1", "Dr Priya Raman", "Clinician (physician)", "Raman", ("Priya",), ("Dr",)),
        SandboxUser("pharmacist-1", "Tom Becker, PharmD", "Pharmacist", "Becker", ("Tom",), (), ("PharmD",)),
        SandboxUser("auditor-1", "Audrey Quinn (Audit)", "Auditor", "Quinn", ("Audrey",)),
    )
}


def user_resources() -> list[dict[str, Any]]:
    """Return the Practitioner (and PractitionerRole) resources for every sandbox user."""
    resources: list[dict[str, Any]] = []
    for user in USERS.values():
        name: dict[str, Any] = {
            "use": "official",
            "text": user.name,
            "family": user.family,
            "given": list(user.given),
        }
        if user.prefix:
            name["prefix"] = list(user.prefix)
        if user.suffix:
            name["suffix"] = list(user.suffix)
        resources.append(
            {
                "resourceType": "Practitioner",
                "id": user.id,
                "active": True,
                "identifier": [{"system": "urn:itb-sandbox:user", "value": user.id}],
                "name": [name],
            }
        )
    resources.append(
        {
            "resourceType": "PractitionerRole",
            "id": "pharmacist-1-role",
            "active": True,
            "practitioner": {"reference": "Practitioner/pharmacist-1", "display": USERS["pharmacist-1"].name},
            "code": [
                {
                    "coding": [{"system": _SNOMED, "code": "46255001", "display": "Pharmacist"}],
                    "text": "Pharmacist",
                }
            ],
        }
    )
    return resources
