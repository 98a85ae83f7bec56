"""Rules on the patient: origin, co-medication, withdrawal signs, age, kidneys, pregnancy.

Codes: origin-unknown, cns-depressant, oral-baclofen-active, withdrawal-signs, age-below-label,
renal-impairment, pregnancy (CONTRACT §4; clinical.md §1.1, §3.1, §4).
"""

from __future__ import annotations

from datetime import timedelta

from plugin.domain.chart import Origin
from plugin.domain.result import Finding
from plugin.domain.rules_common import CheckContext, fmt_date, fmt_number

CNS_CLASS_WORDS = {
    "benzodiazepine": "benzodiazepine",
    "opioid": "opioid",
    "barbiturate": "barbiturate",
    "gabapentinoid": "gabapentinoid",
    "z-drug": "z-drug hypnotic",
    "muscle-relaxant": "muscle relaxant",
}


def evaluate(ctx: CheckContext) -> list[Finding]:
    """Return the findings about the patient."""
    return (
        _origin(ctx)
        + _cns_depressants(ctx)
        + _oral_baclofen(ctx)
        + _withdrawal_signs(ctx)
        + _age(ctx)
        + _renal(ctx)
        + _pregnancy(ctx)
    )


def _origin(ctx: CheckContext) -> list[Finding]:
    """Warn that the origin is unknown and the stricter cerebral limits were applied."""
    if ctx.origin is not Origin.UNKNOWN:
        return []
    return [
        ctx.finding(
            "origin-unknown",
            "No recorded condition tells spinal from cerebral origin, so the stricter cerebral-origin "
            "limits were applied. Give the origin explicitly if it is known.",
        )
    ]


def _cns_depressants(ctx: CheckContext) -> list[Finding]:
    """Warn about an increase while another CNS depressant is active (clinical.md §4)."""
    if not ctx.is_increase:
        return []
    active = [med for med in ctx.chart.co_medications if med.is_cns_depressant]
    if not active:
        return []
    names = "; ".join(dict.fromkeys(f"{med.display} ({_class_words(med.classes)})" for med in active))
    return [
        ctx.finding(
            "cns-depressant",
            f"Increase while CNS depressants are active: {names}. Effects add up (sedation, respiratory "
            "depression, hypotension): monitor closely.",
            tuple(med.source for med in active),
        )
    ]


def _oral_baclofen(ctx: CheckContext) -> list[Finding]:
    """Note oral baclofen alongside the pump: wean it and keep it for rescue (clinical.md §4)."""
    oral = [med for med in ctx.chart.co_medications if "oral-baclofen" in med.classes]
    if not oral:
        return []
    names = "; ".join(dict.fromkeys(med.display for med in oral))
    return [
        ctx.finding(
            "oral-baclofen-active",
            f"Oral baclofen is active alongside the pump ({names}). "
            "Oral doses are in mg, intrathecal doses in ug: keep the units apart.",
            tuple(med.source for med in oral),
        )
    ]


def _withdrawal_signs(ctx: CheckContext) -> list[Finding]:
    """Warn about fever, hypotension, pruritus or altered mental status in the window before ``now``."""
    rules = ctx.rules
    start = ctx.now - timedelta(hours=rules.withdrawal_window_hours)
    window = f"{fmt_number(rules.withdrawal_window_hours)} h"
    vitals = [v for v in ctx.chart.vitals if start <= v.effective <= ctx.now]
    signs: list[str] = []
    evidence: list[str] = []
    for vital in vitals:
        if vital.kind == "temperature" and vital.value >= rules.fever_min_cel:
            signs.append(f"fever {fmt_number(vital.value)} Cel on {fmt_date(vital.effective)}")
            evidence.append(vital.source)
        elif vital.kind == "systolic" and vital.value < rules.hypotension_systolic_below_mmhg:
            signs.append(
                f"systolic blood pressure {fmt_number(vital.value)} mm[Hg] on {fmt_date(vital.effective)}"
            )
            evidence.append(vital.source)
    for sign in ctx.chart.clinical_signs:
        if start <= sign.effective <= ctx.now:
            signs.append(f"{sign.display} on {fmt_date(sign.effective)}")
            evidence.append(sign.source)
    if signs:
        return [
            ctx.finding(
                "withdrawal-signs",
                f"Signs consistent with baclofen withdrawal in the {window} before the check: "
                f"{'; '.join(signs)}. Evaluate the pump and catheter (reservoir, programming, catheter "
                "integrity) before assuming the dose is simply too low.",
                tuple(evidence),
            )
        ]
    kinds = {v.kind for v in vitals}
    missing = [
        name
        for kind, name in (("temperature", "body temperature"), ("systolic", "blood pressure"))
        if kind not in kinds
    ]
    if not missing:
        return []
    return [
        ctx.not_evaluated(
            "withdrawal-signs",
            f"no {' or '.join(missing)} is recorded in the {window} before the check, so fever or "
            "hypotension could not be looked for",
        )
    ]


def _age(ctx: CheckContext) -> list[Finding]:
    """Warn below the labelled age; say so when the age is unknown (clinical.md §1.1, §4)."""
    label_age = ctx.rules.age_below_label_years
    if ctx.age_years is None:
        return [
            ctx.not_evaluated(
                "age-below-label",
                f"no birth date is recorded, so the age (label: {label_age} years and older) is unknown; the "
                "stricter pediatric limits were applied",
            )
        ]
    if ctx.age_years >= label_age:
        return []
    return [
        ctx.finding(
            "age-below-label",
            f"The patient is {ctx.age_years} years old; intrathecal baclofen safety is not established below "
            f"{label_age} years.",
            (ctx.chart.patient.reference,),
        )
    ]


def _renal(ctx: CheckContext) -> list[Finding]:
    """Warn when the latest eGFR is below the threshold (clinical.md §4)."""
    threshold = ctx.rules.egfr_below_ml_min_173m2
    egfr = ctx.chart.egfr
    if egfr is None:
        return [ctx.not_evaluated("renal-impairment", "no eGFR is recorded")]
    if egfr.value >= threshold:
        return []
    return [
        ctx.finding(
            "renal-impairment",
            f"The latest eGFR is {fmt_number(egfr.value)} mL/min/1.73m2 ({fmt_date(egfr.effective)}), below "
            f"{fmt_number(threshold)}. Baclofen is cleared by the kidney: use caution and consider a "
            "smaller step.",
            (egfr.source,),
        )
    ]


def _pregnancy(ctx: CheckContext) -> list[Finding]:
    """Warn when an active pregnancy is recorded (clinical.md §4)."""
    pregnancy = ctx.chart.pregnancy
    if pregnancy is None:
        return []
    return [
        ctx.finding(
            "pregnancy",
            f"An active pregnancy is recorded ({pregnancy.display}). Weigh the change with obstetrics; "
            "neonatal withdrawal has been reported after maternal baclofen.",
            (pregnancy.source,),
        )
    ]


def _class_words(classes: frozenset[str]) -> str:
    """Name a medication's CNS-depressant classes in plain words."""
    return ", ".join(CNS_CLASS_WORDS.get(c, c) for c in sorted(classes - {"oral-baclofen"}))
