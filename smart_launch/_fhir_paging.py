"""Searchset paging for the FHIR client: one page, ``next`` links one by one, offset pages in parallel.

The client supplies ``fetch`` (GET one page through its retrying, token-aware ``_send``) and its worker
pool; everything here is about Bundles and links, never about HTTP, tokens or retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from smart_launch import _fhir_http as http
from smart_launch._fhir_errors import FhirError

Resources = list[dict[str, Any]]
Query = list[tuple[str, str]]
# GET one searchset page: (absolute url, query pairs or None for a ``next`` link) -> Page.
FetchPage = Callable[[str, Query | None], "Page"]


@dataclass(frozen=True, slots=True)
class Page:
    """One searchset page: its resources, its absolute ``next`` link, its ``total`` and HTTP status."""

    resources: Resources
    next_url: str | None
    total: int | None
    status: int


def read_page(
    bundle: Mapping[str, Any], status: int, base_url: str, base_origin: tuple[str, str, int]
) -> Page:
    """Return the Page a searchset response holds, or raise FhirError when it is not a Bundle."""
    if bundle.get("resourceType") != "Bundle":
        raise FhirError(status, "search did not return a Bundle")
    return Page(
        http.entry_resources(bundle),
        next_link(bundle, status, base_url, base_origin),
        http.bundle_total(bundle),
        status,
    )


def next_link(
    bundle: Mapping[str, Any], status: int, base_url: str, base_origin: tuple[str, str, int]
) -> str | None:
    """Return the absolute ``next`` link of a Bundle, refusing one that leaves the base's origin."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            absolute = urljoin(base_url + "/", str(link["url"]))
            if http.origin(absolute) != base_origin:
                raise FhirError(status, "search paging link points to another server; refused")
            return absolute
    return None


def follow(fetch: FetchPage, first: Page, url: str, max_pages: int, pages: int = 1) -> Resources:
    """Return ``first``'s resources and those of every page after it, one ``next`` link at a time."""
    resources = list(first.resources)
    seen: set[str] = {url}
    page, next_url = first, first.next_url
    while next_url is not None:
        if next_url in seen:
            break  # a server that links a page to itself would otherwise loop forever
        if pages >= max_pages:
            raise FhirError(page.status, f"search returned more than {max_pages} pages; narrow it down")
        seen.add(next_url)
        page = fetch(next_url, None)
        resources += page.resources
        pages += 1
        next_url = page.next_url
    return resources


def gather(fetch: FetchPage, first: Page, url: str, pages: list[Future[Page]], max_pages: int) -> Resources:
    """Join pages fetched in parallel (in order); follow on should the last still link further."""
    resources = list(first.resources)
    fetched = [future.result() for future in pages]  # raises the first page's FhirError
    for page in fetched:
        resources += page.resources
    last = fetched[-1]
    if last.next_url is not None:
        rest = Page([], last.next_url, None, last.status)
        resources += follow(fetch, rest, url, max_pages, pages=1 + len(fetched))
    return resources


def search_many(
    pool: ThreadPoolExecutor, fetch: FetchPage, searches: Iterable[tuple[str, Query, int]]
) -> list[Resources | FhirError]:
    """Run (url, query, max_pages) searches in one parallel round; each slot holds its resources or error.

    A first page that names its ``total`` and pages by offset has all its remaining pages asked for at
    once as soon as it arrives; opaque ``next`` links are followed one by one.
    """
    firsts: dict[Future[Page], int] = {}
    plans: list[tuple[str, int]] = []
    for index, (url, query, max_pages) in enumerate(searches):
        firsts[pool.submit(fetch, url, query)] = index
        plans.append((url, max_pages))
    # Per slot: its resources, its error, or how to finish it once every request is under way.
    outcomes: list[Resources | FhirError | Callable[[], Resources] | None] = [None] * len(plans)
    for future in as_completed(firsts):
        index = firsts[future]
        url, max_pages = plans[index]
        try:
            first = future.result()
        except FhirError as error:
            outcomes[index] = error
            continue
        urls = http.offset_page_urls(first.next_url, first.total) if first.next_url else None
        if first.next_url is None:
            outcomes[index] = first.resources
        elif urls is not None and 1 + len(urls) > max_pages:
            message = f"search returned more than {max_pages} pages; narrow it down"
            outcomes[index] = FhirError(first.status, message)  # the total says so: ask no further
        elif urls is None:
            outcomes[index] = pool.submit(follow, fetch, first, url, max_pages).result
        else:
            pages = [pool.submit(fetch, page_url, None) for page_url in urls]
            outcomes[index] = functools.partial(gather, fetch, first, url, pages, max_pages)
    results: list[Resources | FhirError] = []
    for outcome in outcomes:
        if callable(outcome):
            try:
                results.append(outcome())
            except FhirError as error:
                results.append(error)
        else:
            assert outcome is not None
            results.append(outcome)
    return results
