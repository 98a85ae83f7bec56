"""Encryption at rest for tokens, PKCE secrets and previewed charts, keyed from the app's secret key."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def sha256_hex(value: str) -> str:
    """Return the SHA-256 of ``value`` as hex: how secrets are looked up without being stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TokenCipher:
    """Fernet (AES-128-CBC + HMAC) with a key derived by HKDF from the secret key."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"itb-token-encryption").derive(
            secret_key.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, payload: dict[str, Any]) -> str:
        """Encrypt a JSON-able mapping."""
        return self._fernet.encrypt(json.dumps(payload).encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> dict[str, Any]:
        """Decrypt what ``seal`` made; a wrong key or tampering raises ``ValueError``."""
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except InvalidToken:
            raise ValueError("sealed launch data could not be decrypted") from None
        return data

    def seal_bytes(self, data: bytes) -> str:
        """Encrypt raw bytes (an encoded chart) into ASCII text for a Text column."""
        return self._fernet.encrypt(data).decode("ascii")

    def open_bytes(self, sealed: str) -> bytes:
        """Decrypt what ``seal_bytes`` made; a wrong key or tampering raises ``ValueError``."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except InvalidToken:
            raise ValueError("sealed data could not be decrypted") from None
