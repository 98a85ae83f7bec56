"""Glue between the EHR registry and ``smart_launch``: cached discovery, client registration, scopes."""

from __future__ import annotations

import threading
import time

from flask import current_app

from plugin.registry import EhrEntry
from smart_launch.discovery import SmartConfiguration, build_scopes, discover, scope_style
from smart_launch.keys import KeySet
from smart_launch.registration import ClientRegistration

# What the app reads and writes: the chart for the check, and the note and check it files.
READS = (
    "Patient",
    "MedicationStatement",
    "MedicationRequest",
    "Medication",
    "Observation",
    "Condition",
    "Device",
    "DeviceUseStatement",
    "Procedure",
    "DocumentReference",
    "PractitionerRole",
)
WRITES = ("DocumentReference", "DetectedIssue", "Provenance", "QuestionnaireResponse", "Task")
# The pharmacist's decision appends a mitigation to the clinician's DetectedIssues (an outbox update).
UPDATES = ("DetectedIssue",)

_cache: dict[str, tuple[float, SmartConfiguration]] = {}
_lock = threading.Lock()


def discovery_for(iss: str) -> SmartConfiguration:
    """Return the EHR's SMART configuration, fetched at most once per TTL per process."""
    ttl = float(current_app.config["DISCOVERY_TTL_SECONDS"])
    with _lock:
        cached = _cache.get(iss)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    config = discover(iss, timeout=float(current_app.config["HTTP_TIMEOUT_SECONDS"]))
    with _lock:
        _cache[iss] = (time.monotonic() + ttl, config)
    return config


def forget_discovery() -> None:
    """Drop cached discovery documents (tests, key rotation at the EHR)."""
    with _lock:
        _cache.clear()


def signing_keys() -> KeySet:
    """Return the app's private keys for private_key_jwt."""
    keys: KeySet = current_app.extensions["itb.keys"]
    return keys


def client_registration(entry: EhrEntry) -> ClientRegistration:
    """Describe who the app is at this EHR, for the token endpoint."""
    return ClientRegistration(
        iss=entry.iss,
        client_id=entry.client_id,
        auth_method=entry.auth_method,  # type: ignore[arg-type]
        client_secret=entry.client_secret,
        signing_keys=signing_keys() if entry.auth_method == "private_key_jwt" else None,
        signing_alg=entry.signing_alg,  # type: ignore[arg-type]
    )


def requested_scope(entry: EhrEntry, config: SmartConfiguration, *, standalone: bool) -> str:
    """Return the scope to ask for: the registry's override, else v2 or v1 scopes per the server."""
    if entry.scope:
        return entry.scope
    # Written types are read and searched too: the outbox reads every write back and, on a retry or
    # at a server without conditional create, looks it up by its write identifier first.
    return build_scopes(
        (*READS, *WRITES),
        WRITES,
        style=scope_style(config),
        launch=not standalone,
        standalone=standalone,
        resource_updates=UPDATES,
    )
