"""How this app is registered with one EHR (one ``iss``): client id, client authentication, scopes.

The ``client_id`` and credentials differ per EHR and per environment, so the app keeps one
``ClientRegistration`` per allowed ``iss`` and refuses launches from any other ``iss`` (an attacker-supplied
``iss`` would otherwise make the app fetch attacker URLs; SMART forbids acting as an open redirector).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from smart_launch.keys import KeySet, SigningAlg

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
AUTH_METHODS: tuple[AuthMethod, ...] = (
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)


@dataclass(frozen=True)
class ClientRegistration:
    """The app's registration at one EHR.

    ``scopes`` is a raw space-separated scope string the EHR registration requires, used verbatim;
    ``None`` means the app builds its scopes from what it needs (``discovery.build_scopes``).
    ``fhir_base`` defaults to ``iss``. ``client_secret`` and ``signing_keys`` never appear in ``repr``.
    """

    iss: str
    client_id: str
    auth_method: AuthMethod = "none"
    client_secret: str | None = field(default=None, repr=False)
    signing_keys: KeySet | None = field(default=None, repr=False, compare=False)
    signing_alg: SigningAlg = "ES384"
    scopes: str | None = None
    frame_ancestors: tuple[str, ...] = ()
    fhir_base: str = ""

    def __post_init__(self) -> None:
        """Default ``fhir_base`` to ``iss`` and check the credentials fit ``auth_method``."""
        if not self.fhir_base:
            object.__setattr__(self, "fhir_base", self.iss)
        if not self.iss or not self.client_id:
            raise ValueError("a registration needs iss and client_id")
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown auth_method {self.auth_method!r}")
        if self.auth_method in ("client_secret_basic", "client_secret_post") and not self.client_secret:
            raise ValueError(f"{self.auth_method} needs a client_secret")
        if self.auth_method == "private_key_jwt":
            if self.signing_keys is None:
                raise ValueError("private_key_jwt needs signing_keys")
            if self.signing_keys.active_alg != self.signing_alg:
                raise ValueError("signing_alg does not match the active signing key")

    @property
    def is_confidential(self) -> bool:
        """Return whether the client authenticates at the token endpoint."""
        return self.auth_method != "none"


class ClientRegistry:
    """The allow-list of EHRs that may launch the app, keyed by ``iss`` exactly as the EHR sends it."""

    def __init__(self, registrations: Iterable[ClientRegistration]) -> None:
        self._by_iss: dict[str, ClientRegistration] = {}
        for registration in registrations:
            if registration.iss in self._by_iss:
                raise ValueError("duplicate iss in the client registry")
            self._by_iss[registration.iss] = registration

    def __len__(self) -> int:
        """Return the number of registered EHRs."""
        return len(self._by_iss)

    def __iter__(self) -> Iterator[ClientRegistration]:
        """Iterate over the registrations."""
        return iter(self._by_iss.values())

    def lookup(self, iss: str) -> ClientRegistration | None:
        """Return the registration for ``iss`` (exact match, no normalisation), or None if not allowed."""
        return self._by_iss.get(iss)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], signing_keys: KeySet | None = None) -> ClientRegistry:
        """Build a registry from parsed TOML/JSON: ``{"ehr": [{"iss": ..., "client_id": ...}, ...]}``.

        Each entry takes the ``ClientRegistration`` field names; ``private_key_jwt`` entries share the app's
        ``signing_keys`` (the app has one JWKS URL for every EHR).
        """
        entries = data.get("ehr", [])
        if not isinstance(entries, list):
            raise ValueError("client registry: 'ehr' must be a list of tables")
        registrations = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise ValueError("client registry: each 'ehr' entry must be a table")
            registrations.append(_registration_from(entry, signing_keys))
        return cls(registrations)


def _registration_from(entry: Mapping[str, object], signing_keys: KeySet | None) -> ClientRegistration:
    """Build one ClientRegistration from a registry entry."""
    auth_method = str(entry.get("auth_method", "none"))
    if auth_method not in AUTH_METHODS:
        raise ValueError(f"client registry: unknown auth_method {auth_method!r}")
    ancestors = entry.get("frame_ancestors", ())
    if not isinstance(ancestors, list | tuple):
        raise ValueError("client registry: frame_ancestors must be a list")
    scopes = entry.get("scopes")
    secret = entry.get("client_secret")
    uses_keys = auth_method == "private_key_jwt"
    return ClientRegistration(
        iss=str(entry.get("iss", "")),
        client_id=str(entry.get("client_id", "")),
        auth_method=auth_method,  # checked against AUTH_METHODS above
        client_secret=str(secret) if secret is not None else None,
        signing_keys=signing_keys if uses_keys else None,
        signing_alg=signing_keys.active_alg if uses_keys and signing_keys else "ES384",
        scopes=str(scopes) if scopes is not None else None,
        frame_ancestors=tuple(str(item) for item in ancestors),
        fhir_base=str(entry.get("fhir_base", "")),
    )
