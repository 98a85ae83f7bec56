"""Tables for launch state: a pending authorization per ``state``, then a launch per opaque handle.

Both are looked up by the SHA-256 of the secret (``state``, handle), never by the secret itself, so a
database dump does not hand out live launches. Tokens are encrypted at rest (``crypto.TokenCipher``).
Used and expired pending rows are deleted, and ended launches lose their tokens (``retention``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db import Base, UTCDateTime


class PendingLaunch(Base):
    """An authorize round trip in flight: what /callback needs to finish it, used at most once."""

    __tablename__ = "pending_launches"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    iss: Mapped[str] = mapped_column(String(500))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(Text)
    launch_param: Mapped[str | None] = mapped_column(Text, nullable=True)
    secrets_enc: Mapped[str] = mapped_column(Text)  # encrypted JSON: code_verifier, nonce, state
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Launch(Base):
    """A completed launch: the context the EHR gave and the (encrypted) tokens to act on it."""

    __tablename__ = "launches"
    __table_args__ = (
        # The launches that still hold tokens (live ones, and ended ones the outbox still needs): what
        # the purge looks at, without reading every ended launch ever kept (retention, migration 0009).
        Index(
            "ix_launches_with_tokens",
            "expires_at",
            sqlite_where=text("tokens_enc <> ''"),
            postgresql_where=text("tokens_enc <> ''"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    iss: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    encounter_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    fhir_user: Mapped[str | None] = mapped_column(String(300), nullable=True)
    role: Mapped[str] = mapped_column(String(40), default="clinician")
    need_patient_banner: Mapped[bool] = mapped_column(Boolean, default=True)
    smart_style_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    context_json: Mapped[str] = mapped_column(Text, default="{}")  # fhirContext, intent, tenant
    tokens_enc: Mapped[str] = mapped_column(Text)  # "" once purged (retention.PURGED_TOKENS)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # The refresh lease: a compare-and-set on these columns lets exactly one worker of any host
    # present the refresh token, which is single-use at most EHRs.
    refresh_lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tokens_version: Mapped[int] = mapped_column(Integer, default=1)
    relaunch_required: Mapped[bool] = mapped_column(Boolean, default=False)
