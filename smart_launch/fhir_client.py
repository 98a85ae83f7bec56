"""FHIR R4 REST client: timeouts, retries, paging, parallel searches, typed OperationOutcome errors.

INTERFACE STUB written by the coordinator; the implementation fills these bodies in without changing
the public signatures (other modules are being written against them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A search's parameters: a mapping, or pairs when a name repeats (date=ge..&date=le..).
SearchParams = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Search:
    """One search for ``search_many``: ``GET {base}/{resource_type}?{params}``, all pages."""

    resource_type: str
    params: SearchParams = field(default_factory=dict)
    max_pages: int = 50


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What the server said to a create/update: HTTP status, the resource if returned, Location, ETag."""

    status: int
    resource: dict[str, Any] | None
    location: str | None  # e.g. "DocumentReference/123/_history/1", relative to the base
    etag: str | None

    @property
    def resource_id(self) -> str | None:
        """Return the id of the written resource, from the body or the Location header."""
        raise NotImplementedError


class FhirClient:
    """A FHIR R4 client bound to one server base URL (= the launch's ``iss``).

    ``token_provider`` returns the current access token (or None for an open server); it is called
    before every request so a refreshed token is picked up. ``on_unauthorized`` is called once when a
    request gets 401; it should refresh and return the new token (or None to give up), after which the
    request is retried once. The token is only ever sent to ``base_url``'s scheme+host+port.
    """

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[[], str | None] | None = None,
        *,
        on_unauthorized: Callable[[], str | None] | None = None,
        timeout: tuple[float, float] = (3.05, 20.0),
        max_retries: int = 3,
        max_workers: int = 8,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def capabilities(self) -> dict[str, Any]:
        """Return the server's CapabilityStatement (``GET /metadata``), cached per base URL."""
        raise NotImplementedError

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """Return one resource by type and id."""
        raise NotImplementedError

    def search(self, resource_type: str, params: SearchParams | None = None, *, max_pages: int = 50) -> list[
        dict[str, Any]
    ]:
        """Return every resource of every page (matches and ``_include``d), following ``next`` links."""
        raise NotImplementedError

    def search_many(self, searches: Sequence[Search]) -> list[list[dict[str, Any]] | FhirError]:
        """Run several searches in one parallel round; each slot holds its resources or its error."""
        raise NotImplementedError

    def create(self, resource: Mapping[str, Any], *, if_none_exist: str | None = None) -> WriteResult:
        """POST a resource; with ``if_none_exist`` (e.g. ``identifier=sys|val``) as a conditional create.

        Creates are not retried on a timeout or 5xx (not idempotent unless conditional); the caller's
        outbox decides."""
        raise NotImplementedError

    def update(self, resource: Mapping[str, Any], *, if_match: str | None = None) -> WriteResult:
        """PUT a resource to ``{type}/{id}``; ``if_match`` is an ETag such as ``W/"2"``."""
        raise NotImplementedError

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a batch or transaction Bundle to the base and return the response Bundle."""
        raise NotImplementedError

    def operation(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST (or GET when body is None) an operation such as ``DocumentReference/$validate``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the per-thread sessions and the worker pool."""
        raise NotImplementedError


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
