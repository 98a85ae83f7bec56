"""The app's own signing keys for ``private_key_jwt`` client authentication (SMART asymmetric clients).

A ``KeySet`` holds private JWKs (RS384 or ES384, as SMART requires), one of which is active for signing.
``public_jwks()`` is what the app publishes at its JWKS URL. ``rotate()`` adds a new active key and keeps
the old ones published, so EHRs that cached the JWKS keep verifying assertions signed just before the
rotation. Every ``kid`` is the key's RFC 7638 thumbprint, so it is unique and stable across restarts.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey, import_key

SigningAlg = Literal["RS384", "ES384"]
PrivateKey: TypeAlias = RSAKey | ECKey

_RSA_KEY_BITS = 3072
_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y")}


class KeySet:
    """Private signing keys with one active key; immutable (``rotate`` returns a new ``KeySet``)."""

    def __init__(self, keys: Sequence[PrivateKey], active_kid: str | None = None) -> None:
        if not keys:
            raise ValueError("a KeySet needs at least one key")
        self._keys: dict[str, PrivateKey] = {}
        for key in keys:
            if not key.is_private:
                raise ValueError("KeySet keys must be private keys")
            _alg_of(key)  # validates alg/kty pairing
            self._keys[_kid_of(key)] = key
        self.active_kid = active_kid if active_kid is not None else _kid_of(keys[-1])
        if self.active_kid not in self._keys:
            raise ValueError("active_kid is not one of the keys")

    def __repr__(self) -> str:
        """Show kids and algorithms only, never key material."""
        return f"KeySet(active_kid={self.active_kid!r}, kids={list(self._keys)!r})"

    @classmethod
    def generate(cls, alg: SigningAlg = "ES384") -> KeySet:
        """Return a new KeySet with one freshly generated key for ``alg``."""
        return cls([_generate_key(alg)])

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> KeySet:
        """Build a KeySet from a private JWKS dict (``{"keys": [...], "active_kid": ...}``)."""
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise ValueError("private JWKS has no keys")
        keys = [_import_private(item) for item in raw_keys]
        active = jwks.get("active_kid")
        return cls(keys, active if isinstance(active, str) else None)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeySet:
        """Load a private JWKS file written by ``save``."""
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if not isinstance(document, dict):
            raise ValueError("private JWKS file is not a JSON object")
        return cls.from_jwks(document)

    @classmethod
    def load_or_generate(cls, path: str | os.PathLike[str], alg: SigningAlg = "ES384") -> KeySet:
        """Load the key file at ``path``, or generate and save a new KeySet there when it is absent."""
        if Path(path).exists():
            return cls.load(path)
        keyset = cls.generate(alg)
        keyset.save(path)
        return keyset

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private JWKS atomically to ``path`` with mode 0600 (owner read/write only)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".jwks-", suffix=".tmp")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(self.private_jwks(), handle, indent=2)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        os.chmod(target, 0o600)

    def rotate(self, alg: SigningAlg | None = None) -> KeySet:
        """Return a KeySet with a new active key (same alg unless given) and every old key kept."""
        new_key = _generate_key(alg or self.active_alg)
        return KeySet([*self._keys.values(), new_key], _kid_of(new_key))

    def without(self, kid: str) -> KeySet:
        """Return a KeySet without the retired key ``kid`` (never the active one)."""
        if kid == self.active_kid:
            raise ValueError("cannot remove the active key")
        return KeySet([key for key_id, key in self._keys.items() if key_id != kid], self.active_kid)

    @property
    def kids(self) -> tuple[str, ...]:
        """Return every key id, oldest first."""
        return tuple(self._keys)

    @property
    def active_key(self) -> PrivateKey:
        """Return the key used for signing."""
        return self._keys[self.active_kid]

    @property
    def active_alg(self) -> SigningAlg:
        """Return the JWS algorithm of the active key."""
        return _alg_of(self.active_key)

    def public_jwks(self) -> dict[str, Any]:
        """Return the public JWKS to publish: public members only, with kid, alg and use=sig."""
        return {"keys": [_public_jwk(key_id, key) for key_id, key in self._keys.items()]}

    def private_jwks(self) -> dict[str, Any]:
        """Return the private JWKS (for ``save``); never send or log this."""
        keys = []
        for key_id, key in self._keys.items():
            member = dict(key.as_dict(private=True))
            member.update({"kid": key_id, "alg": _alg_of(key), "use": "sig"})
            keys.append(member)
        return {"keys": keys, "active_kid": self.active_kid}

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return a compact JWS of ``claims`` signed by the active key (header alg, kid, typ=JWT)."""
        header = {"alg": self.active_alg, "kid": self.active_kid, "typ": "JWT"}
        payload = json.dumps(dict(claims), separators=(",", ":")).encode("utf-8")
        return jws.serialize_compact(header, payload, self.active_key, algorithms=[self.active_alg])


def _generate_key(alg: SigningAlg) -> PrivateKey:
    """Generate a private key for ``alg`` with its thumbprint as kid."""
    key: PrivateKey
    if alg == "ES384":
        key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"})
    elif alg == "RS384":
        key = RSAKey.generate_key(_RSA_KEY_BITS, parameters={"alg": "RS384", "use": "sig"})
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}: SMART requires RS384 or ES384")
    return _with_thumbprint_kid(key)


def _import_private(member: Any) -> PrivateKey:
    """Import one private JWK dict, keeping only RSA and EC keys, re-deriving the kid."""
    if not isinstance(member, dict):
        raise ValueError("JWKS member is not an object")
    key = import_key(member)
    if not isinstance(key, RSAKey | ECKey):
        raise ValueError("only RSA and EC keys can sign SMART client assertions")
    return _with_thumbprint_kid(key)


def _with_thumbprint_kid(key: PrivateKey) -> PrivateKey:
    """Return ``key`` re-imported with kid = its RFC 7638 thumbprint and its alg kept."""
    member = dict(key.as_dict(private=key.is_private))
    member["kid"] = key.thumbprint()
    imported = import_key(member)
    assert isinstance(imported, RSAKey | ECKey)  # noqa: S101 - same key type round-trip
    return imported


def _kid_of(key: PrivateKey) -> str:
    """Return the key's kid (always its thumbprint)."""
    return key.kid or key.thumbprint()


def _alg_of(key: PrivateKey) -> SigningAlg:
    """Return the SMART algorithm for ``key``; reject keys that cannot sign RS384/ES384."""
    if isinstance(key, ECKey):
        if key.curve_name != "P-384":
            raise ValueError("EC keys must use curve P-384 for ES384")
        return "ES384"
    if key.alg not in (None, "RS384"):
        raise ValueError("RSA keys must be for RS384")
    return "RS384"


def _public_jwk(key_id: str, key: PrivateKey) -> dict[str, Any]:
    """Return the public members of ``key`` with kid, alg and use."""
    full = key.as_dict(private=False)
    member: dict[str, Any] = {"kty": key.key_type}
    for name in _PUBLIC_MEMBERS[key.key_type]:
        member[name] = full[name]
    member.update({"kid": key_id, "alg": _alg_of(key), "use": "sig"})
    return member
