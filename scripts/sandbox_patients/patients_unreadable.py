"""Patients whose current intrathecal dose cannot be known from the chart: the check must say so."""

from __future__ import annotations

from .chart import Chart, standard
from .dosage import ml_per_hour, per_day
from .registry import patient
from .timeline import at


@patient(
    pid="oral-only",
    name="Helen Park",
    origin="spinal",
    proposed=100,
    verdict="cannot-check",
    findings=("current-dose-unknown",),
    summary="Multiple sclerosis on oral baclofen 20 mg three times a day, no pump and no intrathecal record",
)
def oral_only(c: Chart) -> None:
    """Oral baclofen only (mg, route oral): must not be read as an intrathecal dose."""
    c.patient("Helen", "Park", "female", "1983-04-09", "SBX-0010")
    c.condition("origin", at(-3000), "ms")
    c.condition("spasticity", at(-1500), "spasticity")
    c.co_med("baclofen-oral", "baclofen 10 mg oral tablet", 20, "mg", 3, at(-300))
    standard(c, egfr=95)


@patient(
    pid="conflicting-records",
    name="Omar Haddad",
    origin="spinal",
    proposed=360,
    verdict="cannot-check",
    findings=("conflicting-current-doses",),
    summary="SCI, pump record says 330 ug/d but an old 300 ug/d order was never discontinued; try 360",
)
def conflicting_records(c: Chart) -> None:
    """Two active intrathecal orders (300 and 330 ug/d) plus an active statement at 330."""
    c.patient("Omar", "Haddad", "male", "1976-12-24", "SBX-0011")
    c.condition("origin", at(-2500), "sci", "Spinal cord injury, T11 incomplete")
    med = c.medication(2000)
    c.itb(med, [(at(-560), 250), (at(-200), 300), (at(-40), 330)], per_day, left_open=2)
    c.pump("synchromed", 20, implant_day=-700, last_fill_day=-40, cycle=90, next_refill_day=50)
    standard(c, egfr=90)


@patient(
    pid="unknown-concentration",
    name="Clara Jensen",
    origin="cerebral",
    proposed=330,
    verdict="cannot-check",
    findings=("current-dose-unknown", "unit-unconvertible"),
    summary="Cerebral palsy, dose written as 0.0125 mL/h but no concentration recorded anywhere",
)
def unknown_concentration(c: Chart) -> None:
    """mL/h with no strength on the Medication and no pump concentration Observation."""
    c.patient("Clara", "Jensen", "female", "1990-01-05", "SBX-0017")
    c.condition("origin", at(-9000), "cp")
    med = c.medication(1000, with_strength=False)
    c.itb(med, [(at(-400), 240), (at(-200), 300)], ml_per_hour(1000))  # 1000 ug/mL is never written down
    c.pump("synchromed", 20, implant_day=-600, last_fill_day=-30, cycle=90, next_refill_day=60)
    standard(c, egfr=99)
