"""Check the audit chain: recompute every hash in ``seq`` order and follow every ``prev_hash`` link.

- an edited row: its stored hash no longer matches its contents (the row is named);
- a deleted row: the next row's ``prev_hash`` does not match the row before the gap, and ``seq`` skips;
- swapped or moved rows: both of the above at the rows involved (``seq`` is hashed, so a row cannot move);
- a cut tail leaves a valid but shorter chain; only an *anchor* (a hash noted earlier, e.g. exported
  daily) shows it: the anchor is no longer in the chain.

An attacker who rewrites the whole chain from some row on also produces a valid chain: anchors kept
outside the database are what catch that too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from plugin.audit.models import AUDIT_TABLE, GENESIS_HASH, compute_hash
from plugin.db import Database

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ChainBreak:
    """One problem found: the row it is at (None for a cut tail) and a one-line reason."""

    seq: int | None
    reason: str

    def __str__(self) -> str:
        """Return the break as one line for the CLI."""
        where = f"seq {self.seq}" if self.seq is not None else "tail"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification: how many records, the last hash, and every break found."""

    count: int
    last_seq: int | None
    last_hash: str
    breaks: tuple[ChainBreak, ...]
    anchor: str | None = None
    anchor_seq: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the chain is intact (and contains the anchor, if one was given)."""
        return not self.breaks


def normalise_anchor(anchor: str) -> str:
    """Return ``anchor`` as a lower-case 64-digit hex hash, or raise ValueError."""
    value = anchor.strip().lower()
    if not HASH_PATTERN.match(value):
        raise ValueError("an anchor is a 64-digit hex SHA-256 hash")
    return value


def _short(value: str) -> str:
    """Return the first 12 characters of a hash, enough to tell hashes apart in a message."""
    return f"{value[:12]}…"


def _row_problems(row: dict[str, Any], prev_seq: int | None, prev_hash: str | None) -> list[str]:
    """Return what is wrong with one row given the row before it (None before the first)."""
    problems: list[str] = []
    try:
        if compute_hash(row) != row["hash"]:
            problems.append("contents do not match the stored hash (row edited or moved)")
    except (ValueError, TypeError) as exc:  # unparseable JSON columns, naive or odd values
        problems.append(f"contents unreadable ({exc.__class__.__name__}): row edited")
    seq = int(row["seq"])
    if prev_seq is None or prev_hash is None:
        if row["prev_hash"] != GENESIS_HASH:
            problems.append(f"first row does not start the chain: records before seq {seq} were deleted")
        elif seq != 1:
            problems.append("starts the chain but is not seq 1 (row moved)")
        return problems
    if row["prev_hash"] != prev_hash:
        problems.append(
            f"does not link to seq {prev_seq} (prev_hash {_short(row['prev_hash'])} is not its hash "
            f"{_short(prev_hash)}): a record was deleted, inserted or moved"
        )
    if seq != prev_seq + 1:
        missing = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1}..{seq - 1}"
        problems.append(f"{missing} missing (deleted)")
    return problems


def verify_chain(db: Database, *, anchor: str | None = None) -> VerifyReport:
    """Recompute every hash and link of the audit chain in seq order and report every break."""
    wanted_anchor = normalise_anchor(anchor) if anchor is not None else None
    table = AUDIT_TABLE
    breaks: list[ChainBreak] = []
    count = 0
    prev_seq: int | None = None
    prev_hash: str | None = None
    anchor_seq: int | None = None
    with db.engine.connect() as connection:
        # One statement streamed in batches: one consistent snapshot, bounded memory for long chains.
        result = connection.execution_options(yield_per=1000).execute(select(table).order_by(table.c.seq))
        for row in result.mappings():
            values = dict(row)
            count += 1
            problems = _row_problems(values, prev_seq, prev_hash)
            if problems:
                breaks.append(ChainBreak(int(values["seq"]), "; ".join(problems)))
            if wanted_anchor is not None and values["hash"] == wanted_anchor:
                anchor_seq = int(values["seq"])
            prev_seq, prev_hash = int(values["seq"]), str(values["hash"])
    if wanted_anchor is not None and anchor_seq is None:
        end = f"the chain now ends at seq {prev_seq}" if prev_seq is not None else "the chain is empty"
        breaks.append(
            ChainBreak(
                None,
                f"anchor {_short(wanted_anchor)} is not in the chain: records were cut "
                f"from the tail or rewritten ({end})",
            )
        )
    return VerifyReport(
        count=count,
        last_seq=prev_seq,
        last_hash=prev_hash or GENESIS_HASH,
        breaks=tuple(breaks),
        anchor=wanted_anchor,
        anchor_seq=anchor_seq,
    )
