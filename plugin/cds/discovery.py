"""CDS Hooks discovery: the services this app offers, serialised once at startup.

Two ids, one per hook: ``itb-dose-check`` (order-sign: the blocking safety check, CONTRACT §6) and
``itb-dose-check-select`` (order-select: early advice while the order is being written). CDS Hooks 2.0
lets one id appear for several hooks, but clients that index services by id (the public CDS Hooks
sandbox among them) would then see only one, so each hook gets its own id. The ``itb-dose-check``
endpoint still answers an order-select request (it dispatches on the request's ``hook``), for clients
configured with the one id from the contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SIGN_SERVICE_ID = "itb-dose-check"
SELECT_SERVICE_ID = "itb-dose-check-select"
USAGE = (
    "Register the EHR as a CDS client (JWT iss and JWKS) with the site. Prefetch what you can; for the "
    "rest send fhirServer and fhirAuthorization with read access to Patient, MedicationRequest, "
    "MedicationStatement, Observation, Condition, Device, DeviceUseStatement and Procedure."
)


@dataclass(frozen=True, slots=True)
class ServiceDef:
    """One advertised service: its id, the hook it is listed for, and every hook its endpoint accepts."""

    id: str
    hook: str
    accepts: frozenset[str]
    title: str
    description: str


SERVICES: dict[str, ServiceDef] = {
    SIGN_SERVICE_ID: ServiceDef(
        SIGN_SERVICE_ID,
        "order-sign",
        frozenset({"order-sign", "order-select"}),
        "Intrathecal baclofen dose-change check",
        "Checks a proposed intrathecal baclofen pump dose against the current dose, the per-24 h increase "
        "limits, the maximum dose, recent changes, spasticity scores, withdrawal signs and the reservoir.",
    ),
    SELECT_SERVICE_ID: ServiceDef(
        SELECT_SERVICE_ID,
        "order-select",
        frozenset({"order-select"}),
        "Intrathecal baclofen dose-change advice",
        "Early advice on an intrathecal baclofen order being written: the same check as at signing, shown "
        "as soon as the order carries a dose.",
    ),
}


def discovery_document(templates: Mapping[str, str]) -> bytes:
    """Return the discovery response body (JSON bytes), computed once per app."""
    services = [
        {
            "hook": service.hook,
            "id": service.id,
            "title": service.title,
            "description": service.description,
            "prefetch": dict(templates),
            "usageRequirements": USAGE,
        }
        for service in SERVICES.values()
    ]
    return json.dumps({"services": services}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
