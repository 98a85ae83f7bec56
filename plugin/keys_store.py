"""Where the app's private_key_jwt signing keys live: files named by settings, never the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from flask import Flask

from smart_launch.keys import KeySet


def load_or_create_keys(app: Flask) -> KeySet:
    """Load the private JWKS from ``ITB_KEYS_FILE``; outside production create one on first start."""
    path = Path(str(app.config["KEYS_FILE"]))
    if path.exists():
        return KeySet.load(path)
    if app.config["IS_PRODUCTION"]:
        raise RuntimeError(f"signing keys not found at ITB_KEYS_FILE ({path}); run `itb keys rotate` first")
    alg = str(app.config["SIGNING_ALG"])
    if alg not in ("ES384", "RS384"):
        raise RuntimeError("ITB_SIGNING_ALG must be ES384 or RS384 (SMART App Launch requires one of these)")
    keys = KeySet.generate(cast(Literal["ES384", "RS384"], alg))
    keys.save(path)
    return keys
