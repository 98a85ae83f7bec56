"""The patient's ITB picture for the page: regimen, pump and reservoir, origin, co-medications, vitals.

Derived from the typed chart only; the page never reads FHIR JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from plugin.domain.chart import Chart, CoMedication, DoseRecord, Score, VitalSign
from plugin.domain.rules_config import Rules
from plugin.domain.rules_reservoir import ReservoirProjection, pump_concentration, reservoir_projection

RECENT_VITALS = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Picture:
    """What the page shows before any proposal."""

    current_daily_dose_ug: float | None
    regimen: tuple[DoseRecord, ...]
    concentration_ug_per_ml: float | None
    projection: ReservoirProjection | None  # at the current dose
    latest_scores: tuple[Score, ...]
    temperature: VitalSign | None
    blood_pressure: tuple[VitalSign | None, VitalSign | None]
    cns_depressants: tuple[CoMedication, ...]
    oral_baclofen: tuple[CoMedication, ...]


def single_current_dose(chart: Chart) -> float | None:
    """Return the current daily dose when all active records agree on one, else None."""
    doses = {round(r.daily_dose_ug, 3) for r in chart.dose_records if r.daily_dose_ug is not None}
    if len(doses) != 1 or any(r.daily_dose_ug is None for r in chart.dose_records):
        return None
    return doses.pop()


def _latest(vitals: list[VitalSign], kind: str) -> VitalSign | None:
    matching = [v for v in vitals if v.kind == kind]
    return max(matching, key=lambda v: v.effective) if matching else None


def build_picture(chart: Chart, rules: Rules, now: datetime) -> Picture:
    """Summarise the chart for the page at ``now``."""
    current = single_current_dose(chart)
    concentration, _ = pump_concentration(chart)
    projection = None
    if chart.pump is not None and current:
        projection = reservoir_projection(chart.pump, current, current, concentration, now, rules)
    latest: dict[str, Score] = {}
    for score in chart.scores:
        if score.code not in latest or score.effective > latest[score.code].effective:
            latest[score.code] = score
    recent = [v for v in chart.vitals if v.effective >= now - RECENT_VITALS]
    return Picture(
        current_daily_dose_ug=current,
        regimen=chart.dose_records,
        concentration_ug_per_ml=concentration,
        projection=projection,
        latest_scores=tuple(sorted(latest.values(), key=lambda s: s.code)),
        temperature=_latest(recent, "temperature"),
        blood_pressure=(_latest(recent, "systolic"), _latest(recent, "diastolic")),
        cns_depressants=tuple(m for m in chart.co_medications if m.is_cns_depressant),
        oral_baclofen=tuple(m for m in chart.co_medications if "oral-baclofen" in m.classes),
    )
