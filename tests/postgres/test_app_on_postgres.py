"""A representative subset of the app-level tests, re-run with the app on PostgreSQL.

The test functions are the ones in ``tests/app``; collected here they get this folder's ``app`` fixture
(the session's PostgreSQL database) instead of SQLite: health and readiness, and the launch flow's
security (state used once, interleaved launches, tokens encrypted at rest).
"""

from __future__ import annotations

import pytest
from app.test_health import (  # noqa: F401  (collected here, against PostgreSQL)
    test_healthz_answers_ok,
    test_readyz_answers_503_when_the_database_is_gone,
    test_readyz_answers_ok_when_the_database_is_reachable,
)
from app.test_launch_security import (  # noqa: F401
    _fresh_discovery_cache,
    test_authorization_denied_by_the_ehr_shows_a_reason,
    test_callback_state_can_be_used_only_once,
    test_callback_with_unknown_state_is_refused,
    test_ehr_launch_redirects_with_pkce_s256_state_and_exact_aud,
    test_tokens_are_encrypted_at_rest_and_sent_nowhere_else,
    test_two_interleaved_launches_keep_their_own_patients,
    test_unknown_iss_is_refused_with_400_and_no_request_to_it,
)

pytestmark = pytest.mark.postgres


def test_the_app_under_test_is_on_postgres(app) -> None:  # type: ignore[no-untyped-def]
    assert app.extensions["itb.db"].engine.dialect.name == "postgresql"
