"""Baseline patients: stable charts, one per origin and age, each writing the current dose a different way."""

from __future__ import annotations

from .chart import Chart, standard
from .dosage import every_12_hours, flex, per_day, per_hour
from .fhir import Json
from .registry import patient
from .timeline import at, monthly


@patient(
    pid="sci-adult",
    name="Alex Rivera",
    origin="spinal",
    proposed=600,
    verdict="block",
    findings=("increase-over-limit",),
    summary="Stable spinal cord injury, 400 ug/d at 2000 ug/mL; try +20 % = 480 (pass) or +50 % = 600 "
    "(block)",
)
def sci_adult(c: Chart) -> None:
    """Stable adult SCI; per-muscle MAS components; rate in ug/d."""
    c.patient("Alex", "Rivera", "male", "1981-03-14", "SBX-0001")
    c.condition("origin", at(-3650), "sci", "Spinal cord injury, T10 complete")
    c.condition("spasticity", at(-3400), "spasticity")
    med = c.medication(2000)
    c.itb(med, [(at(-900), 300), (at(-700), 340), (at(-420), 370), (at(-300), 400)], per_day)
    c.pump("synchromed", 20, implant_day=-1000, last_fill_day=-20, cycle=60, next_refill_day=40)
    c.scores(
        monthly(-10),
        "2 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+",
        "1 1 1 1 1 1 1 1 1 1 1 1",
        "4 3 3 3 3 3 3 3 3 3 3 3",
        mas_style="components",
    )
    standard(c, scores=False, egfr=94)


@patient(
    pid="ms-adult",
    name="Maria Lindqvist",
    origin="spinal",
    proposed=165,
    verdict="pass",
    findings=("oral-baclofen-active",),
    summary="Multiple sclerosis, low dose 6.25 ug/h (150 ug/d), oral baclofen still active; try 165 ug/d",
)
def ms_adult(c: Chart) -> None:
    """MS adult on a low dose written in ug/h, with oral baclofen kept during the wean; MAS as valueString."""
    c.patient("Maria", "Lindqvist", "female", "1978-09-02", "SBX-0002")
    c.condition("origin", at(-4000), "ms")
    c.condition("spasticity", at(-2000), "spasticity")
    med = c.medication(1000)
    c.itb(med, [(at(-420), 96), (at(-330), 120), (at(-240), 138), (at(-150), 150)], per_hour)
    c.co_med("baclofen-oral", "baclofen 10 mg oral tablet", 10, "mg", 3, at(-500))
    c.pump("synchromed", 20, implant_day=-420, last_fill_day=-30, cycle=90, next_refill_day=60)
    c.scores(
        monthly(-10),
        "2 2 1+ 1+ 1+ 1+ 1 1 1 1 1 1",
        "2 2 2 1 1 1 1 1 1 1 1 1",
        "6 5 5 4 4 4 3 3 3 3 3 3",
        mas_style="string",
    )
    standard(c, scores=False, egfr=88)


@patient(
    pid="cp-child-9",
    name="Noah Okafor",
    origin="cerebral",
    proposed=275,
    verdict="pass",
    findings=(),
    summary="Cerebral palsy, age 9, 250 ug/d written as 125 ug every 12 h; try +10 % = 275 (pass)",
)
def cp_child_9(c: Chart) -> None:
    """Child with CP; dose as doseQuantity ug with timing.repeat (period 12 h)."""
    c.patient("Noah", "Okafor", "male", "2017-05-20", "SBX-0003")
    c.condition("origin", at(-3000), "cp", "Spastic cerebral palsy")
    c.condition("spasticity", at(-2500), "spasticity")
    med = c.medication(1000)
    c.itb(
        med,
        [(at(-540), 150), (at(-420), 180), (at(-280), 204), (at(-150), 230), (at(-60), 250)],
        every_12_hours,
    )
    c.pump("synchromed", 20, implant_day=-540, last_fill_day=-20, cycle=60, next_refill_day=40)
    c.scores(
        monthly(-12), "2 2 2 2 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+", "2 2 2 2 2 1 1 1 1 1 1 1", "5 5 5 5 4 4 4 3 3 3 3 3"
    )
    standard(c, scores=False, egfr=None)


@patient(
    pid="cp-child-3",
    name="Lily Chen",
    origin="cerebral",
    proposed=110,
    verdict="warn",
    findings=("age-below-label",),
    summary="Cerebral palsy, age 3 (below the labelled age of 4), 100 ug/d at 500 ug/mL; try 110 ug/d",
)
def cp_child_3(c: Chart) -> None:
    """Three-year-old with CP; 500 ug/mL product known by text only."""
    c.patient("Lily", "Chen", "female", "2023-06-15", "SBX-0004")
    c.condition("origin", at(-1000), "cp", "Spastic cerebral palsy")
    med = c.medication(500)
    c.itb(med, [(at(-240), 60), (at(-180), 68), (at(-120), 78), (at(-80), 88), (at(-40), 100)], per_day)
    c.pump("synchromed", 20, implant_day=-240, last_fill_day=-30, cycle=70, next_refill_day=40)
    standard(c, egfr=None)


@patient(
    pid="epic-only",
    name="Jordan Ellis",
    origin="cerebral",
    proposed=385,
    verdict="pass",
    findings=(),
    summary="Adult cerebral palsy, 350 ug/d known only from MedicationRequest (no MedicationStatement); "
    "try 385",
)
def epic_only(c: Chart) -> None:
    """Dose only in MedicationRequests; MAS as a number (1.5 = 1+) as Epic flowsheets give it."""
    c.patient("Jordan", "Ellis", "female", "1998-08-12", "SBX-0009")
    c.condition("origin", at(-9000), "cp", "Cerebral palsy, spastic diplegia")
    c.condition("spasticity", at(-8000), "spasticity")
    med = c.medication(2000)
    c.itb(
        med, [(at(-600), 280), (at(-420), 310), (at(-250), 330), (at(-100), 350)], per_day, statements=False
    )
    c.pump("synchromed", 20, implant_day=-700, last_fill_day=-30, cycle=90, next_refill_day=60)
    c.scores(
        monthly(-10),
        "2 2 2 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+",
        "2 2 2 2 1 1 1 1 1 1 1 1",
        "5 5 5 4 4 4 4 4 4 4 4 4",
        mas_style="number",
    )
    standard(c, scores=False, egfr=110)


FLEX_STEPS = [("00:00:00", 15), ("06:00:00", 25), ("08:00:00", 15), ("20:00:00", 20)]


def flex_or_hourly(daily: float) -> list[Json]:
    """Dose form for flex-schedule: earlier levels were simple ug/h, the current one is a flex schedule."""
    return flex(FLEX_STEPS)(daily) if daily == 400 else per_hour(daily)


@patient(
    pid="flex-schedule",
    name="Ruth Adeyemi",
    origin="spinal",
    proposed=440,
    verdict="pass",
    findings=(),
    summary="SCI on a flex schedule (15/25/15/20 ug/h = 400 ug/d) at 1000 ug/mL; try 440 ug/d",
)
def flex_schedule(c: Chart) -> None:
    """Flex schedule: four timeOfDay steps in ug/h summing to 400 ug/d."""
    c.patient("Ruth", "Adeyemi", "female", "1965-10-03", "SBX-0012")
    c.condition("origin", at(-6000), "sci", "Spinal cord injury, C6 incomplete")
    c.condition("spasticity", at(-5800), "spasticity")
    med = c.medication(1000)
    c.itb(med, [(at(-700), 336), (at(-400), 384), (at(-90), 400)], flex_or_hourly)
    c.pump("synchromed", 40, implant_day=-800, last_fill_day=-30, cycle=75, next_refill_day=45)
    standard(c, egfr=72)
