"""Where the app's private_key_jwt signing keys live: files named by settings, never the repository."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from smart_launch.keys import KeySet


def load_or_create_keys(app: Flask) -> KeySet:
    """Load the private JWKS from ``ITB_KEYS_FILE``; outside production create one on first start."""
    path = Path(str(app.config["KEYS_FILE"]))
    if path.exists():
        return KeySet.load(path)
    if app.config["IS_PRODUCTION"]:
        raise RuntimeError(f"signing keys not found at ITB_KEYS_FILE ({path}); run `itb keys rotate` first")
    keys = KeySet.generate(str(app.config["SIGNING_ALG"]))
    keys.save(path)
    return keys
