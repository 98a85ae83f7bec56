"""The launch context the app works in (patient, user, granted scopes) and scope checks on it.

Features are gated on the *granted* scopes, which may differ from those requested. ``has_scope`` reads
both syntaxes: v1 (``patient/Observation.read``, ``.write``, ``.*``) and v2 (``patient/Observation.rs``,
letters in ``cruds`` order). Write does not imply read, and in v2 ``r`` does not imply ``s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from smart_launch.id_token import fhir_user_reference
from smart_launch.tokens import TokenSet

# Interaction names accepted by has_scope, mapped to v2 letters.
_INTERACTIONS = {
    "c": "c",
    "create": "c",
    "r": "r",
    "read": "r",
    "vread": "r",
    "u": "u",
    "update": "u",
    "patch": "u",
    "d": "d",
    "delete": "d",
    "s": "s",
    "search": "s",
}
_V1_LETTERS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")
_V2_ORDER = "cruds"


@dataclass(frozen=True)
class LaunchContext:
    """Who and what a launch is about: ids are plain ids (``patient``) or relative refs (``fhir_user``)."""

    iss: str
    patient: str | None = field(repr=False)
    encounter: str | None = field(repr=False)
    fhir_user: str | None = field(repr=False)
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    granted_scopes: frozenset[str] = frozenset()
    fhir_context: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    intent: str | None = None
    tenant: str | None = None


def launch_context_from(tokens: TokenSet, iss: str, id_claims: dict[str, Any] | None) -> LaunchContext:
    """Build the LaunchContext from a token response and (validated) id_token claims."""
    return LaunchContext(
        iss=iss,
        patient=tokens.patient,
        encounter=tokens.encounter,
        fhir_user=fhir_user_reference(id_claims, iss) if id_claims else None,
        # An absent need_patient_banner means the app must show the banner.
        need_patient_banner=tokens.need_patient_banner is not False,
        smart_style_url=tokens.smart_style_url,
        granted_scopes=tokens.granted_scopes,
        fhir_context=tokens.fhir_context,
        intent=tokens.intent,
        tenant=tokens.tenant,
    )


def has_scope(ctx: LaunchContext, resource: str, interaction: str) -> bool:
    """Return whether a granted patient/ or user/ scope allows ``interaction`` on ``resource``.

    ``interaction`` is a v2 letter (``c r u d s``) or a name (``read``, ``search``, ``create``...).
    Granular v2 scopes (``patient/Observation.rs?category=...``) do not count: they grant only part of
    the resource type, and treating them as full access would hide missing data.
    """
    letter = _INTERACTIONS.get(interaction)
    if letter is None:
        raise ValueError(f"unknown interaction {interaction!r}")
    return any(letter in _letters_for(scope, resource) for scope in ctx.granted_scopes)


def _letters_for(scope: str, resource: str) -> str:
    """Return the v2 letters ``scope`` grants on ``resource`` for a user or patient ('' if none)."""
    match = _SCOPE.match(scope)
    if match is None:
        return ""
    level, scoped_resource, permission, query = match.groups()
    if level == "system" or query or scoped_resource not in (resource, "*"):
        return ""
    if permission in _V1_LETTERS:
        return _V1_LETTERS[permission]
    if (
        not set(permission) <= set(_V2_ORDER)
        or "".join(sorted(permission, key=_V2_ORDER.index)) != permission
    ):
        return ""  # letters out of cruds order (".dus") may be ignored by servers: do not rely on them
    return permission
