"""Tables of the verification: each pharmacist decision, and the reservoir numbers kept at submission.

The queue's row itself is ``plugin.clinician.models.DoseChangeRecord`` (``status``, ``version``); these
tables add what a decision needs to be explained, undone and audited:

* ``VerificationAction``: one row per verify, reject or undo: who, when, why, what the re-run check said,
  the mitigation recorded for each DetectedIssue of the clinician's submission, and the outbox submission
  that files the pharmacist's note and appends those mitigations. The latest verify/reject row says who may undo it.
* ``DoseChangeInputs``: the chart numbers the clinician's note was written from (concentration, volumes,
  dates), so the pharmacist's calculator can recompute them independently of the note's text.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db import Base, UTCDateTime


class VerificationAction(Base):
    """One pharmacist decision about one dose change (verify, reject, or undo of either)."""

    __tablename__ = "verification_actions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dose_change_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(20))  # verify | reject | undo
    actor: Mapped[str] = mapped_column(String(300))  # the pharmacist's fhirUser
    launch_id: Mapped[str] = mapped_column(String(36))
    iss: Mapped[str] = mapped_column(String(500))
    patient_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_before: Mapped[str] = mapped_column(String(20))
    status_after: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    rerun_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # CONTRACT §3 result, or NULL
    # What the pharmacist's decision means for each finding the EHR holds as a DetectedIssue, and the
    # outbox update row that appends it to that DetectedIssue in the EHR (held when the EHR cannot).
    mitigation_json: Mapped[str] = mapped_column(Text, default="[]")
    note_text: Mapped[str] = mapped_column(Text, default="")
    outbox_submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    @property
    def mitigations(self) -> list[dict[str, Any]]:
        """Return the recorded mitigations as a list."""
        return list(json.loads(self.mitigation_json or "[]"))


class DoseChangeInputs(Base):
    """The chart summary a dose change's note was rendered from (JSON), for the independent calculator."""

    __tablename__ = "dose_change_inputs"

    dose_change_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    chart_summary_json: Mapped[str] = mapped_column(Text)

    @property
    def summary(self) -> dict[str, Any]:
        """Return the stored chart summary."""
        data: dict[str, Any] = json.loads(self.chart_summary_json or "{}")
        return data
