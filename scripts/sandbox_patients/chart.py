"""The complete sandbox patient builder, and the clinical background most patients share."""

from __future__ import annotations

from .medications import MedicationsMixin
from .observations import ObservationsMixin
from .pump import PumpMixin
from .timeline import at, monthly


class Chart(MedicationsMixin, ObservationsMixin, PumpMixin):
    """One synthetic patient under construction, with every resource builder."""


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
