"""The allow-list of EHRs that may launch the app (``ITB_EHR_REGISTRY``, a TOML file).

Only an ``iss`` listed here is ever contacted: an unknown ``iss`` is refused before any request, so the
app can't be used to probe other servers or to hand a user's browser to a look-alike EHR.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")


class RegistryError(ValueError):
    """The registry file is unreadable or an entry is incomplete."""


@dataclass(frozen=True, slots=True)
class EhrEntry:
    """One registered EHR: where it is, who we are there, and how it may embed us."""

    name: str
    iss: str
    client_id: str
    auth_method: str
    client_secret: str | None = None
    signing_alg: str = "ES384"
    scope: str | None = None  # a raw scope string overriding the app's default
    frame_ancestors: tuple[str, ...] = ()
    roles: Mapping[str, str] = field(default_factory=dict)  # fhirUser -> role (clinician|pharmacist|auditor)
    cds_issuers: tuple[str, ...] = ()
    roles_from_ehr: bool = True  # read the user's PractitionerRole at launch (plugin/launches/roles.py)


class Registry:
    """Look up registered EHRs by their exact ``iss``."""

    def __init__(self, entries: Iterable[EhrEntry]) -> None:
        self._by_iss = {_normalise_key(e.iss): e for e in entries}

    def find(self, iss: str) -> EhrEntry | None:
        """Return the entry for ``iss`` or None; only a trailing slash is ignored."""
        return self._by_iss.get(_normalise_key(iss))

    def entries(self) -> list[EhrEntry]:
        """Return every entry."""
        return list(self._by_iss.values())

    def all_frame_ancestors(self) -> tuple[str, ...]:
        """Return every origin any registered EHR may embed us from."""
        seen: dict[str, None] = {}
        for entry in self._by_iss.values():
            for origin in entry.frame_ancestors:
                seen[origin] = None
        return tuple(seen)


def _normalise_key(iss: str) -> str:
    return iss.rstrip("/")


def entry_from_mapping(raw: Mapping[str, Any], base_dir: Path | None = None) -> EhrEntry:
    """Build one entry, reading ``client_secret_file`` relative to the registry file."""
    try:
        iss = str(raw["iss"])
        client_id = str(raw["client_id"])
    except KeyError as missing:
        raise RegistryError(f"EHR registry entry is missing {missing.args[0]!r}") from None
    auth = str(raw.get("auth", "none"))
    if auth not in AUTH_METHODS:
        raise RegistryError(f"EHR registry entry for {iss}: auth must be one of {', '.join(AUTH_METHODS)}")
    secret = raw.get("client_secret")
    if raw.get("client_secret_file"):
        secret_path = Path(str(raw["client_secret_file"]))
        if base_dir is not None and not secret_path.is_absolute():
            secret_path = base_dir / secret_path
        secret = secret_path.read_text(encoding="utf-8").strip()
    if auth.startswith("client_secret") and not secret:
        raise RegistryError(f"EHR registry entry for {iss}: {auth} needs client_secret or client_secret_file")
    alg = str(raw.get("signing_alg", "ES384"))
    if alg not in ("ES384", "RS384"):
        raise RegistryError(f"EHR registry entry for {iss}: signing_alg must be ES384 or RS384")
    return EhrEntry(
        name=str(raw.get("name", iss)),
        iss=iss,
        client_id=client_id,
        auth_method=auth,
        client_secret=secret,
        signing_alg=alg,
        scope=raw.get("scope"),
        frame_ancestors=tuple(raw.get("frame_ancestors", ())),
        roles=dict(raw.get("roles", {})),
        cds_issuers=tuple(raw.get("cds_issuers", ())),
        roles_from_ehr=_flag(raw, "roles_from_ehr", iss),
    )


def _flag(raw: Mapping[str, Any], name: str, iss: str) -> bool:
    """Return a true/false registry setting (default true), refusing anything else by name."""
    value = raw.get(name, True)
    if not isinstance(value, bool):
        raise RegistryError(f"EHR registry entry for {iss}: {name} must be true or false")
    return value


def load_registry(source: str | Path | Iterable[Mapping[str, Any]] | None) -> Registry:
    """Load the registry from a TOML path or from already-parsed entries; None gives an empty registry."""
    if source is None:
        return Registry([])
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise RegistryError(f"cannot read EHR registry {path.name}: {error}") from None
        return Registry(entry_from_mapping(raw, path.parent) for raw in data.get("ehr", []))
    return Registry(entry_from_mapping(raw) for raw in source)
