"""Observations for a sandbox patient: spasticity scores (MAS written four ways), vital signs and eGFR."""

from __future__ import annotations

from .chart_base import ChartBase
from .fhir import LOINC, MAS_GRADE, MAS_LOWER, SCORE_NAMES, SPASTICITY, Json, cc, qty
from .timeline import at


def mas_value(grade: str, style: str) -> Json:
    """Return the value of a MAS Observation for ``grade`` written in one of the EHR styles."""
    if style == "components":
        muscles = [
            ("Right hip adductors", grade),
            ("Left hip adductors", grade),
            ("Right knee flexors", MAS_LOWER[grade]),
            ("Left knee flexors", MAS_LOWER[grade]),
        ]
        return {
            "component": [
                {"code": {"text": m}, "valueCodeableConcept": cc(MAS_GRADE, g, None, g)} for m, g in muscles
            ]
        }
    if style == "string":
        return {"valueString": grade}
    if style == "number":  # Epic/CPRN style: 1.5 means 1+
        return {"valueQuantity": {"value": 1.5 if grade == "1+" else int(grade)}}
    return {"valueCodeableConcept": cc(MAS_GRADE, grade, None, grade)}


def loinc(code: str, display: str | None, text: str) -> Json:
    """Return a LOINC CodeableConcept."""
    return cc(LOINC, code, display, text)


class ObservationsMixin(ChartBase):
    """Builders for score, vital-sign and laboratory Observations."""

    def scores(self, days: list[int], mas: str, freq: str, nrs: str, mas_style: str = "concept") -> None:
        """Add one visit of MAS, PSFS frequency/severity and NRS per day (space-separated series)."""
        for n, (day, grade, f, v) in enumerate(
            zip(days, mas.split(), freq.split(), nrs.split(), strict=True), 1
        ):
            when = at(day)
            for code, value in (
                ("mas", mas_value(grade, mas_style)),
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
            loinc("8310-5", "Body temperature", "Body temperature"),
            when,
            {"valueQuantity": qty(celsius, "Cel")},
        )

    def blood_pressure(self, suffix: str, when: str, systolic: int, diastolic: int) -> None:
        """Add a blood pressure panel with systolic and diastolic components."""
        self.observation(
            f"bp-{suffix}",
            "vital-signs",
            loinc("85354-9", "Blood pressure panel with all children optional", "Blood pressure"),
            when,
            {
                "component": [
                    {
                        "code": loinc("8480-6", "Systolic blood pressure", "Systolic"),
                        "valueQuantity": qty(systolic, "mm[Hg]", "mmHg"),
                    },
                    {
                        "code": loinc("8462-4", "Diastolic blood pressure", "Diastolic"),
                        "valueQuantity": qty(diastolic, "mm[Hg]", "mmHg"),
                    },
                ]
            },
        )

    def vitals(self, suffix: str, when: str, celsius: float, systolic: int, diastolic: int) -> None:
        """Add a temperature and a blood pressure taken together."""
        self.temperature(suffix, when, celsius)
        self.blood_pressure(suffix, when, systolic, diastolic)

    def routine_vitals(self) -> None:
        """Add normal temperatures and blood pressures 6 and 2 days before the anchor."""
        self.vitals("01", at(-6, "09:00"), 36.7, 122, 78)
        self.vitals("02", at(-2, "09:00"), 36.8, 118, 74)

    def egfr(self, suffix: str, when: str, value: int, code: str = "98979-8") -> None:
        """Add an eGFR laboratory result (LOINC 33914-3, 62238-1 or 98979-8)."""
        self.observation(
            f"egfr-{suffix}",
            "laboratory",
            loinc(code, None, "eGFR"),
            when,
            {"valueQuantity": qty(value, "mL/min/{1.73_m2}")},
        )
