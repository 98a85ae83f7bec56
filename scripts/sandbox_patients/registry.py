"""The patients' manifest entries, the decorator that registers a builder, and the manifest's order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chart import Chart

Builder = Callable[[Chart], None]

# The manifest (and so the sandbox's patient list) keeps this order, whichever module defines a patient.
MANIFEST_ORDER = (
    "sci-adult",
    "ms-adult",
    "cp-child-9",
    "cp-child-3",
    "titration-sci",
    "withdrawal-signs",
    "cns-depressants",
    "reservoir-alarm",
    "epic-only",
    "oral-only",
    "conflicting-records",
    "flex-schedule",
    "dose-creep-renal",
    "stale-unknown-origin",
    "pregnancy",
    "score-conflict",
    "unknown-concentration",
)


@dataclass(frozen=True)
class Meta:
    """A patient's manifest entry plus what the self-check needs to know (origin, phase)."""

    pid: str
    name: str
    summary: str
    proposed: int
    verdict: str
    findings: tuple[str, ...]
    origin: str
    phase: str = "maintenance"
    tenants: tuple[str, ...] = ("full", "epic-like")


REGISTRY: list[tuple[Meta, Builder]] = []


def patient(**meta: Any) -> Callable[[Builder], Builder]:
    """Register a patient builder with its manifest entry."""

    def register(build: Builder) -> Builder:
        """Record ``build`` with its entry and return it unchanged."""
        REGISTRY.append((Meta(**meta), build))
        return build

    return register


def registered() -> list[tuple[Meta, Builder]]:
    """Return every registered patient in manifest order, failing if the order and the registry differ."""
    by_pid = {meta.pid: (meta, build) for meta, build in REGISTRY}
    if len(by_pid) != len(REGISTRY) or set(by_pid) != set(MANIFEST_ORDER):
        raise SystemExit(f"MANIFEST_ORDER and the registered patients differ: {sorted(by_pid)}")
    return [by_pid[pid] for pid in MANIFEST_ORDER]
