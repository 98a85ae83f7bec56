"""Paging in parallel where the server pages by offset and says the total (HAPI's _getpages)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from smart_launch._fhir_http import offset_page_urls
from smart_launch.fhir_client import FhirClient, FhirError, Search

BASE = "https://ehr.example.org/fhir"
PAGES = f"{BASE}?_getpages=abc&_getpagesoffset={{offset}}&_count=2&_bundletype=searchset"


def _page(ids: list[str], *, total: int | None, next_offset: int | None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Observation", "id": i}} for i in ids],
    }
    if total is not None:
        bundle["total"] = total
    if next_offset is not None:
        bundle["link"] = [{"relation": "next", "url": PAGES.format(offset=next_offset)}]
    return bundle


def test_offset_page_urls_lists_every_remaining_page_of_a_hapi_style_search() -> None:
    urls = offset_page_urls(PAGES.format(offset=2), total=7)
    assert urls is not None
    assert [parse_qs(urlsplit(u).query)["_getpagesoffset"] for u in urls] == [["2"], ["4"], ["6"]]


@pytest.mark.parametrize(
    ("next_url", "total"),
    [
        (PAGES.format(offset=2), None),  # no total: the page count is unknown
        (f"{BASE}?cursor=opaque-token", 7),  # an opaque next link (most EHRs)
        (PAGES.format(offset=3), 7),  # the second page does not start right after a full first one
        (PAGES.format(offset=2), 2),  # nothing beyond the first page
    ],
)
def test_offset_page_urls_refuses_anything_but_the_exact_offset_shape(
    next_url: str, total: int | None
) -> None:
    assert offset_page_urls(next_url, total) is None


@responses.activate
def test_search_many_fetches_the_remaining_offset_pages_at_once_and_keeps_their_order() -> None:
    responses.get(f"{BASE}/Observation", json=_page(["o1", "o2"], total=5, next_offset=2))
    for offset, ids in ((2, ["o3", "o4"]), (4, ["o5"])):
        responses.get(
            BASE,
            match=[
                responses.matchers.query_param_matcher(
                    {
                        "_getpages": "abc",
                        "_getpagesoffset": str(offset),
                        "_count": "2",
                        "_bundletype": "searchset",
                    }
                )
            ],
            json=_page(ids, total=5, next_offset=None if offset == 4 else offset + 2),
        )
    with FhirClient(BASE, lambda: "t") as client:
        [result] = client.search_many([Search("Observation", {"patient": "p"})])
    assert not isinstance(result, FhirError)
    assert [r["id"] for r in result] == ["o1", "o2", "o3", "o4", "o5"]
    assert len(responses.calls) == 3


@responses.activate
def test_search_many_follows_opaque_next_links_one_by_one() -> None:
    responses.get(
        f"{BASE}/Observation",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 3,
            "entry": [{"resource": {"resourceType": "Observation", "id": "o1"}}],
            "link": [{"relation": "next", "url": f"{BASE}/cursor/1"}],
        },
    )
    responses.get(
        f"{BASE}/cursor/1",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Observation", "id": "o2"}}],
        },
    )
    with FhirClient(BASE, lambda: "t") as client:
        [result] = client.search_many([Search("Observation")])
    assert [r["id"] for r in result] == ["o1", "o2"]  # type: ignore[union-attr]


@responses.activate
def test_a_search_whose_total_needs_more_than_max_pages_fails_before_fetching_them() -> None:
    responses.get(f"{BASE}/Observation", json=_page(["o1", "o2"], total=100, next_offset=2))
    with FhirClient(BASE, lambda: "t") as client:
        [result] = client.search_many([Search("Observation", max_pages=3)])
    assert isinstance(result, FhirError)
    assert "more than 3 pages" in result.safe_message
    assert len(responses.calls) == 1
