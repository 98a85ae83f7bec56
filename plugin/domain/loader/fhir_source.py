"""Load one patient's Chart from a FHIR server in ONE parallel round of date-bounded searches.

The searches are chosen from the server's CapabilityStatement: MedicationStatement and
DeviceUseStatement are searched only when offered (Epic and Oracle Health offer no R4
MedicationStatement, standards.md §4.1). When the CapabilityStatement cannot be read they are still
tried, but their failure is then only a data gap. The CapabilityStatement is read (or taken from the
client's cache) while the other searches already run; only those two wait for it.

Every search asks for ``PAGE_SIZE`` (1,000) per page, the most our HAPI configuration serves (servers
cap ``_count`` silently, as the spec allows): paging is sequential unless the server pages by offset,
so a 5,000-Observation record must not come in pages of 20 (``FhirClient.search_many`` fetches the
remaining pages of an offset-paged search all at once; the loader then takes two rounds).

A failed Patient or medication search raises its ``FhirError`` (the check cannot run without them);
any other failed search becomes a data gap in plain words. Two lessons from a previous attempt:

- pump Observations are searched by code with no date bound (they were lost outside the 24-month
  score window); Procedures are not date-bounded either: the implant may be years old and decides
  the phase.
- the newest eGFR: ``_sort=-date&_count=1`` with ``max_pages=1`` failed as soon as the server sent a
  ``next`` link, and ``FhirClient.search`` still raises when ``max_pages`` is exceeded (it never
  truncates silently, which is right for medications). So eGFR is searched over a bounded window
  (``date=ge`` now - 24 months, sorted newest first, all pages) and the newest is picked locally.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plugin.domain.chart import Chart
from plugin.domain.codes import CodeSets
from plugin.domain.loader.build import chart_from_entries, utc_now
from plugin.domain.loader.fhir import as_list, as_map
from smart_launch.fhir_client import FhirClient, FhirError, Search

SCORE_WINDOW_MONTHS = 24
PAGE_SIZE = 1000
#: The searches that depend on the CapabilityStatement (see ``plan_searches``).
CAPABILITY_DEPENDENT = frozenset({"MedicationStatement", "DeviceUseStatement"})
EGFR_WINDOW_MONTHS = 24
VITALS_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One search of the round: whether its failure stops the check, and what a gap would say."""

    search: Search
    required: bool
    what: str


def offered_types(capabilities: dict[str, Any]) -> frozenset[str]:
    """Return the resource types a CapabilityStatement's server REST entries offer."""
    types: set[str] = set()
    for rest in map(as_map, as_list(capabilities.get("rest"))):
        if rest.get("mode", "server") != "server":
            continue
        types.update(t for r in as_list(rest.get("resource")) if isinstance(t := as_map(r).get("type"), str))
    return frozenset(types)


def months_back(now: datetime, months: int) -> datetime:
    """Return the same day ``months`` calendar months before ``now`` (clamped to the month's end)."""
    month_index = now.year * 12 + now.month - 1 - months
    year, month = divmod(month_index, 12)
    for day in range(now.day, 27, -1):
        try:
            return now.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    return now.replace(year=year, month=month + 1, day=min(now.day, 28))


def _token_list(codings: Any) -> str:
    """Return ``system|code,system|code`` for a token search, sorted for stable URLs."""
    return ",".join(sorted(f"{system}|{code}" for system, code in codings))


def plan_searches(
    patient_id: str, codes: CodeSets, now: datetime, offered: frozenset[str] | None
) -> list[_Slot]:
    """Return the searches of the round for one patient at ``now``."""
    scores_since = months_back(now, SCORE_WINDOW_MONTHS).date().isoformat()
    vitals_since = (now - VITALS_WINDOW).date().isoformat()
    egfr_since = months_back(now, EGFR_WINDOW_MONTHS).date().isoformat()
    known = offered is not None

    page = ("_count", str(PAGE_SIZE))
    # HAPI names a paged search's total only when asked; with it, the client asks for every remaining
    # page at once instead of following next links one round trip at a time. _total is a standard R4
    # result parameter; a server that does not honour it still answers, and its pages are then followed
    # one by one (whether Epic and Oracle Health honour it is unverified: docs/architecture.md).
    counted = ("_total", "accurate")

    def offers(resource_type: str) -> bool:
        return offered is None or resource_type in offered

    slots = [_Slot(Search("Patient", {"_id": patient_id}, max_pages=1), True, "the patient")]
    if offers("MedicationStatement"):
        params = {"patient": patient_id, "_include": "MedicationStatement:medication", "_count": page[1]}
        slots.append(_Slot(Search("MedicationStatement", params), known, "medication statements"))
    params = {"patient": patient_id, "_include": "MedicationRequest:medication", "_count": page[1]}
    slots.append(_Slot(Search("MedicationRequest", params), True, "medication orders"))
    slots += [
        _Slot(
            Search(
                "Observation",
                [
                    # By code, not category: the loader knows scores only by their codings (CONTRACT §5
                    # and the site map), and a site may file them under any category.
                    ("patient", patient_id),
                    ("code", _token_list(codes.score_codes)),
                    ("date", f"ge{scores_since}"),
                    page,
                    counted,
                ],
            ),
            False,
            "spasticity scores",
        ),
        _Slot(
            Search(
                "Observation",
                {"patient": patient_id, "code": _token_list(codes.pump_observations), "_count": page[1]},
            ),
            False,
            "pump values",
        ),
        _Slot(
            Search(
                "Observation",
                [
                    ("patient", patient_id),
                    ("category", "vital-signs"),
                    ("date", f"ge{vitals_since}"),
                    page,
                    counted,
                ],
            ),
            False,
            "vital signs",
        ),
        # Withdrawal signs (pruritus, altered mental status) have no verified codes and are matched by
        # text, so they are fetched by category: besides vital signs, the categories where nursing and
        # assessment findings are filed. Epic and Oracle Health search Observations per category.
        *(
            _Slot(
                Search(
                    "Observation",
                    [("patient", patient_id), ("category", category), ("date", f"ge{vitals_since}"), page],
                ),
                False,
                label,
            )
            for category, label in (("exam", "examination findings"), ("survey", "recent assessments"))
        ),
        _Slot(
            Search(
                "Observation",
                [
                    ("patient", patient_id),
                    ("code", _token_list(codes.egfr)),
                    ("date", f"ge{egfr_since}"),
                    ("_sort", "-date"),
                    page,
                ],
            ),
            False,
            "the latest eGFR",
        ),
        _Slot(Search("Condition", {"patient": patient_id, "_count": page[1]}), False, "conditions"),
        _Slot(Search("Device", {"patient": patient_id, "_count": page[1]}), False, "devices"),
    ]
    if offers("DeviceUseStatement"):
        params = {"patient": patient_id, "_count": page[1]}
        slots.append(_Slot(Search("DeviceUseStatement", params), False, "device use"))
    slots.append(_Slot(Search("Procedure", {"patient": patient_id, "_count": page[1]}), False, "procedures"))
    return slots


def _offered(client: FhirClient) -> frozenset[str] | None:
    """Return the types the server offers, or None when its CapabilityStatement cannot be read."""
    try:
        return offered_types(client.capabilities())
    except FhirError:
        return None


def load_chart(client: FhirClient, patient_id: str, *, codes: CodeSets, now: datetime) -> Chart:
    """Read one patient's Chart with one parallel round of searches; raise FhirError if it cannot run.

    The searches that do not depend on the CapabilityStatement start at once; the CapabilityStatement
    is read alongside them (from the cache after the first launch), and the searches that depend on it
    start as soon as it is known - with a cached one, all in the same round.
    """
    now = utc_now(now)
    independent = [
        slot
        for slot in plan_searches(patient_id, codes, now, None)
        if slot.search.resource_type not in CAPABILITY_DEPENDENT
    ]

    def dependent_round() -> tuple[list[_Slot], dict[int, list[dict[str, Any]] | FhirError]]:
        slots = plan_searches(patient_id, codes, now, _offered(client))
        extra = [slot for slot in slots if slot.search.resource_type in CAPABILITY_DEPENDENT]
        return slots, dict(
            zip(map(id, extra), client.search_many([slot.search for slot in extra]), strict=True)
        )

    with ThreadPoolExecutor(1, thread_name_prefix="fhir-capabilities") as side:
        later = side.submit(dependent_round)
        first_results = iter(client.search_many([slot.search for slot in independent]))
        slots, by_slot = later.result()
    results = [by_slot[id(slot)] if id(slot) in by_slot else next(first_results) for slot in slots]
    resources: list[tuple[str | None, Any]] = []
    gaps: list[str] = []
    for slot, result in zip(slots, results, strict=True):
        if isinstance(result, BaseException):
            if slot.required:
                raise result
            reason = result.safe_message if isinstance(result, FhirError) else "the request failed"
            gaps.append(f"{slot.what} could not be read: {reason}")
            continue
        resources.extend((None, resource) for resource in result)
    return chart_from_entries(resources, codes=codes, now=now, patient_id=patient_id, gaps=gaps)
