"""Everything the pharmacist looks at for one change, assembled once for the page and for the note."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugin.clinician.models import DoseChangeRecord
from plugin.domain.chart import Chart
from plugin.domain.rules_config import Rules
from plugin.verification.compare import (
    Calculation,
    CheckDiff,
    calculate,
    calculate_from_chart,
    diff_checks,
    rerun_check,
    stored_check,
)

#: Why a check cannot be re-run from a launch in another patient's chart (SMART patient/ scopes).
OTHER_CHART = (
    "The check can only be re-run, and the change verified or rejected, from a launch in this patient's "
    "chart: this launch's EHR access is limited to its own patient. Open this patient's chart and launch "
    "ITB Dose Check from there to re-run the check. The check as submitted is shown."
)


@dataclass(frozen=True, slots=True)
class Review:
    """The check as submitted, the re-run (when possible), their differences and the calculators."""

    submitted: dict[str, Any]
    rerun: dict[str, Any] | None
    diff: CheckDiff | None
    calculation: Calculation  # from the numbers stored at submission, as of the submission
    fresh_calculation: Calculation | None  # from today's chart, as of now
    rerun_unavailable: str | None  # why there is no re-run, in words for the pharmacist


def build_review(
    record: DoseChangeRecord, summary: dict[str, Any], chart: Chart | None, rules: Rules, now: datetime
) -> Review:
    """Re-run the check on ``chart`` (None when it is another patient's) and compute the calculators."""
    submitted = stored_check(record)
    calculation = calculate(
        record.current_dose_ug_per_day, record.proposed_dose_ug_per_day, summary, record.submitted_at, rules
    )
    if chart is None:
        return Review(submitted, None, None, calculation, None, OTHER_CHART)
    result = rerun_check(chart, record, rules, now)
    rerun = result.to_json()
    fresh = calculate_from_chart(
        chart, result.current_daily_dose_ug, record.proposed_dose_ug_per_day, now, rules
    )
    return Review(submitted, rerun, diff_checks(submitted, rerun), calculation, fresh, None)
