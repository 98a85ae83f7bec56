"""Read the proposal form (new dose as ug/d, ug/h or a % change; phase; origin override) into a Proposal.

Every input error becomes one plain sentence for the person; nothing is guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from plugin.domain.chart import Origin, Phase
from plugin.domain.result import Proposal

DOSE_MODES = {"ug/d": "ug/d", "ug/h": "ug/h", "percent": "% change"}


class ProposalFormError(ValueError):
    """The form cannot be read as a proposal; the message is for the person."""


@dataclass(frozen=True, slots=True)
class ProposalForm:
    """What the clinician typed, kept for re-displaying the form."""

    dose_value: str = ""
    dose_mode: str = "ug/d"
    phase: str = ""
    origin: str = ""
    origin_reason: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> ProposalForm:
        """Take the form's fields from request args or form data."""
        return cls(
            dose_value=(data.get("dose_value") or "").strip(),
            dose_mode=data.get("dose_mode") or "ug/d",
            phase=data.get("phase") or "",
            origin=data.get("origin") or "",
            origin_reason=(data.get("origin_reason") or "").strip(),
        )

    @property
    def is_empty(self) -> bool:
        """Whether no dose was entered yet."""
        return not self.dose_value


def proposal_from_form(form: ProposalForm, current_daily_dose_ug: float | None) -> Proposal:
    """Convert the form to a Proposal in ug/d, or raise ProposalFormError with a plain reason."""
    if form.dose_mode not in DOSE_MODES:
        raise ProposalFormError("Choose how the new dose is given: ug/d, ug/h or % change.")
    try:
        value = float(form.dose_value.replace(",", "."))
    except ValueError:
        raise ProposalFormError("The new dose must be a number.") from None
    if not math.isfinite(value):
        raise ProposalFormError("The new dose must be a number.")
    if form.dose_mode == "percent":
        if current_daily_dose_ug is None:
            raise ProposalFormError(
                "A % change needs a known current dose; enter the new dose in ug/d instead."
            )
        daily = current_daily_dose_ug * (1 + value / 100.0)
    elif form.dose_mode == "ug/h":
        daily = value * 24.0
    else:
        daily = value
    if daily < 0:
        raise ProposalFormError("The new dose cannot be negative.")
    phase = Phase(form.phase) if form.phase in ("titration", "maintenance") else None
    origin = None
    if form.origin in ("spinal", "cerebral"):
        if not form.origin_reason:
            raise ProposalFormError(
                "Say why the origin is overridden (for example: the diagnosis in the chart is incomplete)."
            )
        origin = Origin(form.origin)
    return Proposal(daily_dose_ug=round(daily, 3), phase=phase, origin=origin)
