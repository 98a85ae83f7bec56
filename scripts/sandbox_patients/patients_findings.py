"""Patients whose chart should raise a clinical finding: timing, withdrawal, interactions, reservoir, trends."""

from __future__ import annotations

from .chart import Chart, standard
from .dosage import ml_per_hour, per_day, per_day_ratio, per_hour
from .registry import patient
from .timeline import at, hours_before, monthly


@patient(
    pid="titration-sci",
    name="Samuel Brooks",
    origin="spinal",
    phase="titration",
    proposed=140,
    verdict="block",
    findings=("increase-too-soon",),
    summary="Spinal cord injury, pump implanted 14 days ago, raised 100 -> 120 ug/d 12 h ago; try 140 ug/d",
)
def titration_sci(c: Chart) -> None:
    """Titration phase: implant 14 days before the anchor, last increase 12 hours before it."""
    c.patient("Samuel", "Brooks", "male", "1994-01-22", "SBX-0005")
    c.condition("origin", at(-2200), "sci", "Spinal cord injury, T6 incomplete")
    c.condition("spasticity", at(-1800), "spasticity")
    med = c.medication(1000)
    c.itb(med, [(at(-14, "08:00"), 100), (hours_before(12), 120)], per_day)
    c.pump("prometra", 20, implant_day=-14, last_fill_day=-14, cycle=90, next_refill_day=76)
    c.scores(
        monthly(-45, 10) + [-7, -1],
        "3 3 3 3 3 3 3 3 3 3 2 2",
        "3 3 3 3 3 3 3 3 3 2 2 2",
        "7 7 7 8 7 7 7 7 7 7 5 5",
    )
    standard(c, scores=False, egfr=101)


@patient(
    pid="withdrawal-signs",
    name="Daniel Weber",
    origin="spinal",
    proposed=660,
    verdict="warn",
    findings=("withdrawal-signs",),
    summary="High SCI, 600 ug/d as 0.0125 mL/h at 2000 ug/mL; fever 38.4, pruritus, BP 85/50, confusion "
    "in the last 48 h; try 660",
)
def withdrawal_signs(c: Chart) -> None:
    """Signs of withdrawal in the last 48 h; dose as mL/h with the Medication's concentration."""
    c.patient("Daniel", "Weber", "male", "1987-07-30", "SBX-0006")
    c.condition("origin", at(-3000), "sci", "Spinal cord injury, T4 complete")
    c.condition("spasticity", at(-2900), "spasticity")
    med = c.medication(2000)
    c.itb(med, [(at(-700), 480), (at(-400), 528), (at(-250), 552), (at(-120), 600)], ml_per_hour(2000))
    c.pump("synchromed", 40, implant_day=-800, last_fill_day=-10, cycle=90, next_refill_day=80)
    c.scores(
        monthly(-2),
        "1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 3",
        "1 1 1 1 1 1 1 1 1 1 1 3",
        "3 3 3 3 3 3 3 3 3 3 3 7",
    )
    c.vitals("01", at(-6, "09:00"), 36.8, 120, 76)
    c.temperature("02", hours_before(30), 38.4)
    c.blood_pressure("02", hours_before(20), 85, 50)
    c.condition("pruritus", hours_before(36), text="Pruritus", category="encounter-diagnosis")
    c.condition(
        "altered-mental-status", hours_before(6), text="Altered mental status", category="encounter-diagnosis"
    )
    c.egfr("01", at(-90, "08:00"), 97)


@patient(
    pid="cns-depressants",
    name="Peter Novak",
    origin="cerebral",
    proposed=330,
    verdict="warn",
    findings=("cns-depressant",),
    summary="Traumatic brain injury, 300 ug/d, on diazepam and oxycodone; try +10 % = 330 ug/d",
)
def cns_depressants(c: Chart) -> None:
    """Cerebral origin with a benzodiazepine and an opioid active."""
    c.patient("Peter", "Novak", "male", "1972-11-05", "SBX-0007")
    c.condition("origin", at(-4000), "tbi", "Traumatic brain injury (2015)")
    c.condition("spasticity", at(-3500), "spasticity")
    med = c.medication(2000)
    c.itb(med, [(at(-720), 200), (at(-500), 230), (at(-300), 260), (at(-90), 300)], per_day)
    c.co_med("diazepam", "diazepam 5 mg tablet", 5, "mg", 2, at(-200))
    c.co_med("oxycodone", "oxycodone 5 mg tablet", 5, "mg", 4, at(-60))
    c.pump("synchromed", 20, implant_day=-720, last_fill_day=-30, cycle=90, next_refill_day=60)
    standard(c, egfr=85)


@patient(
    pid="reservoir-alarm",
    name="Grace Holm",
    origin="spinal",
    proposed=420,
    verdict="warn",
    findings=("reservoir-before-refill",),
    summary="SCI, 380 ug/d, 20 mL filled 30 days ago, refill due in 60 days: alarm falls just after it "
    "now and before it at 420",
)
def reservoir_alarm(c: Chart) -> None:
    """At 420 ug/d the low-reservoir alarm (2 mL) comes before the scheduled refill."""
    c.patient("Grace", "Holm", "female", "1969-02-18", "SBX-0008")
    c.condition("origin", at(-5000), "sci", "Spinal cord injury, T8 complete")
    c.condition("spasticity", at(-4500), "spasticity")
    med = c.medication(2000)
    c.itb(med, [(at(-900), 300), (at(-600), 340), (at(-180), 380)], per_day)
    c.pump("synchromed", 20, implant_day=-1000, last_fill_day=-30, cycle=90, next_refill_day=60)
    standard(c, egfr=79)


@patient(
    pid="dose-creep-renal",
    name="George Miller",
    origin="spinal",
    proposed=460,
    verdict="warn",
    findings=("dose-creep", "renal-impairment"),
    summary="SCI, 260 -> 440 ug/d over a year (2 raises in the last 30 days), scores no better, eGFR 25; "
    "try 460",
)
def dose_creep_renal(c: Chart) -> None:
    """Dose creep (180 ug/d of increases in 365 days, 2 in 30 days) with falling eGFR."""
    c.patient("George", "Miller", "male", "1964-05-27", "SBX-0013")
    c.condition("origin", at(-7000), "sci", "Spinal cord injury, T7 complete")
    c.condition("spasticity", at(-6800), "spasticity")
    med = c.medication(2000)
    c.itb(
        med,
        [(at(-500), 260), (at(-330), 300), (at(-200), 340), (at(-100), 380), (at(-25), 420), (at(-8), 440)],
        per_day,
    )
    c.pump("synchromed", 20, implant_day=-1200, last_fill_day=-25, cycle=60, next_refill_day=35)
    c.scores(
        monthly(-5),
        "2 2 2 2 2 2 2 2 2 2 2 3",
        "2 2 2 2 2 3 3 2 3 3 3 3",
        "5 5 5 6 6 6 6 6 7 7 7 7",
        mas_style="components",
    )
    c.routine_vitals()
    c.egfr("01", at(-200, "08:00"), 38, "33914-3")
    c.egfr("02", at(-20, "08:00"), 25, "33914-3")


@patient(
    pid="stale-unknown-origin",
    name="Ivan Petrov",
    origin="unknown",
    proposed=330,
    verdict="warn",
    findings=("origin-unknown", "assessment-stale", "concentration-nonstandard"),
    summary="Spasticity of unrecorded cause, last score 120 days ago, compounded 1500 ug/mL; 300 ug/d, "
    "try 330",
)
def stale_unknown_origin(c: Chart) -> None:
    """No origin condition, no score in the last 90 days, nonstandard concentration."""
    c.patient("Ivan", "Petrov", "male", "1959-03-11", "SBX-0014")
    c.condition("spasticity", at(-3000), "spasticity", "Spasticity of lower limbs")
    med = c.medication(1500)
    c.itb(med, [(at(-600), 240), (at(-300), 270), (at(-150), 300)], per_day)
    c.pump("synchromed", 20, implant_day=-900, last_fill_day=-30, cycle=75, next_refill_day=45)
    c.scores(
        monthly(-120), "2 2 2 2 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+", "2 2 2 2 1 1 1 1 1 1 1 1", "6 6 5 5 4 4 4 4 4 4 4 4"
    )
    standard(c, scores=False, egfr=70)


@patient(
    pid="pregnancy",
    name="Sofia Marquez",
    origin="spinal",
    proposed=275,
    verdict="warn",
    findings=("pregnancy",),
    summary="SCI, pregnant (about 17 weeks), 250 ug/d as a rate ratio, Prometra II pump; try 275 ug/d",
)
def pregnancy(c: Chart) -> None:
    """Active pregnancy (text-only Condition); strength written as 2 mg/mL; dose as rateRatio."""
    c.patient("Sofia", "Marquez", "female", "1995-07-19", "SBX-0015")
    c.condition("origin", at(-2000), "sci", "Spinal cord injury, T12 incomplete")
    c.condition("spasticity", at(-1900), "spasticity")
    c.condition("pregnancy", at(-120), text="Pregnancy")
    med = c.medication(2000, strength_in_mg=True)
    c.itb(med, [(at(-500), 200), (at(-300), 225), (at(-150), 250)], per_day_ratio)
    c.pump("prometra", 20, implant_day=-700, last_fill_day=-30, cycle=90, next_refill_day=60)
    standard(c, egfr=118)


@patient(
    pid="score-conflict",
    name="Walter Young",
    origin="cerebral",
    proposed=312,
    verdict="warn",
    findings=("score-conflict",),
    summary="Stroke, 12 ug/h (288 ug/d); latest scores improved (MAS 2 -> 1+, NRS 6 -> 4); try 13 ug/h",
)
def score_conflict(c: Chart) -> None:
    """An increase proposed although the latest scores improved on the ones before."""
    c.patient("Walter", "Young", "male", "1959-09-14", "SBX-0016")
    c.condition("origin", at(-1500), "stroke", "Ischemic stroke, left middle cerebral artery")
    c.condition("spasticity", at(-1400), "spasticity")
    med = c.medication(2000)
    c.itb(med, [(at(-500), 240), (at(-300), 264), (at(-120), 288)], per_hour)
    c.pump("synchromed", 20, implant_day=-700, last_fill_day=-30, cycle=90, next_refill_day=60)
    c.scores(monthly(-7), "2 2 2 2 2 2 2 2 2 2 2 1+", "3 3 3 3 3 3 3 3 3 3 3 2", "6 6 6 6 6 6 6 6 6 6 6 4")
    standard(c, scores=False, egfr=64)
