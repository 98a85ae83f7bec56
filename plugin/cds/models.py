"""Tables of the CDS Hooks service: the cards it issued (so feedback can be tied to them) and seen JWT ids.

``IssuedCard`` holds no PHI beyond the patient id the EHR sent; the doses are numbers in ug/d. ``SeenJti``
is the replay guard of the Trusting-CDS-Clients rules: a ``jti`` is remembered until its JWT expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db import Base, UTCDateTime


class IssuedCard(Base):
    """One card the service returned: who it was for, what it said, and which client asked."""

    __tablename__ = "cds_cards"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook: Mapped[str] = mapped_column(String(60))
    hook_instance: Mapped[str] = mapped_column(String(100), index=True)
    client_iss: Mapped[str] = mapped_column(String(500))
    patient_id: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))
    finding_codes: Mapped[str] = mapped_column(Text, default="")  # space-separated CONTRACT §4 codes
    dose_before_ug_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    dose_after_ug_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    suggested_ug_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # The last feedback outcome, so a repeated identical report is recognised (feedback is idempotent).
    feedback_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SeenJti(Base):
    """A client JWT id already accepted; kept until the JWT's expiry so a replay is refused."""

    __tablename__ = "cds_jti"

    iss: Mapped[str] = mapped_column(String(500), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


CDS_TABLES = (Base.metadata.tables["cds_cards"], Base.metadata.tables["cds_jti"])
