"""What each sandbox tenant offers, and its CapabilityStatement.

``full`` offers every type the store knows. ``epic-like`` leaves out MedicationStatement, which neither
Epic nor Oracle Health offers in R4 (reference/standards.md §4.1): it is absent from the
CapabilityStatement and requests for it answer 404, like an unknown type at HAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .search_params import RESOURCE_TYPES, SEARCH_PARAMS

#: Status for a resource type the tenant does not offer.
UNSUPPORTED_TYPE_STATUS = 404
_HIDDEN: dict[str, frozenset[str]] = {"full": frozenset(), "epic-like": frozenset({"MedicationStatement"})}
_SMART_SECURITY = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_FHIR_TYPE = {"token": "token", "reference": "reference", "date": "date", "string": "string"}


def tenant_types(tenant: str) -> tuple[str, ...]:
    """The resource types a tenant offers."""
    hidden = _HIDDEN.get(tenant, frozenset())
    return tuple(t for t in RESOURCE_TYPES if t not in hidden)


def capability_statement(
    tenant: str, base: str, authorize_url: str, token_url: str, now: datetime
) -> dict[str, Any]:
    """Build the tenant's CapabilityStatement (R4)."""
    resources = []
    for resource_type in tenant_types(tenant):
        params = SEARCH_PARAMS[resource_type]
        resources.append(
            {
                "type": resource_type,
                "interaction": [{"code": c} for c in ("read", "vread", "update", "create", "search-type")],
                "versioning": "versioned",
                "readHistory": False,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalUpdate": False,
                "conditionalDelete": "not-supported",
                "searchInclude": [
                    f"{resource_type}:{p.name}" for p in params.values() if p.kind == "reference"
                ],
                "searchParam": [{"name": p.name, "type": _FHIR_TYPE[p.kind]} for p in params.values()],
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.date().isoformat(),
        "publisher": "ITB Dose Check sandbox EHR",
        "kind": "instance",
        "software": {"name": "ITB sandbox EHR", "version": "1"},
        "implementation": {"description": f"Sandbox tenant '{tenant}'", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": _SMART_SECURITY,
                            "extension": [
                                {"url": "authorize", "valueUri": authorize_url},
                                {"url": "token", "valueUri": token_url},
                            ],
                        }
                    ],
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
