"""The check's result, shaped exactly as CONTRACT §3, and the proposal it answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from plugin.domain.chart import Origin, Phase


class Severity(StrEnum):
    """How serious one finding is."""

    BLOCK = "block"
    WARN = "warn"
    INFO = "info"
    CANNOT_CHECK = "cannot-check"


class Verdict(StrEnum):
    """The overall answer for one proposal."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    BLOCK = "block"
    CANNOT_CHECK = "cannot-check"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed new intrathecal daily dose, with the clinician's optional phase and origin overrides."""

    daily_dose_ug: float
    phase: Phase | None = None
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason the change is or is not safe; ``code`` is a CONTRACT §4 finding code."""

    code: str
    severity: Severity
    message: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the finding as CONTRACT §3 JSON."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer to one proposal on one chart at one moment (CONTRACT §3)."""

    verdict: Verdict
    patient: str
    evaluated_at: datetime
    current_daily_dose_ug: float | None
    current_dose_source: str | None
    proposed_daily_dose_ug: float
    change_percent: float | None
    origin: Origin
    phase: Phase
    findings: tuple[Finding, ...]
    rules_version: str

    def to_json(self) -> dict[str, Any]:
        """Return the result as CONTRACT §3 JSON (doses always in ug/d)."""
        current = None
        if self.current_daily_dose_ug is not None:
            current = {
                "value": self.current_daily_dose_ug,
                "unit": "ug/d",
                "source": self.current_dose_source,
            }
        return {
            "verdict": self.verdict.value,
            "patient": self.patient,
            "evaluated_at": self.evaluated_at.isoformat(),
            "current_dose": current,
            "proposed_dose": {"value": self.proposed_daily_dose_ug, "unit": "ug/d"},
            "change_percent": self.change_percent,
            "origin": self.origin.value,
            "phase": self.phase.value,
            "findings": [f.to_json() for f in self.findings],
            "rules_version": self.rules_version,
        }
