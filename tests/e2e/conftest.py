"""Fixtures for end-to-end tests: a running app + sandbox pair per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.live import Live, start_live


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Yield a running app + sandbox shared by one test module."""
    pair = start_live(tmp_path_factory.mktemp("live"))
    yield pair
    pair.servers.shutdown()
