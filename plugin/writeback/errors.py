"""Errors of the write-back package."""

from __future__ import annotations


class WriteBackInputError(ValueError):
    """What was submitted cannot be documented or filed as it is (nothing was written)."""
