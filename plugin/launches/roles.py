"""The user's role as the EHR records it: a PractitionerRole coded pharmacist makes a pharmacist launch.

The registry's ``roles`` mapping (fhirUser -> role) comes first: a site can name its pharmacists and
auditors there. For anyone it does not name, the launch asks the EHR once, at the callback, with the
launch's own token: the PractitionerRole the ``fhirUser`` is (when it is one), or the active
PractitionerRoles of the Practitioner it is. Only "pharmacist" is taken from the EHR: the auditor role
gives access to every patient's audit trail, so it is granted by the registry alone. Anything that
cannot be read (no scope, a 403, a timeout) leaves the default, clinician, and is logged without PHI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from plugin.writeback.resources import relative_reference
from smart_launch.fhir_client import FhirClient, FhirError

log = logging.getLogger(__name__)

#: PractitionerRole.code codings that mean "pharmacist". The first is FHIR R4's example CodeSystem for
#: practitioner roles; the second is SNOMED CT "Pharmacist (occupation)", which the sandbox uses; neither
#: is verified against Epic or Oracle Health, whose role codes are site-specific (docs/verification.md).
PHARMACIST_CODINGS = frozenset(
    {
        ("http://terminology.hl7.org/CodeSystem/practitioner-role", "pharmacist"),
        ("http://snomed.info/sct", "46255001"),
    }
)


def _is_pharmacist(role: Any) -> bool:
    """Whether one PractitionerRole is active and coded pharmacist."""
    if (
        not isinstance(role, dict)
        or role.get("resourceType") != "PractitionerRole"
        or role.get("active") is False
    ):
        return False
    for concept in role.get("code") or ():
        for coding in (concept or {}).get("coding") or ():
            if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) in PHARMACIST_CODINGS:
                return True
    return False


def _roles_of(client: FhirClient, reference: str) -> Iterable[Any]:
    """Return the PractitionerRoles a relative fhirUser reference is, or has."""
    kind, _, ident = reference.partition("/")
    if kind == "PractitionerRole" and ident:
        return [client.read("PractitionerRole", ident)]
    if kind == "Practitioner" and ident:
        return client.search("PractitionerRole", {"practitioner": reference}, max_pages=1)
    return []


def role_from_ehr(client: FhirClient, fhir_user: str | None, iss: str) -> str | None:
    """Return "pharmacist" when the EHR records the user as one; None when not or when it cannot say."""
    if not fhir_user:
        return None
    reference = relative_reference(fhir_user, iss)
    if "://" in reference:
        return None  # a fhirUser on another server: never send this EHR's token there
    try:
        roles = _roles_of(client, reference)
        return "pharmacist" if any(_is_pharmacist(role) for role in roles) else None
    except FhirError as error:
        log.warning(
            "the user's PractitionerRole could not be read; role stays clinician (%s)",
            error.safe_message,
            extra={"event": "launch.role_lookup_failed"},
        )
        return None
