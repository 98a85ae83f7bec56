"""Generate the sandbox EHR's synthetic patients: ``config/sandbox/patients/*.json`` and ``manifest.toml``.

Each patient is one FHIR R4 ``transaction`` Bundle of ``PUT`` entries (no fullUrl), Patient first, with
stable ids prefixed per patient. All times are written relative to ``ANCHOR``; the sandbox shifts them to
"today" by whole days. The output is deterministic: no randomness, no clock, insertion-ordered JSON.

Codes are only those in ../shared/CONTRACT.md §5 and ../shared/reference/clinical.md §5 (SNOMED conditions,
route 72607000, substance 387342009; RxNorm 1666613 and 1300890; LOINC vital signs and eGFR) and the
project's own CodeSystems (spasticity, mas-grade, pump). Where no verified code exists a resource carries
plain text only: the 500 and 1500 ug/mL products, pruritus, altered mental status, pregnancy, every
co-medication (oral baclofen, diazepam, oxycodone), the oral route, muscles, pump procedures and devices.

Before writing, ``self_check`` recomputes the expected findings that follow from the generated numbers
(step limit, increase too soon, dose creep, stale or conflicting scores, reservoir, refill interval,
concentration, age) so that the manifest's ``expect`` cannot drift from the data.

Usage: ``python scripts/make_sandbox_patients.py [--out DIR]`` (default ``config/sandbox``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

Json = dict[str, Any]
ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SPASTICITY = "http://itb-dose-check.org/CodeSystem/spasticity"
MAS_GRADE = "http://itb-dose-check.org/CodeSystem/mas-grade"
PUMP = "http://itb-dose-check.org/CodeSystem/pump"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN_SYSTEM = "http://itb-dose-check.org/sandbox/mrn"
ROUTE_IT = {
    "coding": [{"system": SNOMED, "code": "72607000", "display": "Intrathecal route"}],
    "text": "intrathecal",
}
ROUTE_ORAL = {"text": "oral"}  # no verified SNOMED route code for oral in the reference
# Origin conditions (SNOMED, clinical.md §5); SCI has no verified display, so text only beside the code.
CONDITIONS = {
    "sci": ("90584004", None),
    "ms": ("24700007", "Multiple sclerosis"),
    "cp": ("128188000", "Cerebral palsy"),
    "tbi": ("127295002", "Traumatic brain injury"),
    "stroke": ("230690007", "Cerebrovascular accident"),
    "spasticity": ("221360009", "Spasticity"),
}
# Pump concentrations (ug/mL) -> verified RxNorm SCD or None (text only).
PRODUCTS: dict[float, tuple[str | None, str]] = {
    2000: ("1666613", "20 ML baclofen 2 MG/ML Injection"),
    1000: ("1300890", "20 ML baclofen 1 MG/ML Injection"),
    500: (None, "Lioresal Intrathecal (baclofen) 500 mcg/mL"),
    1500: (None, "baclofen 1500 mcg/mL intrathecal, compounded dilution"),
}
MAS_LOWER = {"0": "0", "1": "0", "1+": "1", "2": "1+", "3": "2", "4": "3"}
SCORE_NAMES = {
    "mas": "Modified Ashworth Scale",
    "psfs-frequency": "Penn Spasm Frequency Scale, frequency",
    "psfs-severity": "Penn Spasm Frequency Scale, severity",
    "spasticity-nrs": "Spasticity numeric rating scale (0-10)",
}


def at(day: int, clock: str = "10:00") -> str:
    """Return the ISO dateTime ``day`` days from the anchor's date at ``clock`` UTC."""
    return f"{(ANCHOR.date() + timedelta(days=day)).isoformat()}T{clock}:00Z"


def hours_before(hours: int) -> str:
    """Return the ISO dateTime ``hours`` hours before the anchor."""
    return (ANCHOR - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(iso: str) -> datetime:
    """Parse one of our ISO dateTimes."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def qty(value: float, code: str, unit: str | None = None) -> Json:
    """Return a UCUM Quantity."""
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


def cc(system: str, code: str, display: str | None, text: str) -> Json:
    """Return a CodeableConcept with one coding (display omitted when unknown) and text."""
    coding = {"system": system, "code": code} | ({"display": display} if display else {})
    return {"coding": [coding], "text": text}


def exact(value: float) -> float:
    """Round a rate to 6 decimals, refusing values that do not round-trip (keeps doses exact)."""
    rounded = round(value, 6)
    assert abs(rounded - value) < 1e-9, f"inexact rate {value}"
    return int(rounded) if rounded == int(rounded) else rounded


@dataclass
class Chart:
    """One synthetic patient under construction: its resources and the facts the self-check needs."""

    pid: str
    resources: list[Json] = field(default_factory=list)
    history: list[tuple[str, float]] = field(default_factory=list)  # (start, ug/d), oldest first
    conc: float | None = None
    fills: list[tuple[str, float]] = field(default_factory=list)
    next_refill: str | None = None
    alarm_ml: float = 2.0
    birth: date | None = None
    score_log: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # code -> (day, ordinal)

    @property
    def ref(self) -> str:
        """Return the Patient reference."""
        return f"Patient/{self.pid}"

    def add(self, rtype: str, suffix: str, body: Json) -> str:
        """Add a resource with id ``<abbr>-<pid>-<suffix>`` (the Patient's id is the pid); return its ref."""
        abbr = {
            "Patient": "",
            "Medication": "med",
            "MedicationStatement": "ms",
            "MedicationRequest": "mr",
            "Observation": "obs",
            "Condition": "cond",
            "Device": "dev",
            "DeviceUseStatement": "dus",
            "Procedure": "proc",
        }[rtype]
        rid = self.pid if rtype == "Patient" else f"{abbr}-{self.pid}-{suffix}"
        self.resources.append({"resourceType": rtype, "id": rid} | body)
        return f"{rtype}/{rid}"

    def patient(self, given: str, family: str, gender: str, birth: str, mrn: str) -> None:
        """Add the Patient."""
        self.birth = date.fromisoformat(birth)
        self.add(
            "Patient",
            "",
            {
                "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            },
        )

    def condition(
        self,
        suffix: str,
        onset: str,
        key: str | None = None,
        text: str | None = None,
        category: str = "problem-list-item",
    ) -> None:
        """Add an active, confirmed Condition: SNOMED ``key`` from CONDITIONS, or text only."""
        if key:
            code, display = CONDITIONS[key]
            concept = cc(SNOMED, code, display, text or display or key)
        else:
            concept = {"text": text}
        cat = "http://terminology.hl7.org/CodeSystem/condition-category"
        self.add(
            "Condition",
            suffix,
            {
                "clinicalStatus": cc(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active", "Active"
                ),
                "verificationStatus": cc(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "confirmed",
                    "Confirmed",
                    "Confirmed",
                ),
                "category": [{"coding": [{"system": cat, "code": category}]}],
                "code": concept,
                "subject": {"reference": self.ref},
                "onsetDateTime": onset,
                "recordedDate": onset,
            },
        )

    def medication(self, conc: float, strength_in_mg: bool = False, with_strength: bool = True) -> str:
        """Add the intrathecal baclofen Medication at ``conc`` ug/mL; return its reference."""
        rxcui, name = PRODUCTS[conc] if with_strength else (None, "baclofen intrathecal injection")
        code = cc(RXNORM, rxcui, name, name) if rxcui else {"text": name}
        ingredient: Json = {
            "itemCodeableConcept": cc(SNOMED, "387342009", "Baclofen (substance)", "baclofen"),
            "isActive": True,
        }
        if with_strength:
            num = qty(conc / 1000, "mg") if strength_in_mg else qty(conc, "ug")
            ingredient["strength"] = {"numerator": num, "denominator": qty(1, "mL")}
            self.conc = conc
        return self.add("Medication", "itb", {"code": code, "status": "active", "ingredient": [ingredient]})

    def itb(
        self,
        med: str,
        history: list[tuple[str, float]],
        form: Callable[[float], list[Json]],
        statements: bool = True,
        requests: bool = True,
        left_open: int | None = None,
    ) -> None:
        """Add the intrathecal dose history: one MedicationStatement and MedicationRequest per dose level."""
        self.history = history
        prior: str | None = None
        for i, (start, daily) in enumerate(history, 1):
            current = i == len(history)
            end = None if current else history[i][0]
            dosage = form(daily)
            if statements:
                period = {"start": start} | ({"end": end} if end else {})
                self.add(
                    "MedicationStatement",
                    f"itb-{i:02d}",
                    {
                        "status": "active" if current else "completed",
                        "medicationReference": {"reference": med},
                        "subject": {"reference": self.ref},
                        "effectivePeriod": period,
                        "dateAsserted": start,
                        "dosage": dosage,
                    },
                )
            if requests:
                active = current or i == left_open
                body: Json = {
                    "status": "active" if active else "completed",
                    "intent": "order",
                    "medicationReference": {"reference": med},
                    "subject": {"reference": self.ref},
                    "authoredOn": start,
                    "dosageInstruction": dosage,
                }
                if prior and not (current and left_open):
                    body["priorPrescription"] = {"reference": prior}
                prior = self.add("MedicationRequest", f"itb-{i:02d}", body)

    def co_med(self, suffix: str, text: str, dose: float, unit: str, per_day: int, since: str) -> None:
        """Add an active oral co-medication (text only) as a MedicationStatement and a MedicationRequest."""
        dosage = [
            {
                "text": f"{dose:g} {unit} by mouth {per_day} times a day",
                "route": ROUTE_ORAL,
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": qty(dose, unit)}],
            }
        ]
        concept = {"text": text}
        self.add(
            "MedicationStatement",
            suffix,
            {
                "status": "active",
                "medicationCodeableConcept": concept,
                "subject": {"reference": self.ref},
                "effectivePeriod": {"start": since},
                "dateAsserted": since,
                "dosage": dosage,
            },
        )
        self.add(
            "MedicationRequest",
            suffix,
            {
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": concept,
                "subject": {"reference": self.ref},
                "authoredOn": since,
                "dosageInstruction": dosage,
            },
        )

    def observation(self, suffix: str, category: str | None, code: Json, when: str, value: Json) -> str:
        """Add a final Observation."""
        body: Json = {"status": "final"}
        if category:
            body["category"] = [{"coding": [{"system": OBS_CATEGORY, "code": category}]}]
        body |= {"code": code, "subject": {"reference": self.ref}, "effectiveDateTime": when} | value
        return self.add("Observation", suffix, body)

    def scores(self, days: list[int], mas: str, freq: str, nrs: str, mas_style: str = "concept") -> None:
        """Add one visit of MAS, PSFS frequency/severity and NRS per day (space-separated series)."""
        for n, (day, grade, f, v) in enumerate(
            zip(days, mas.split(), freq.split(), nrs.split(), strict=True), 1
        ):
            when = at(day)
            if mas_style == "components":
                muscles = [
                    ("Right hip adductors", grade),
                    ("Left hip adductors", grade),
                    ("Right knee flexors", MAS_LOWER[grade]),
                    ("Left knee flexors", MAS_LOWER[grade]),
                ]
                mas_value: Json = {
                    "component": [
                        {"code": {"text": m}, "valueCodeableConcept": cc(MAS_GRADE, g, None, g)}
                        for m, g in muscles
                    ]
                }
            elif mas_style == "string":
                mas_value = {"valueString": grade}
            elif mas_style == "number":  # Epic/CPRN style: 1.5 means 1+
                mas_value = {"valueQuantity": {"value": 1.5 if grade == "1+" else int(grade)}}
            else:
                mas_value = {"valueCodeableConcept": cc(MAS_GRADE, grade, None, grade)}
            for code, value in (
                ("mas", mas_value),
                ("psfs-frequency", {"valueInteger": int(f)}),
                ("psfs-severity", {"valueInteger": min(3, max(1, int(f) - 1))}),
                ("spasticity-nrs", {"valueInteger": int(v)}),
            ):
                # PSFS every other visit (counted back from the latest, which always has it) keeps files
                # small; severity is asked only when spasms occur.
                if code.startswith("psfs") and (len(days) - n) % 2 or code == "psfs-severity" and int(f) == 0:
                    continue
                self.observation(
                    f"{code}-{n:02d}", "survey", cc(SPASTICITY, code, None, SCORE_NAMES[code]), when, value
                )
                ordinal = (
                    1.5
                    if code == "mas" and grade == "1+"
                    else float(grade if code == "mas" else next(iter(value.values())))
                )
                self.score_log.setdefault(code, []).append((day, ordinal))

    def temperature(self, suffix: str, when: str, celsius: float) -> None:
        """Add a body temperature vital sign."""
        self.observation(
            f"temp-{suffix}",
            "vital-signs",
            cc(LOINC, "8310-5", "Body temperature", "Body temperature"),
            when,
            {"valueQuantity": qty(celsius, "Cel")},
        )

    def blood_pressure(self, suffix: str, when: str, systolic: int, diastolic: int) -> None:
        """Add a blood pressure panel with systolic and diastolic components."""
        self.observation(
            f"bp-{suffix}",
            "vital-signs",
            cc(LOINC, "85354-9", "Blood pressure panel with all children optional", "Blood pressure"),
            when,
            {
                "component": [
                    {
                        "code": cc(LOINC, "8480-6", "Systolic blood pressure", "Systolic"),
                        "valueQuantity": qty(systolic, "mm[Hg]", "mmHg"),
                    },
                    {
                        "code": cc(LOINC, "8462-4", "Diastolic blood pressure", "Diastolic"),
                        "valueQuantity": qty(diastolic, "mm[Hg]", "mmHg"),
                    },
                ]
            },
        )

    def routine_vitals(self) -> None:
        """Add normal temperatures and blood pressures 6 and 2 days before the anchor."""
        for suffix, day, temp, sys_bp, dia_bp in (("01", -6, 36.7, 122, 78), ("02", -2, 36.8, 118, 74)):
            self.temperature(suffix, at(day, "09:00"), temp)
            self.blood_pressure(suffix, at(day, "09:00"), sys_bp, dia_bp)

    def egfr(self, suffix: str, when: str, value: int, loinc: str = "98979-8") -> None:
        """Add an eGFR laboratory result (LOINC 33914-3, 62238-1 or 98979-8)."""
        self.observation(
            f"egfr-{suffix}",
            "laboratory",
            cc(LOINC, loinc, None, "eGFR"),
            when,
            {"valueQuantity": qty(value, "mL/min/{1.73_m2}")},
        )

    def pump(
        self,
        model: str,
        capacity: int,
        implant_day: int,
        last_fill_day: int,
        cycle: int,
        next_refill_day: int,
        fill_ml: float | None = None,
    ) -> None:
        """Add the pump Device, its use, implant and refill Procedures, and reservoir Observations."""
        name, number, maker = {
            "synchromed": ("SynchroMed II", "8637-20" if capacity == 20 else "8637", "Medtronic"),
            "prometra": ("Prometra II", "13827" if capacity == 20 else "16827", "Flowonix Medical"),
        }[model]
        fill_ml = fill_ml or capacity
        dev = self.add(
            "Device",
            "pump",
            {
                "status": "active",
                "manufacturer": maker,
                "deviceName": [{"name": name, "type": "manufacturer-name"}],
                "modelNumber": number,
                "type": {"text": "Implantable intrathecal infusion pump"},
                "patient": {"reference": self.ref},
                "note": [{"text": f"{name}, {capacity} mL reservoir"}],
            },
        )
        implant = at(implant_day, "08:00")
        self.add(
            "DeviceUseStatement",
            "pump",
            {
                "status": "active",
                "subject": {"reference": self.ref},
                # No recordedOn: the sandbox's date shifter only knows date-named elements and Period bounds.
                "timingPeriod": {"start": implant},
                "device": {"reference": dev},
            },
        )
        days = [d for d in range(last_fill_day, implant_day, -cycle) if d >= -365][::-1]
        events = [("implant", implant_day, "Implantation of intrathecal baclofen pump", "08:00")]
        events += [
            (f"refill-{i:02d}", d, "Refill of intrathecal baclofen pump", "10:00")
            for i, d in enumerate(days, 1)
        ]
        for suffix, day, text, clock in events:
            when = at(day, clock)
            proc = self.add(
                "Procedure",
                suffix,
                {
                    "status": "completed",
                    "code": {"text": text},
                    "subject": {"reference": self.ref},
                    "performedDateTime": when,
                    "focalDevice": [{"manipulated": {"reference": dev}}],
                    "note": [{"text": f"Reservoir filled with {fill_ml:g} mL"}],
                },
            )
            self.fills.append((when, fill_ml))
            self.observation(
                f"fill-volume-{suffix}",
                None,
                pump_code("fill-volume", "Pump fill volume"),
                when,
                {
                    "valueQuantity": qty(fill_ml, "mL"),
                    "partOf": [{"reference": proc}],
                    "device": {"reference": dev},
                },
            )
        last = self.fills[-1][0]
        self.next_refill = at(next_refill_day)
        facts: list[tuple[str, str, Json]] = [
            ("reservoir-capacity", "Pump reservoir capacity", {"valueQuantity": qty(capacity, "mL")}),
            (
                "low-reservoir-alarm-volume",
                "Pump low reservoir alarm volume",
                {"valueQuantity": qty(self.alarm_ml, "mL")},
            ),
            ("next-refill-date", "Next pump refill date", {"valueDateTime": self.next_refill}),
        ]
        if self.conc:
            facts.append(
                ("concentration", "Pump drug concentration", {"valueQuantity": qty(self.conc, "ug/mL")})
            )
        for code, display, value in facts:
            self.observation(
                code, None, pump_code(code, display), last, value | {"device": {"reference": dev}}
            )

    def bundle(self) -> Json:
        """Return the transaction Bundle (PUT entries, no fullUrl)."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in self.resources
            ],
        }


def pump_code(code: str, display: str) -> Json:
    """Return a CodeableConcept in the project's pump CodeSystem."""
    return cc(PUMP, code, display, display)


def per_day(daily: float) -> list[Json]:
    """Dose form: rateQuantity in ug/d."""
    return [
        {
            "text": f"{daily:g} mcg/day continuous intrathecal infusion",
            "route": ROUTE_IT,
            "doseAndRate": [{"rateQuantity": qty(daily, "ug/d")}],
        }
    ]


def per_hour(daily: float) -> list[Json]:
    """Dose form: rateQuantity in ug/h."""
    return [
        {
            "text": f"{exact(daily / 24):g} mcg/hour continuous intrathecal infusion",
            "route": ROUTE_IT,
            "doseAndRate": [{"rateQuantity": qty(exact(daily / 24), "ug/h")}],
        }
    ]


def ml_per_hour(conc: float) -> Callable[[float], list[Json]]:
    """Dose form: rateQuantity in mL/h; the concentration comes from the Medication."""

    def form(daily: float) -> list[Json]:
        rate = exact(daily / conc / 24)
        return [
            {
                "text": f"{rate:g} mL/hour continuous intrathecal infusion",
                "route": ROUTE_IT,
                "doseAndRate": [{"rateQuantity": qty(rate, "mL/h")}],
            }
        ]

    return form


def every_12_hours(daily: float) -> list[Json]:
    """Dose form: doseQuantity in ug with timing.repeat (one dose per 12 h, delivered continuously)."""
    return [
        {
            "text": f"{exact(daily / 2):g} mcg every 12 hours by continuous intrathecal infusion",
            "route": ROUTE_IT,
            "timing": {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": qty(exact(daily / 2), "ug")}],
        }
    ]


def per_day_ratio(daily: float) -> list[Json]:
    """Dose form: rateRatio ug per 1 d."""
    return [
        {
            "text": f"{daily:g} mcg per day intrathecal",
            "route": ROUTE_IT,
            "doseAndRate": [{"rateRatio": {"numerator": qty(daily, "ug"), "denominator": qty(1, "d")}}],
        }
    ]


def flex(steps: Sequence[tuple[str, float]]) -> Callable[[float], list[Json]]:
    """Dose form: flex schedule, one dosage per step (timeOfDay start, ug/h until the next step)."""

    def form(daily: float) -> list[Json]:
        starts = [int(s[:2]) for s, _ in steps] + [24 + int(steps[0][0][:2])]
        total = sum(rate * (starts[i + 1] - starts[i]) for i, (_, rate) in enumerate(steps))
        assert total == daily, f"flex steps sum to {total}, not {daily}"
        return [
            {
                "sequence": i,
                "text": f"from {s[:5]}: {r:g} mcg/hour (flex step {i})",
                "route": ROUTE_IT,
                "timing": {"repeat": {"timeOfDay": [s]}},
                "doseAndRate": [{"rateQuantity": qty(r, "ug/h")}],
            }
            for i, (s, r) in enumerate(steps, 1)
        ]

    return form


def monthly(last_day: int, n: int = 12) -> list[int]:
    """Return ``n`` visit days 30 days apart, ending on ``last_day``."""
    return [last_day - 30 * (n - 1 - i) for i in range(n)]


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


REGISTRY: list[tuple[Meta, Callable[[Chart], None]]] = []


def patient(**meta: Any) -> Callable[[Callable[[Chart], None]], Callable[[Chart], None]]:
    """Register a patient builder with its manifest entry."""

    def register(build: Callable[[Chart], None]) -> Callable[[Chart], None]:
        REGISTRY.append((Meta(**meta), build))
        return build

    return register


def standard(c: Chart, scores: bool = True, egfr: int | None = 92) -> None:
    """Add stable scores, routine vitals and a normal eGFR (the background most patients share)."""
    if scores:
        c.scores(
            monthly(-10),
            "2 2 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+",
            "2 2 2 1 1 1 1 1 1 1 1 1",
            "5 5 4 4 3 3 3 3 3 3 3 3",
        )
    c.routine_vitals()
    if egfr:
        c.egfr("01", at(-120, "08:00"), egfr)


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
    c.temperature("01", at(-6, "09:00"), 36.8)
    c.blood_pressure("01", at(-6, "09:00"), 120, 76)
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


STEP_LIMIT_PERCENT = {
    ("titration", "spinal"): 30,
    ("titration", "cerebral"): 15,
    ("maintenance", "spinal"): 40,
    ("maintenance", "cerebral"): 20,
}  # CONTRACT §4; unknown origin uses cerebral


def daily_dose_at(history: list[tuple[str, float]], moment: datetime) -> float:
    """Return the daily dose in force at ``moment``."""
    return ([0.0] + [dose for start, dose in history if parse(start) <= moment])[-1]


def remaining_ml(c: Chart, conc: float) -> float:
    """Return the reservoir volume at the anchor, integrating the dose history hour by hour since the fill."""
    fill_time, fill_ml = parse(c.fills[-1][0]), c.fills[-1][1]
    hours = int((ANCHOR - fill_time).total_seconds() // 3600)
    used = sum(daily_dose_at(c.history, fill_time + timedelta(hours=h)) / conc / 24 for h in range(hours))
    return fill_ml - used


def expected_findings(meta: Meta, c: Chart) -> set[str]:
    """Recompute the findings that follow from the generated numbers (not the text-only ones)."""
    found: set[str] = set()
    assert c.birth is not None
    age = ANCHOR.year - c.birth.year - ((ANCHOR.month, ANCHOR.day) < (c.birth.month, c.birth.day))
    if age < 4:
        found.add("age-below-label")
    if not c.history:
        return found
    current, proposed = c.history[-1][1], meta.proposed
    origin = "cerebral" if meta.origin == "unknown" else meta.origin
    limit = STEP_LIMIT_PERCENT[(meta.phase, "cerebral" if age < 12 and meta.phase == "titration" else origin)]
    if (proposed - current) / current * 100 > limit:
        found.add("increase-over-limit")
    rises = [
        (parse(start), dose - c.history[i - 1][1])
        for i, (start, dose) in enumerate(c.history)
        if i and dose > c.history[i - 1][1]
    ]
    past_year = sum(d for t, d in rises if ANCHOR - t <= timedelta(days=365))
    past_month = sum(1 for t, _ in rises if ANCHOR - t <= timedelta(days=30))
    if proposed > current and (past_year > 100 or past_month >= 2):
        found.add("dose-creep")
    if any(ANCHOR - t < timedelta(hours=24) for t, _ in rises):
        found.add("increase-too-soon")
    if not any(day >= -90 for log in c.score_log.values() for day, _ in log):
        found.add("assessment-stale")
    latest_pairs = [log[-2:] for log in c.score_log.values() if len(log) >= 2]
    if proposed > current and any(new[1] < old[1] for old, new in latest_pairs):
        found.add("score-conflict")
    if c.conc and c.conc not in (500, 1000, 2000):
        found.add("concentration-nonstandard")
    if c.conc and c.fills and c.next_refill:
        per_day_ml = proposed / c.conc
        alarm_mid = ANCHOR + timedelta(days=(remaining_ml(c, c.conc) - c.alarm_ml) / per_day_ml)
        fill_time, fill_ml = parse(c.fills[-1][0]), c.fills[-1][1]
        alarm_from_fill = fill_time + timedelta(days=(fill_ml - c.alarm_ml) / per_day_ml)
        since_fill_days = (ANCHOR - fill_time).total_seconds() / 86400
        left_if_current_ran = fill_ml - current / c.conc * since_fill_days
        alarm_current_ran = ANCHOR + timedelta(days=(left_if_current_ran - c.alarm_ml) / per_day_ml)
        refill = parse(c.next_refill)
        # Exact history, "current dose ran since the fill" and "proposed dose from the fill" must agree,
        # so that the expectation holds whichever way the rules engine computes the alarm date.
        verdicts = {alarm < refill for alarm in (alarm_mid, alarm_from_fill, alarm_current_ran)}
        assert len(verdicts) == 1, f"{meta.pid}: alarm methods disagree"
        if alarm_mid < refill:
            found.add("reservoir-before-refill")
        if fill_ml / per_day_ml > 180:
            found.add("refill-interval-long")
    return found


def self_check(meta: Meta, c: Chart) -> None:
    """Fail if the manifest's expected findings disagree with what the generated numbers imply."""
    derivable = {
        "age-below-label",
        "increase-over-limit",
        "dose-creep",
        "increase-too-soon",
        "assessment-stale",
        "score-conflict",
        "concentration-nonstandard",
        "reservoir-before-refill",
        "refill-interval-long",
    }
    if meta.verdict == "cannot-check":
        return  # no current dose: the numeric rules cannot run
    got, want = expected_findings(meta, c), set(meta.findings) & derivable
    if got != want:
        raise SystemExit(f"{meta.pid}: numbers imply {sorted(got)}, manifest says {sorted(want)}")


def manifest(metas: list[Meta]) -> str:
    """Return manifest.toml (TOML written by hand: strings are ASCII, so JSON quoting is valid TOML)."""
    lines = [
        "# Generated by scripts/make_sandbox_patients.py; edit the script, not this file.",
        "# file is relative to this folder; expect.findings are the codes the proposed dose should raise.",
        f'anchor = "{ANCHOR.strftime("%Y-%m-%dT%H:%M:%SZ")}"',
    ]
    for m in metas:
        expect = (
            f"{{ proposed_ug_per_day = {m.proposed}, verdict = {json.dumps(m.verdict)}, "
            f"findings = {json.dumps(list(m.findings))} }}"
        )
        lines += [
            "",
            "[[patients]]",
            f"id = {json.dumps(m.pid)}",
            f'file = "patients/{m.pid}.json"',
            f"name = {json.dumps(m.name)}",
            f"summary = {json.dumps(m.summary)}",
            f"tenants = {json.dumps(list(m.tenants))}",
            f"expect = {expect}",
        ]
    return "\n".join(lines) + "\n"


def build_all() -> list[tuple[Meta, Json]]:
    """Build, self-check and return every patient's manifest entry and Bundle."""
    built = []
    for meta, build in REGISTRY:
        chart = Chart(meta.pid)
        build(chart)
        self_check(meta, chart)
        built.append((meta, chart.bundle()))
    return built


def bundle_text(bundle: Json) -> str:
    """Serialise a Bundle with one entry per line: small on disk, still readable and diff-friendly."""
    entries = ",\n".join(json.dumps(e, separators=(",", ":")) for e in bundle["entry"])
    return f'{{"resourceType":"Bundle","type":"transaction","entry":[\n{entries}\n]}}\n'


def main(argv: list[str] | None = None) -> int:
    """Write the patients and the manifest under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "config" / "sandbox"
    )
    out: Path = parser.parse_args(argv).out
    (out / "patients").mkdir(parents=True, exist_ok=True)
    built = build_all()
    for meta, bundle in built:
        text = bundle_text(bundle)
        (out / "patients" / f"{meta.pid}.json").write_text(text, encoding="utf-8")
    (out / "manifest.toml").write_text(manifest([m for m, _ in built]), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
