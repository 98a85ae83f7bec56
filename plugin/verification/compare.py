"""What the pharmacist sees beside the clinician's check: the check re-run now, the differences, and an
independent calculator.

The re-run uses the same proposal (dose, phase, origin as submitted) on a fresh read of the chart. The
calculator recomputes rates, volumes and the alarm date from the numbers stored at submission with
``reservoir_projection``, never from the note's text, so a wrong number in the note shows up as a
disagreement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from plugin.clinician.models import DoseChangeRecord
from plugin.domain.chart import Chart, Origin, Phase, Pump
from plugin.domain.engine import check
from plugin.domain.result import CheckResult, Proposal
from plugin.domain.rules_config import Rules
from plugin.domain.rules_reservoir import pump_concentration, reservoir_projection

ALARM_AGREEMENT = timedelta(days=1)  # the note's alarm date and the calculator's may differ by rounding


def stored_check(record: DoseChangeRecord) -> dict[str, Any]:
    """Return the clinician's check as submitted (CONTRACT §3 JSON)."""
    data: dict[str, Any] = json.loads(record.check_json)
    return data


def rerun_check(chart: Chart, record: DoseChangeRecord, rules: Rules, now: datetime) -> CheckResult:
    """Run the check again on a fresh chart for the same proposal, phase and origin as submitted."""
    stored = stored_check(record)
    phase = Phase(stored["phase"]) if stored.get("phase") in ("titration", "maintenance") else None
    origin = Origin(stored["origin"]) if stored.get("origin") in ("spinal", "cerebral") else None
    proposal = Proposal(daily_dose_ug=record.proposed_dose_ug_per_day, phase=phase, origin=origin)
    return check(chart, proposal, rules, now)


@dataclass(frozen=True, slots=True)
class CheckDiff:
    """How the re-run differs from the check as submitted."""

    verdict_before: str
    verdict_after: str
    current_before: float | None
    current_after: float | None
    added: tuple[dict[str, Any], ...] = ()
    removed: tuple[dict[str, Any], ...] = ()
    severity_changed: tuple[tuple[str, str, str], ...] = ()  # (code, before, after)

    @property
    def verdict_changed(self) -> bool:
        """Whether the overall verdict moved."""
        return self.verdict_before != self.verdict_after

    @property
    def current_changed(self) -> bool:
        """Whether the current dose read from the chart moved (or appeared / disappeared)."""
        if self.current_before is None or self.current_after is None:
            return self.current_before != self.current_after
        return abs(self.current_before - self.current_after) > 1e-6

    @property
    def any(self) -> bool:
        """Whether anything differs."""
        return bool(
            self.verdict_changed
            or self.current_changed
            or self.added
            or self.removed
            or self.severity_changed
        )


def _by_code(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(f.get("code")): f for f in findings}


def _dose(result: dict[str, Any]) -> float | None:
    current = result.get("current_dose") or {}
    value = current.get("value")
    return None if value is None else float(value)


def diff_checks(before: dict[str, Any], after: dict[str, Any]) -> CheckDiff:
    """Compare two CONTRACT §3 results: verdict, current dose, findings added, removed or re-graded."""
    old, new = _by_code(before.get("findings") or []), _by_code(after.get("findings") or [])
    return CheckDiff(
        verdict_before=str(before.get("verdict")),
        verdict_after=str(after.get("verdict")),
        current_before=_dose(before),
        current_after=_dose(after),
        added=tuple(new[c] for c in new if c not in old),
        removed=tuple(old[c] for c in old if c not in new),
        severity_changed=tuple(
            (c, str(old[c].get("severity")), str(new[c].get("severity")))
            for c in new
            if c in old and old[c].get("severity") != new[c].get("severity")
        ),
    )


def _as_datetime(value: Any) -> datetime | None:
    """Read a stored date or datetime (ISO text) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


@dataclass(frozen=True, slots=True)
class Calculation:
    """The pharmacist's calculator: doses both ways, volumes, and the alarm at the proposed dose."""

    as_of: datetime
    current_ug_per_day: float | None
    proposed_ug_per_day: float
    concentration_ug_per_ml: float | None = None
    current_ml_per_day: float | None = None
    proposed_ml_per_day: float | None = None
    remaining_ml: float | None = None
    alarm_volume_ml: float | None = None
    days_to_alarm: float | None = None
    alarm_date: datetime | None = None
    next_refill_date: datetime | None = None
    note_alarm_date: datetime | None = None
    missing: tuple[str, ...] = field(default=())

    @property
    def current_ug_per_hour(self) -> float | None:
        """Return the current dose as an hourly rate."""
        return None if self.current_ug_per_day is None else self.current_ug_per_day / 24.0

    @property
    def proposed_ug_per_hour(self) -> float:
        """Return the proposed dose as an hourly rate."""
        return self.proposed_ug_per_day / 24.0

    @property
    def alarm_before_refill(self) -> bool | None:
        """Whether the alarm sounds before the scheduled refill (None when either is unknown)."""
        if self.alarm_date is None or self.next_refill_date is None:
            return None
        return self.alarm_date < self.next_refill_date

    @property
    def agrees_with_note(self) -> bool | None:
        """Whether the note's alarm date is within a day of the recomputed one (None: not comparable)."""
        if self.alarm_date is None or self.note_alarm_date is None:
            return None
        return abs(self.alarm_date - self.note_alarm_date) <= ALARM_AGREEMENT


def calculate(
    current_ug_per_day: float | None,
    proposed_ug_per_day: float,
    summary: dict[str, Any],
    as_of: datetime,
    rules: Rules,
) -> Calculation:
    """Recompute from stored numbers: the volume remaining at ``as_of`` plays the fill, so
    ``reservoir_projection`` measures days to the alarm from that moment."""
    concentration = _number(summary.get("concentration_ug_per_ml"))
    remaining = _number(summary.get("volume_remaining_ml"))
    alarm = _number(summary.get("alarm_volume_ml"))
    base = Calculation(
        as_of=as_of,
        current_ug_per_day=current_ug_per_day,
        proposed_ug_per_day=proposed_ug_per_day,
        concentration_ug_per_ml=concentration,
        remaining_ml=remaining,
        alarm_volume_ml=alarm,
        next_refill_date=_as_datetime(summary.get("next_refill_date")),
        note_alarm_date=_as_datetime(summary.get("low_reservoir_alarm_date")),
    )
    missing = [
        label
        for label, value in (
            ("concentration", concentration),
            ("volume remaining", remaining),
            ("current dose", current_ug_per_day),
        )
        if value is None
    ]
    if concentration is None or concentration <= 0:
        return replace(base, missing=tuple(missing))
    base = replace(
        base,
        current_ml_per_day=None if current_ug_per_day is None else current_ug_per_day / concentration,
        proposed_ml_per_day=proposed_ug_per_day / concentration,
    )
    pump = Pump(
        source=None, fill_volume_ml=remaining, last_fill_date=as_of, low_reservoir_alarm_volume_ml=alarm
    )
    projection = reservoir_projection(
        pump, current_ug_per_day, proposed_ug_per_day, concentration, as_of, rules
    )
    if projection is None:
        return replace(base, missing=tuple(missing) or ("a positive proposed dose",))
    return replace(
        base,
        alarm_volume_ml=projection.low_reservoir_alarm_volume_ml,
        days_to_alarm=projection.days_to_alarm,
        alarm_date=projection.low_reservoir_alarm_date,
        missing=tuple(missing),
    )


def calculate_from_chart(
    chart: Chart, current_ug_per_day: float | None, proposed_ug_per_day: float, now: datetime, rules: Rules
) -> Calculation:
    """Compute the same calculator on a fresh chart at ``now`` (the pump as it is recorded today)."""
    concentration, _ = pump_concentration(chart)
    pump = chart.pump
    summary: dict[str, Any] = {"concentration_ug_per_ml": concentration}
    if pump is not None:
        projection = reservoir_projection(
            pump, current_ug_per_day, proposed_ug_per_day, concentration, now, rules
        )
        summary.update(
            volume_remaining_ml=projection.remaining_volume_ml if projection else None,
            alarm_volume_ml=pump.low_reservoir_alarm_volume_ml,
            next_refill_date=pump.next_refill_date,
        )
    return calculate(current_ug_per_day, proposed_ug_per_day, summary, now, rules)
