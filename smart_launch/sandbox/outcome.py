"""FHIR error handling for the sandbox: one exception type and OperationOutcome responses."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

FHIR_JSON = "application/fhir+json; charset=utf-8"


class FhirError(Exception):
    """A FHIR interaction failed; becomes an OperationOutcome with ``status``."""

    def __init__(self, status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        """Return the OperationOutcome describing this error."""
        return operation_outcome(self.code, self.diagnostics)


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """Build a one-issue OperationOutcome."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def fhir_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Serialise a FHIR resource (or nothing) as an ``application/fhir+json`` response."""
    payload = "" if body is None else json.dumps(body, separators=(",", ":"))
    response = Response(payload, status=status, content_type=FHIR_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: FhirError) -> Response:
    """Turn a FhirError into its OperationOutcome response."""
    return fhir_response(error.outcome(), error.status, error.headers)
