"""Fixtures shared by the web tests that also run on PostgreSQL (see tests/pg_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_support import fresh_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Create one PostgreSQL database for the web tests; drop it at the end (or skip)."""
    with fresh_database() as url:
        yield url
