"""The write-back outbox table: one row per resource of a submission, until the EHR has confirmed it.

A submitted note lives here first, so an EHR outage, a timeout or a killed process loses nothing.
Most rows create a resource; an ``update`` row appends one element (a DetectedIssue's mitigation) to a
resource an earlier ``create`` row filed (``target_id``), once that row has a server id.
Rows are claimed with a compare-and-set lease (``lease_owner``/``lease_until``) so several runner
processes never send one row at the same time, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db import Base, UTCDateTime


class OutboxStatus(StrEnum):
    """Where one row is: pending -> sending -> sent -> confirmed, or failed / held."""

    PENDING = "pending"  # waiting to be sent (first time or after a retryable error)
    SENDING = "sending"  # claimed by a runner; if its lease runs out it is reclaimed and looked up first
    SENT = "sent"  # the EHR stored it (server_id known); read-back still to do
    CONFIRMED = "confirmed"  # read back; dropped_fields says what the EHR did not keep
    FAILED = "failed"  # the EHR refused it (4xx) or it can never be sent; a user may retry
    HELD = "held"  # the EHR cannot store this type: kept in the app database only


class OutboxOperation(StrEnum):
    """What a row does in the EHR."""

    CREATE = "create"  # POST the payload (idempotent by its write identifier)
    UPDATE = "update"  # append the payload's element to the resource of row ``target_id`` (GET + PUT)


class OutboxItem(Base):
    """One resource to file in the EHR; ``id`` is also the value of its write identifier."""

    __tablename__ = "writeback_outbox"
    __table_args__ = (
        Index("ix_writeback_outbox_due", "status", "next_attempt_at"),
        Index("ix_writeback_outbox_submission", "submission_id", "seq"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer, default=0)  # filing order within the submission
    launch_id: Mapped[str] = mapped_column(String(36), index=True)
    iss: Mapped[str] = mapped_column(String(500))
    patient_id: Mapped[str] = mapped_column(String(200), index=True)
    author_ref: Mapped[str | None] = mapped_column(String(300), nullable=True)  # fhirUser, for relaunch
    resource_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the resource JSON, placeholders unresolved
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    needs_launch: Mapped[bool] = mapped_column(Boolean, default=False)  # the EHR session expired
    server_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dropped_fields: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of paths
    depends_on: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of row ids
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    operation: Mapped[str] = mapped_column(
        String(8), default=OutboxOperation.CREATE.value, server_default=OutboxOperation.CREATE.value
    )
    # An update's target: the id of the create row that filed the resource it changes (same EHR).
    target_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)

    @property
    def is_update(self) -> bool:
        """Whether this row appends to a resource filed earlier rather than creating one."""
        return self.operation == OutboxOperation.UPDATE

    @property
    def resource(self) -> dict[str, Any]:
        """Return the payload as a dict (for an update: ``resourceType`` and the element it appends)."""
        data: dict[str, Any] = json.loads(self.payload)
        return data

    @property
    def dependencies(self) -> list[str]:
        """Return the ids of the rows whose server ids this row's references need."""
        return list(json.loads(self.depends_on)) if self.depends_on else []

    @property
    def dropped(self) -> list[str]:
        """Return the element paths the EHR did not keep (empty before read-back)."""
        return list(json.loads(self.dropped_fields)) if self.dropped_fields else []
