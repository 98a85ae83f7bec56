"""FHIR R4 REST client: timeouts, retries, paging, parallel searches, typed OperationOutcome errors.

One ``requests.Session`` per worker thread (sessions are not thread-safe). GET/HEAD and PUT are retried
with exponential backoff and jitter on 429/502/503/504 and network errors, honouring ``Retry-After``;
POST (create, transaction, operations) is never retried because it is not idempotent. The bearer token
goes only to the base URL's own scheme+host+port: paging ``next`` links to another origin are refused.
Searchset paging lives in ``_fhir_paging`` and the error types in ``_fhir_errors``; both are re-exported here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from smart_launch import _fhir_http as http
from smart_launch import _fhir_paging as paging
from smart_launch._fhir_errors import FhirAuthError as FhirAuthError
from smart_launch._fhir_errors import FhirConflict as FhirConflict
from smart_launch._fhir_errors import FhirError as FhirError
from smart_launch._fhir_errors import FhirNotFound as FhirNotFound
from smart_launch._fhir_errors import error_from

# The error types are defined in _fhir_errors and re-exported from here ("X as X" above).

# A search's parameters: a mapping, or pairs when a name repeats (date=ge..&date=le..).
SearchParams = Mapping[str, str] | Sequence[tuple[str, str]]

log = logging.getLogger(__name__)

# Module-level so tests can replace it and never really sleep.
_sleep: Callable[[float], None] = time.sleep

CAPABILITIES_TTL_S = 3600.0
_capabilities_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_capabilities_lock = threading.Lock()
_FHIR_JSON = "application/fhir+json"
_RETRIED_METHODS = frozenset({"GET", "HEAD", "PUT"})


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
        if self.resource and isinstance(self.resource.get("id"), str) and self.resource["id"]:
            return str(self.resource["id"])
        return http.id_from_location(self.location)


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
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._origin = http.origin(self.base_url)
        self._token_provider = token_provider
        self._on_unauthorized = on_unauthorized
        self._timeout = timeout
        self._max_retries = max(0, max_retries)
        self._max_workers = max(1, max_workers)
        self._extra_headers = dict(extra_headers or {})
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def capabilities(self) -> dict[str, Any]:
        """Return the server's CapabilityStatement (``GET /metadata``), cached per base URL."""
        with _capabilities_lock:
            cached = _capabilities_cache.get(self.base_url)
            if cached is not None and time.monotonic() - cached[0] < CAPABILITIES_TTL_S:
                return cached[1]
        statement = self._json(self._send("GET", self._url("metadata")))
        with _capabilities_lock:
            _capabilities_cache[self.base_url] = (time.monotonic(), statement)
        return statement

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """Return one resource by type and id."""
        path = f"{http.check_resource_type(resource_type)}/{http.check_id(resource_id)}"
        return self._json(self._send("GET", self._url(path)))

    def search(
        self, resource_type: str, params: SearchParams | None = None, *, max_pages: int = 50
    ) -> list[dict[str, Any]]:
        """Return every resource of every page (matches and ``_include``d), following ``next`` links."""
        url = self._url(http.check_resource_type(resource_type))
        first = self._page(url, http.search_pairs(params))
        return paging.follow(self._page, first, url, max_pages)

    def search_many(self, searches: Sequence[Search]) -> list[list[dict[str, Any]] | FhirError]:
        """Run several searches in one parallel round; each slot holds its resources or its error.

        Paging stays as parallel as the server allows: when a first page names its ``total`` and pages
        by offset (HAPI's ``_getpages``), all its remaining pages are asked for at once as soon as it
        arrives, so a search of any size takes two rounds; opaque ``next`` links are followed one by one.
        """
        plans = (
            (
                self._url(http.check_resource_type(item.resource_type)),
                http.search_pairs(item.params),
                item.max_pages,
            )
            for item in searches
        )
        return paging.search_many(self._pool(), self._page, plans)

    def create(self, resource: Mapping[str, Any], *, if_none_exist: str | None = None) -> WriteResult:
        """POST a resource; with ``if_none_exist`` (e.g. ``identifier=sys|val``) as a conditional create.

        Creates are not retried on a timeout or 5xx (not idempotent unless conditional); the caller's
        outbox decides."""
        resource_type = http.check_resource_type(str(resource.get("resourceType", "")))
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        response = self._send("POST", self._url(resource_type), body=resource, headers=headers)
        return self._write_result(response)

    def update(self, resource: Mapping[str, Any], *, if_match: str | None = None) -> WriteResult:
        """PUT a resource to ``{type}/{id}``; ``if_match`` is an ETag such as ``W/"2"``."""
        resource_type = http.check_resource_type(str(resource.get("resourceType", "")))
        resource_id = http.check_id(str(resource.get("id", "")))
        headers = {"Prefer": "return=representation"}
        if if_match:
            headers["If-Match"] = if_match
        response = self._send(
            "PUT", self._url(f"{resource_type}/{resource_id}"), body=resource, headers=headers
        )
        return self._write_result(response)

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a batch or transaction Bundle to the base and return the response Bundle."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in ("batch", "transaction"):
            raise ValueError("transaction() needs a Bundle of type batch or transaction")
        return self._json(self._send("POST", self.base_url, body=bundle))

    def operation(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST (or GET when body is None) an operation such as ``DocumentReference/$validate``."""
        if "://" in path or path.startswith("//") or ".." in path.split("/"):
            raise ValueError("operation path must be relative to the base URL")
        url = self._url(path.lstrip("/"))
        if body is None:
            return self._json(self._send("GET", url))
        return self._json(self._send("POST", url, body=body))

    def close(self) -> None:
        """Release the per-thread sessions and the worker pool."""
        with self._lock:
            executor, self._executor = self._executor, None
            sessions, self._sessions = self._sessions, []
        if executor is not None:
            executor.shutdown(wait=True)
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> FhirClient:
        """Return self for ``with FhirClient(...) as client``."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        """Return the absolute URL of ``path`` under the base."""
        return f"{self.base_url}/{path}"

    def _session(self) -> requests.Session:
        """Return this thread's session, creating it on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _pool(self) -> ThreadPoolExecutor:
        """Return the worker pool, creating it on first use."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="fhir")
            return self._executor

    def _headers(
        self, url: str, token: str | None, extra: Mapping[str, str] | None, has_body: bool
    ) -> dict[str, str]:
        """Return the request headers; the bearer token only for the base's own origin."""
        headers = {"Accept": _FHIR_JSON, **self._extra_headers, **(extra or {})}
        if has_body:
            headers["Content-Type"] = f"{_FHIR_JSON}; charset=utf-8"
        if token and http.origin(url) == self._origin:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one logical request: retries for idempotent methods, one refresh-and-retry on 401."""
        retryable = method in _RETRIED_METHODS
        data = json.dumps(body).encode("utf-8") if body is not None else None
        token_override: str | None = None
        refreshed = False
        attempt = 0
        while True:
            token = (
                token_override if refreshed else (self._token_provider() if self._token_provider else None)
            )
            request_headers = self._headers(url, token, headers, data is not None)
            try:
                response = self._session().request(
                    method, url, params=params, data=data, headers=request_headers, timeout=self._timeout
                )
            except requests.RequestException as exc:
                if retryable and attempt < self._max_retries and http.is_transient(exc):
                    _sleep(http.backoff_seconds(attempt))
                    attempt += 1
                    continue
                log.warning("FHIR %s failed: %s", method, type(exc).__name__)
                raise FhirError(0, f"could not reach the FHIR server ({type(exc).__name__})") from None
            status = response.status_code
            if status == 401 and not refreshed and self._on_unauthorized is not None:
                refreshed = True
                token_override = self._on_unauthorized()
                if token_override is None:
                    raise error_from(response)
                continue
            if status in http.RETRY_STATUSES and retryable and attempt < self._max_retries:
                wait = http.retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
                log.info("FHIR %s got HTTP %s; retry %d", method, status, attempt + 1)
                _sleep(wait if wait is not None else http.backoff_seconds(attempt))
                attempt += 1
                continue
            if status >= 400:
                raise error_from(response)
            return response

    def _page(self, url: str, query: list[tuple[str, str]] | None = None) -> paging.Page:
        """GET one searchset page."""
        response = self._send("GET", url, params=query)
        return paging.read_page(self._json(response), response.status_code, self.base_url, self._origin)

    def _json(self, response: requests.Response) -> dict[str, Any]:
        """Return the response body as a JSON object, or raise FhirError."""
        try:
            document = response.json()
        except ValueError:
            raise FhirError(response.status_code, "FHIR server returned invalid JSON") from None
        if not isinstance(document, dict):
            raise FhirError(response.status_code, "FHIR server returned JSON that is not a resource")
        return document

    def _write_result(self, response: requests.Response) -> WriteResult:
        """Build a WriteResult; the body is optional (servers may answer return=minimal)."""
        resource: dict[str, Any] | None = None
        if response.content:
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            resource = parsed if isinstance(parsed, dict) and parsed.get("resourceType") else None
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if location and location.startswith(self.base_url + "/"):
            location = location[len(self.base_url) + 1 :]
        return WriteResult(response.status_code, resource, location, response.headers.get("ETag"))


def clear_capabilities_cache() -> None:
    """Forget every cached CapabilityStatement."""
    with _capabilities_lock:
        _capabilities_cache.clear()
