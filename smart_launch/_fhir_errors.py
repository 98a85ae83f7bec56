"""The FHIR client's typed errors and how an error response becomes one (re-exported by ``fhir_client``).

Kept apart from the client so that the paging module can raise and catch them without an import cycle.
"""

from __future__ import annotations

from typing import Any

import requests

from smart_launch import _fhir_http as http


class FhirError(Exception):
    """A FHIR request failed. ``status`` is the HTTP status (0 for a network error); ``safe_message``
    is a one-line reason fit for a person (from the OperationOutcome's diagnostics/details, without
    PHI from the URL); ``outcome`` is the OperationOutcome when the server sent one."""

    def __init__(self, status: int, safe_message: str, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(safe_message)
        self.status = status
        self.safe_message = safe_message
        self.outcome = outcome

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed (network error, 408, 429, 5xx)."""
        return self.status in (0, 408, 429) or self.status >= 500


class FhirAuthError(FhirError):
    """401 after the one refresh-and-retry, or 403: the user must relaunch or lacks a scope."""


class FhirNotFound(FhirError):
    """404 or 410."""


class FhirConflict(FhirError):
    """409 or 412: a version conflict (HAPI answers 409 to a stale If-Match, the spec says 412)."""


def error_from(response: requests.Response) -> FhirError:
    """Return the typed FhirError for an error response, with a safe one-line message."""
    status = response.status_code
    outcome: dict[str, Any] | None = None
    try:
        parsed = response.json()
        if isinstance(parsed, dict) and parsed.get("resourceType") == "OperationOutcome":
            outcome = parsed
    except ValueError:
        pass
    detail = http.outcome_message(outcome)
    message = f"HTTP {status}: {detail}" if detail else f"HTTP {status} from the FHIR server"
    error_class: type[FhirError] = FhirError
    if status in (401, 403):
        error_class = FhirAuthError
    elif status in (404, 410):
        error_class = FhirNotFound
    elif status in (409, 412):
        error_class = FhirConflict
    return error_class(status, http.safe_text(message), outcome)
