"""JSON application logging that keeps secrets and PHI out.

Two loggers matter: the application log (``itb`` and libraries; operational, never PHI) and the audit
log (``itb.audit``; kept in the database, see ``plugin.audit``). Here every log record passes a scrubber that removes
bearer tokens, OAuth parameters (code, state, tokens, verifiers) and launch handles from messages and
URLs, because werkzeug's request log and libraries may print a callback URL verbatim.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Names of parameters whose values are secret (not secrets themselves).
_SECRET_PARAMS = "|".join(
    (
        "code",
        "state",
        "access_token",
        "refresh_token",
        "id_token",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "launch",
        "token",
        "jti",
        "patient",
    )
)
_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9\-._~+/]+=*"), "Bearer [redacted]"),
    (re.compile(rf"(?i)\b({_SECRET_PARAMS})=([^&\s\"']+)"), r"\1=[redacted]"),
    (re.compile(rf"(?i)\"({_SECRET_PARAMS})\"\s*:\s*\"[^\"]*\""), r'"\1": "[redacted]"'),
    # Launch handles live in URL paths (/l/<handle>/...): a handle is a capability, so it is redacted.
    (re.compile(r"/l/[A-Za-z0-9_\-]{16,}"), "/l/[handle]"),
    # Patient ids are PHI: the auditor's timeline has one in its path, its filters and exports in the
    # query string (which the access log keeps).
    (re.compile(r"/audit/patients/[^/?#\s\"']+"), "/audit/patients/[patient]"),
    (re.compile(r"(?i)([?&](?:patient|patient_id|subject)=)[^&\s\"']+"), r"\1[patient]"),
    # Whole JWTs anywhere (assertions, id_tokens).
    (re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), "[jwt]"),
)


def scrub(text: str) -> str:
    """Return ``text`` with tokens, OAuth parameters, JWTs, launch handles and patient ids redacted."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


class ScrubbingFilter(logging.Filter):
    """Rewrite each record's message (with its arguments) through ``scrub``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the formatted message in place; never drop the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line (time, level, logger, message, extra fields)."""

    _RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in self._RESERVED and not key.startswith("_"):
                payload[key] = scrub(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            payload["error"] = scrub(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records through one scrubbed JSON handler on stderr (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_itb", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ScrubbingFilter())
    handler._itb = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # authlib logs the PKCE code_verifier at DEBUG; keep it above that whatever the root level.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLevelName(level)))
    for name in ("werkzeug", "urllib3"):
        for h in logging.getLogger(name).handlers:
            h.addFilter(ScrubbingFilter())
