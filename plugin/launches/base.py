"""What the launch modules share: their errors, the token cipher, and the EHR allow-list lookup."""

from __future__ import annotations

from flask import current_app

from plugin.launches.crypto import TokenCipher
from plugin.registry import EhrEntry, Registry


class LaunchError(Exception):
    """A launch cannot start or finish; ``safe_message`` is one line for the person, ``status`` the HTTP code."""

    def __init__(self, safe_message: str, status: int = 400) -> None:
        super().__init__(safe_message)
        self.safe_message = safe_message
        self.status = status


class LaunchExpired(LaunchError):
    """The launch is unknown, expired, or its tokens can no longer be refreshed: relaunch from the EHR."""

    def __init__(
        self, safe_message: str = "This session has ended. Please launch the app again from the EHR."
    ) -> None:
        super().__init__(safe_message, status=401)


def cipher() -> TokenCipher:
    cipher: TokenCipher = current_app.extensions["itb.cipher"]
    return cipher


def registry() -> Registry:
    registry: Registry = current_app.extensions["itb.registry"]
    return registry


def registered_ehr(iss: str | None) -> EhrEntry:
    """Return the registry entry for ``iss``; unknown or missing ``iss`` is refused without any request."""
    if not iss:
        raise LaunchError("The launch did not say which EHR it came from (no iss).")
    entry = registry().find(iss)
    if entry is None:
        raise LaunchError("This EHR is not registered with ITB Dose Check, so the launch was refused.")
    return entry
