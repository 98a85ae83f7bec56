"""The resources of one chart, indexed by type and reference, checked to belong to one patient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plugin.domain.loader.fhir import JSON, as_list, as_map, reference_key

# Resources whose subject or patient is not a person's chart entry (Group etc.) are still checked.
_SUBJECT_KEYS = ("subject", "patient")
_IGNORED_TYPES = frozenset({"OperationOutcome", "Bundle"})


class ChartInputError(ValueError):
    """The resources cannot make one patient's chart (no Patient, two patients, unreadable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResourceIndex:
    """Resources by type (with their ``Type/id`` source) and by every way a reference can name them."""

    def __init__(self, entries: Iterable[tuple[str | None, Any]]) -> None:
        self.by_type: dict[str, list[tuple[str, JSON]]] = {}
        self.by_ref: dict[str, JSON] = {}
        self._full_urls: dict[int, str] = {}
        seen: set[str] = set()
        for position, (full_url, resource) in enumerate(entries):
            if type(resource) is not dict and not isinstance(resource, Mapping):
                raise ChartInputError(f"item {position + 1} is not a FHIR resource (not a JSON object)")
            resource_type = resource.get("resourceType")
            if type(resource_type) is not str or not resource_type:
                raise ChartInputError(f"item {position + 1} has no resourceType")
            if resource_type in _IGNORED_TYPES:
                continue
            resource_id = resource.get("id")
            if type(resource_id) is str and resource_id:
                source = f"{resource_type}/{resource_id}"
                if source in seen:  # the same resource from two searches or an _include
                    continue
                seen.add(source)
            elif full_url:
                source = full_url
            else:
                source = f"{resource_type}/#{position + 1}"
            by_type = self.by_type.get(resource_type)
            if by_type is None:
                by_type = self.by_type[resource_type] = []
            by_type.append((source, resource))
            self.by_ref[source] = resource
            if full_url:
                self.by_ref[full_url] = resource
                self.by_ref[reference_key(full_url)] = resource
                self._full_urls[id(resource)] = full_url

    def of_type(self, resource_type: str) -> list[tuple[str, JSON]]:
        """Return (source, resource) pairs of one type, in input order."""
        return self.by_type.get(resource_type, [])

    def aliases(self, source: str, resource: JSON) -> set[str]:
        """Return every reference string that names ``resource`` (known as ``source``) in this index."""
        full_url = self._full_urls.get(id(resource))
        return {source, full_url, reference_key(full_url)} if full_url else {source}

    def resolve(self, reference: Any, container: JSON | None = None) -> JSON | None:
        """Resolve a Reference (``#med1``, ``Medication/1``, absolute URL or ``urn:uuid:``) or None."""
        ref = as_map(reference).get("reference")
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            for contained in as_list(as_map(container).get("contained")):
                if isinstance(contained, Mapping) and contained.get("id") == ref[1:]:
                    return contained
            return None
        return self.by_ref.get(ref) or self.by_ref.get(reference_key(ref))


def single_patient(
    index: ResourceIndex, patient_id: str | None, *, require_patient: bool = True
) -> tuple[str, JSON | None]:
    """Return the chart's patient reference and Patient resource, or raise ChartInputError.

    Every resource with a ``subject`` or ``patient`` must point at that Patient; a reference that cannot
    be matched (another patient, a Group, an identifier only) makes the input ambiguous and is refused.
    """
    patients = index.of_type("Patient")
    if len(patients) > 1:
        raise ChartInputError("the resources hold more than one Patient")
    if not patients:
        if patient_id is None or require_patient:
            raise ChartInputError("the resources hold no Patient")
        reference, resource = f"Patient/{patient_id}", None
    else:
        reference, resource = patients[0]
        if patient_id is not None and reference != f"Patient/{patient_id}":
            raise ChartInputError("the Patient is not the patient the check was asked for")
    accepted = index.aliases(reference, resource) if resource is not None else {reference}
    for resource_type, items in index.by_type.items():
        if resource_type == "Patient":
            continue
        for source, item in items:
            # _SUBJECT_KEYS unrolled: this runs for every resource of a large chart.
            subject = item.get("subject")
            if subject is not None:
                ref = (subject if type(subject) is dict else as_map(subject)).get("reference")
                if ref not in accepted and (type(ref) is not str or reference_key(ref) not in accepted):
                    raise ChartInputError(f"{source} belongs to another patient (or names none)")
            subject = item.get("patient")
            if subject is not None:
                ref = (subject if type(subject) is dict else as_map(subject)).get("reference")
                if ref not in accepted and (type(ref) is not str or reference_key(ref) not in accepted):
                    raise ChartInputError(f"{source} belongs to another patient (or names none)")
    return reference, resource
