"""Submitted dose changes, and the chart each launch's latest note preview was built on.

A dose change is what was proposed, checked and documented, and where it stands: one row per
submission (its id is the form's submit key, so a double click files once). The pharmacist's
verification queue reads and updates these rows (``status``, ``version``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from plugin.db import Base, UTCDateTime
from plugin.launches.models import Launch


class DoseChangeRecord(Base):
    """A dose change the clinician submitted, with its check and note."""

    __tablename__ = "dose_changes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    launch_id: Mapped[str] = mapped_column(String(36), index=True)
    iss: Mapped[str] = mapped_column(String(500))
    patient_id: Mapped[str] = mapped_column(String(200), index=True)
    prescriber: Mapped[str | None] = mapped_column(String(300), nullable=True)  # the launch's fhirUser
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    current_dose_ug_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    proposed_dose_ug_per_day: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(20))
    finding_codes: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    check_json: Mapped[str] = mapped_column(Text)  # the CONTRACT §3 result as checked at submission
    note_text: Mapped[str] = mapped_column(Text)
    override_reason_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    override_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    attested: Mapped[bool] = mapped_column(Boolean, default=False)
    outbox_submission_id: Mapped[str] = mapped_column(String(36))
    # proposed -> verified | rejected, or superseded by a newer change for the same patient.
    status: Mapped[str] = mapped_column(String(20), default="proposed", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for verification


class NotePreview(Base):
    """The chart a launch's latest note preview was built on, sealed, so any worker can file that note.

    One row per launch, replaced on each preview. The chart is PHI: it is stored encrypted
    (``TokenCipher.seal_bytes``), deleted with its launch (ON DELETE CASCADE), and purged once the
    launch's session has expired (``expires_at`` is the launch's, copied so the purge reads one table).
    """

    __tablename__ = "note_previews"

    launch_id: Mapped[str] = mapped_column(
        String(36), ForeignKey(Launch.id, ondelete="CASCADE"), primary_key=True
    )
    submit_key: Mapped[str] = mapped_column(String(36))
    chart_enc: Mapped[str] = mapped_column(Text)  # Fernet token of the msgspec JSON of the Chart
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def purge_expired_previews(session: Session, now: datetime) -> int:
    """Delete the stored preview charts of launches whose session has expired; return how many.

    Run on every preview and every completed launch, so an instance that is still used keeps no
    patient's chart longer than that patient's launch lasted.
    """
    result = session.execute(delete(NotePreview).where(NotePreview.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)
