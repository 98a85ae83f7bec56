"""Load the synthetic patients into the sandbox at start.

``config/sandbox/manifest.toml`` names each patient bundle (``[[patients]]`` with ``file``, ``id``,
``summary``, ``tenants``) and the ``anchor`` the files' dates are written against. Every bundle is one
FHIR ``transaction`` of PUTs with stable ids. Dates are shifted by the whole days between the anchor and
today (UTC), so the data always looks recent; MedicationStatements are dropped for ``epic-like``.
Files in ``patients/`` that the manifest does not list are loaded into every tenant.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .auth import Grant, LaunchContext
from .bundles import BundleEnv, process_bundle
from .capability import tenant_types
from .config import TENANTS
from .dates import days_between, shift_dates
from .outcome import FhirError
from .store import FhirStore, SnapshotCache
from .users import user_resources

DEFAULT_ANCHOR = "2026-12-01T12:00:00Z"
#: Types the epic-like tenant does not offer, dropped from its seed.
_EPIC_DROPS = {"epic-like": frozenset({"MedicationStatement"})}


class SeedError(RuntimeError):
    """A seed file is missing, malformed or rejected by the store."""


@dataclass(frozen=True)
class SeedPatient:
    """One manifest entry."""

    file: str
    id: str
    summary: str
    tenants: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """The manifest: the date anchor and the patients."""

    anchor: datetime
    patients: tuple[SeedPatient, ...]


def load_manifest(seed_dir: Path) -> Manifest:
    """Read manifest.toml (if any) and add unlisted ``patients/*.json`` files for every tenant."""
    path = seed_dir / "manifest.toml"
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    anchor = datetime.fromisoformat(str(data.get("anchor", DEFAULT_ANCHOR)).replace("Z", "+00:00"))
    patients = [
        SeedPatient(
            str(p["file"]), str(p.get("id", "")), str(p.get("summary", "")), tuple(p.get("tenants", TENANTS))
        )
        for p in data.get("patients", [])
    ]
    listed = {Path(p.file).name for p in patients}
    for extra in sorted((seed_dir / "patients").glob("*.json")):
        if extra.name not in listed:
            patients.append(SeedPatient(f"patients/{extra.name}", "", "", TENANTS))
    return Manifest(anchor, tuple(patients))


def _without(bundle: dict[str, Any], dropped: frozenset[str]) -> dict[str, Any]:
    """Drop the entries of resource types a tenant does not offer."""
    if not dropped:
        return bundle
    entries = [
        e for e in bundle.get("entry", []) if (e.get("resource") or {}).get("resourceType") not in dropped
    ]
    return {**bundle, "entry": entries}


def _patient_id(bundle: dict[str, Any]) -> str:
    """The id of the bundle's Patient."""
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient":
            return str(resource.get("id", ""))
    return ""


def _apply(store: FhirStore, tenant: str, bundle: dict[str, Any], now: datetime) -> None:
    """Run a seed transaction with full system access."""
    grant = Grant("sandbox-seed", "system/*.cruds", LaunchContext(tenant, "sandbox", None))
    env = BundleEnv(grant, tenant, "", tenant_types(tenant), SnapshotCache(capacity=1), now)
    process_bundle(store.tenant(tenant), bundle, env)


def seed_users(store: FhirStore, now: datetime) -> None:
    """Create the sandbox users in every tenant."""
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in user_resources()
    ]
    for tenant in store.tenants:
        _apply(store, tenant, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, now)


def seed_patients(store: FhirStore, seed_dir: Path, now: datetime) -> dict[str, str]:
    """Load every manifest bundle into its tenants; return patient id -> summary."""
    manifest = load_manifest(seed_dir)
    days = days_between(manifest.anchor, now)
    summaries: dict[str, str] = {}
    for patient in manifest.patients:
        path = seed_dir / patient.file
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SeedError(f"{path}: cannot read the bundle ({error})") from error
        if not isinstance(bundle, dict) or bundle.get("type") != "transaction":
            raise SeedError(f"{path}: a seed file must be one transaction Bundle")
        bundle = shift_dates(bundle, days)
        for tenant in patient.tenants:
            if tenant not in store.tenants:
                raise SeedError(f"{path}: unknown tenant '{tenant}'")
            try:
                _apply(store, tenant, _without(bundle, _EPIC_DROPS.get(tenant, frozenset())), now)
            except FhirError as error:
                raise SeedError(f"{path}: rejected for tenant '{tenant}': {error.diagnostics}") from error
        summaries[patient.id or _patient_id(bundle)] = patient.summary
    return summaries
