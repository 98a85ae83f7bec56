"""Dose forms: the different ways an EHR writes the same intrathecal daily dose as FHIR Dosage."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .fhir import ROUTE_IT, ROUTE_ORAL, Json, qty

DoseForm = Callable[[float], list[Json]]


def exact(value: float) -> float:
    """Round a rate to 6 decimals, refusing values that do not round-trip (keeps doses exact)."""
    rounded = round(value, 6)
    assert abs(rounded - value) < 1e-9, f"inexact rate {value}"
    return int(rounded) if rounded == int(rounded) else rounded


def dosage(text: str, dose_and_rate: Json, timing: Json | None = None, route: Json = ROUTE_IT) -> Json:
    """Return one Dosage: text, route, optional timing, then a single doseAndRate."""
    return (
        {"text": text, "route": route}
        | ({"timing": timing} if timing else {})
        | {"doseAndRate": [dose_and_rate]}
    )


def per_day(daily: float) -> list[Json]:
    """Dose form: rateQuantity in ug/d."""
    return [
        dosage(f"{daily:g} mcg/day continuous intrathecal infusion", {"rateQuantity": qty(daily, "ug/d")})
    ]


def per_hour(daily: float) -> list[Json]:
    """Dose form: rateQuantity in ug/h."""
    hourly = exact(daily / 24)
    return [
        dosage(f"{hourly:g} mcg/hour continuous intrathecal infusion", {"rateQuantity": qty(hourly, "ug/h")})
    ]


def ml_per_hour(conc: float) -> DoseForm:
    """Dose form: rateQuantity in mL/h; the concentration comes from the Medication."""

    def form(daily: float) -> list[Json]:
        """Write ``daily`` ug/d as mL/h at ``conc``."""
        rate = exact(daily / conc / 24)
        return [
            dosage(f"{rate:g} mL/hour continuous intrathecal infusion", {"rateQuantity": qty(rate, "mL/h")})
        ]

    return form


def every_12_hours(daily: float) -> list[Json]:
    """Dose form: doseQuantity in ug with timing.repeat (one dose per 12 h, delivered continuously)."""
    dose = exact(daily / 2)
    return [
        dosage(
            f"{dose:g} mcg every 12 hours by continuous intrathecal infusion",
            {"doseQuantity": qty(dose, "ug")},
            timing={"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}},
        )
    ]


def per_day_ratio(daily: float) -> list[Json]:
    """Dose form: rateRatio ug per 1 d."""
    ratio = {"numerator": qty(daily, "ug"), "denominator": qty(1, "d")}
    return [dosage(f"{daily:g} mcg per day intrathecal", {"rateRatio": ratio})]


def flex(steps: Sequence[tuple[str, float]]) -> DoseForm:
    """Dose form: flex schedule, one dosage per step (timeOfDay start, ug/h until the next step)."""

    def form(daily: float) -> list[Json]:
        """Write the steps, checking they sum to ``daily`` ug/d."""
        starts = [int(s[:2]) for s, _ in steps] + [24 + int(steps[0][0][:2])]
        total = sum(rate * (starts[i + 1] - starts[i]) for i, (_, rate) in enumerate(steps))
        assert total == daily, f"flex steps sum to {total}, not {daily}"
        return [
            {"sequence": i}
            | dosage(
                f"from {s[:5]}: {r:g} mcg/hour (flex step {i})",
                {"rateQuantity": qty(r, "ug/h")},
                timing={"repeat": {"timeOfDay": [s]}},
            )
            for i, (s, r) in enumerate(steps, 1)
        ]

    return form


def oral(dose: float, unit: str, per_day_count: int) -> list[Json]:
    """Dose form for an oral co-medication: ``dose`` ``unit`` by mouth ``per_day_count`` times a day."""
    return [
        dosage(
            f"{dose:g} {unit} by mouth {per_day_count} times a day",
            {"doseQuantity": qty(dose, unit)},
            timing={"repeat": {"frequency": per_day_count, "period": 1, "periodUnit": "d"}},
            route=ROUTE_ORAL,
        )
    ]
