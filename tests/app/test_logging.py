"""Application logs never hold tokens, OAuth parameters or launch handles."""

from __future__ import annotations

import json
import logging

from plugin.logging_setup import JsonFormatter, ScrubbingFilter, scrub


def test_scrub_removes_oauth_parameters_from_a_callback_url() -> None:
    line = scrub('"GET /callback?code=abc123&state=xyz789 HTTP/1.1" 303')
    assert "abc123" not in line
    assert "xyz789" not in line
    assert "code=[redacted]" in line


def test_scrub_removes_bearer_tokens_jwts_and_handles() -> None:
    jwt = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    handle = "Zk3b8Q2x_vJ9-wPq7LmN4tRs6UyA1cDe"
    line = scrub(f"Authorization: Bearer tok.en-value {jwt} GET /l/{handle}/check")
    assert "tok.en-value" not in line
    assert jwt not in line
    assert handle not in line


def test_scrub_removes_patient_ids_from_auditor_urls_in_access_lines() -> None:
    handle = "Zk3b8Q2x_vJ9-wPq7LmN4tRs6UyA1cDe"
    timeline = scrub(f'127.0.0.1 "GET /l/{handle}/audit/patients/sci-adult?page=2 HTTP/1.1" 200 5120')
    search = scrub(f'"GET /l/{handle}/audit?action=&patient=ms-adult&overridden=no HTTP/1.1" 200')
    export = scrub('"GET /l/x/audit/export.csv?subject=Patient/cp-child&patient_id=cp-child HTTP/1.1"')
    assert "sci-adult" not in timeline and "/audit/patients/[patient]?page=2" in timeline
    assert "ms-adult" not in search and "patient=[patient]&overridden=no" in search
    assert "cp-child" not in export


def test_scrub_removes_token_fields_from_json_text() -> None:
    line = scrub('{"access_token": "AAA", "refresh_token": "BBB", "expires_in": 300}')
    assert "AAA" not in line and "BBB" not in line
    assert '"expires_in": 300' in line


def test_json_formatter_writes_one_json_object_with_extra_fields() -> None:
    record = logging.LogRecord("itb", logging.INFO, __file__, 1, "hello %s", ("state=s3",), None)
    record.event = "launch.start"
    ScrubbingFilter().filter(record)
    payload = json.loads(JsonFormatter().format(record))
    assert payload["message"] == "hello state=[redacted]"
    assert payload["event"] == "launch.start"
    assert payload["level"] == "INFO"
