"""Errors raised by the SMART launch client, each with a one-line ``safe_message`` fit for a person.

A ``safe_message`` never contains a token, code, verifier, secret, state or patient id, so callers may
log it and show it. The FHIR REST errors live in ``smart_launch.fhir_client`` next to the client.
"""

from __future__ import annotations

_MAX_MESSAGE_CHARS = 300


def one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace to single spaces and truncate to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class SmartLaunchError(Exception):
    """Base class: something in the SMART launch failed; ``safe_message`` says what, in one line."""

    def __init__(self, safe_message: str) -> None:
        self.safe_message = one_line(safe_message)
        super().__init__(self.safe_message)


class DiscoveryError(SmartLaunchError):
    """The server's ``.well-known/smart-configuration`` is missing, unreadable or unsafe to use."""


class TokenError(SmartLaunchError):
    """The token endpoint refused a code exchange or refresh (or could not be reached).

    ``error_code`` is the OAuth ``error`` (``invalid_grant``, ``invalid_client``...) or a local code such
    as ``network_error`` / ``invalid_response``; ``status`` is the HTTP status (0 for a network error).
    """

    def __init__(self, error_code: str, safe_message: str, status: int = 0) -> None:
        super().__init__(safe_message)
        self.error_code = error_code
        self.status = status


class IdTokenError(SmartLaunchError):
    """The id_token failed validation (signature, issuer, audience, time or nonce)."""
