"""The implanted pump of a sandbox patient: Device, implant and refill Procedures, reservoir Observations."""

from __future__ import annotations

from .chart_base import ChartBase
from .fhir import Json, pump_code, qty, reference
from .timeline import at

# model -> (device name, model number for a 20 mL reservoir, for a 40 mL one, manufacturer)
PUMP_MODELS = {
    "synchromed": ("SynchroMed II", "8637-20", "8637", "Medtronic"),
    "prometra": ("Prometra II", "13827", "16827", "Flowonix Medical"),
}


def refill_days(implant_day: int, last_fill_day: int, cycle: int) -> list[int]:
    """Return the refill days within the last year, every ``cycle`` days back from the last, oldest first."""
    return [d for d in range(last_fill_day, implant_day, -cycle) if d >= -365][::-1]


class PumpMixin(ChartBase):
    """Builder for the pump and its refill record."""

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
        name, number_20, number_other, maker = PUMP_MODELS[model]
        fill_ml = fill_ml or capacity
        dev = self.add(
            "Device",
            "pump",
            {
                "status": "active",
                "manufacturer": maker,
                "deviceName": [{"name": name, "type": "manufacturer-name"}],
                "modelNumber": number_20 if capacity == 20 else number_other,
                "type": {"text": "Implantable intrathecal infusion pump"},
                "patient": self.subject,
                "note": [{"text": f"{name}, {capacity} mL reservoir"}],
            },
        )
        implant = at(implant_day, "08:00")
        self.add(
            "DeviceUseStatement",
            "pump",
            {
                "status": "active",
                "subject": self.subject,
                # No recordedOn: the sandbox's date shifter only knows date-named elements and Period bounds.
                "timingPeriod": {"start": implant},
                "device": reference(dev),
            },
        )
        events = [("implant", implant_day, "Implantation of intrathecal baclofen pump", "08:00")]
        events += [
            (f"refill-{i:02d}", d, "Refill of intrathecal baclofen pump", "10:00")
            for i, d in enumerate(refill_days(implant_day, last_fill_day, cycle), 1)
        ]
        for suffix, day, text, clock in events:
            self.fill(dev, suffix, at(day, clock), text, fill_ml)
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
            self.observation(code, None, pump_code(code, display), last, value | {"device": reference(dev)})

    def fill(self, dev: str, suffix: str, when: str, text: str, fill_ml: float) -> None:
        """Add one reservoir fill (implant or refill): the Procedure and its fill-volume Observation."""
        proc = self.add(
            "Procedure",
            suffix,
            {
                "status": "completed",
                "code": {"text": text},
                "subject": self.subject,
                "performedDateTime": when,
                "focalDevice": [{"manipulated": reference(dev)}],
                "note": [{"text": f"Reservoir filled with {fill_ml:g} mL"}],
            },
        )
        self.fills.append((when, fill_ml))
        self.observation(
            f"fill-volume-{suffix}",
            None,
            pump_code("fill-volume", "Pump fill volume"),
            when,
            {"valueQuantity": qty(fill_ml, "mL"), "partOf": [reference(proc)], "device": reference(dev)},
        )
