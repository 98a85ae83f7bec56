"""Specification of id_token validation and of reading fhirUser and the launch context."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from smart_launch_support import ISS, JWKS_URL

from smart_launch.context import has_scope, launch_context_from
from smart_launch.errors import IdTokenError
from smart_launch.id_token import expected_issuer, fhir_user_reference, validate_id_token
from smart_launch.tokens import parse_token_response

CLIENT_ID = "itb-app"


@pytest.fixture(scope="module")
def ehr_key() -> RSAKey:
    """Return the EHR's RS256 id_token signing key (generated for this run)."""
    return RSAKey.generate_key(2048, parameters={"kid": "ehr-1", "use": "sig"})


def _jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    """Return a public JWKS of ``keys``."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def _id_token(
    key: RSAKey | ECKey, now: datetime, *, kid: str | None = "ehr-1", alg: str = "RS256", **claims: Any
) -> str:
    """Return an id_token signed by ``key`` with sensible claims, overridden by ``claims``."""
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": CLIENT_ID,
        "sub": "u1",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "nonce": "n-1",
        "fhirUser": "Practitioner/77",
    }
    payload.update(claims)
    header = {"alg": alg, **({"kid": kid} if kid else {})}
    return jwt.encode(header, payload, key, algorithms=[alg])


def _validate(token: str, now: datetime, jwks: dict[str, Any], **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "issuer": ISS,
        "client_id": CLIENT_ID,
        "jwks": jwks,
        "nonce": "n-1",
        "now": now,
    }
    arguments.update(options)
    return validate_id_token(token, **arguments)


def test_a_good_id_token_gives_its_claims(ehr_key: RSAKey, now: datetime) -> None:
    claims = _validate(_id_token(ehr_key, now), now, _jwks(ehr_key))
    assert claims["sub"] == "u1" and claims["fhirUser"] == "Practitioner/77"


def test_an_id_token_for_another_client_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="aud"):
        _validate(_id_token(ehr_key, now, aud="someone-else"), now, _jwks(ehr_key))


def test_an_aud_list_must_name_us_and_azp_must_be_us(ehr_key: RSAKey, now: datetime) -> None:
    _validate(_id_token(ehr_key, now, aud=["x", CLIENT_ID], azp=CLIENT_ID), now, _jwks(ehr_key))
    with pytest.raises(IdTokenError, match="azp"):
        _validate(_id_token(ehr_key, now, aud=["x", CLIENT_ID], azp="x"), now, _jwks(ehr_key))


def test_an_expired_id_token_is_refused_beyond_the_leeway(ehr_key: RSAKey, now: datetime) -> None:
    token = _id_token(ehr_key, now, exp=int(now.timestamp()) - 30)
    _validate(token, now, _jwks(ehr_key))  # within 60 s of clock skew
    with pytest.raises(IdTokenError, match="expired"):
        _validate(token, now + timedelta(seconds=31), _jwks(ehr_key))


def test_an_id_token_from_the_future_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="future"):
        _validate(_id_token(ehr_key, now, iat=int(now.timestamp()) + 600), now, _jwks(ehr_key))


def test_a_wrong_nonce_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="nonce"):
        _validate(_id_token(ehr_key, now, nonce="other"), now, _jwks(ehr_key))


def test_the_nonce_is_not_checked_when_none_was_sent(ehr_key: RSAKey, now: datetime) -> None:
    _validate(_id_token(ehr_key, now, nonce="whatever"), now, _jwks(ehr_key), nonce=None)


def test_another_issuer_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="issuer"):
        _validate(_id_token(ehr_key, now, iss=ISS + "/"), now, _jwks(ehr_key))


def test_a_bad_signature_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"})
    with pytest.raises(IdTokenError, match="signature"):
        _validate(_id_token(impostor, now), now, _jwks(ehr_key))


def test_a_tampered_payload_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    header, _, signature = _id_token(ehr_key, now).split(".")
    forged = jwt.encode({"alg": "RS256"}, {"iss": ISS}, ehr_key, algorithms=["RS256"]).split(".")[1]
    with pytest.raises(IdTokenError, match="signature"):
        _validate(f"{header}.{forged}.{signature}", now, _jwks(ehr_key))


def test_an_unpinned_algorithm_is_refused(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="algorithm"):
        _validate(_id_token(ehr_key, now, alg="RS512"), now, _jwks(ehr_key))


def test_alg_none_and_hmac_are_never_accepted_even_if_asked(ehr_key: RSAKey, now: datetime) -> None:
    token = _id_token(ehr_key, now)
    with pytest.raises(IdTokenError, match="algorithm"):
        _validate(token, now, _jwks(ehr_key), algorithms=("none", "HS256"))


def test_a_token_without_kid_is_tried_against_every_key_of_its_type(ehr_key: RSAKey, now: datetime) -> None:
    # The SMART launcher signs RS256 id_tokens without a kid.
    other = RSAKey.generate_key(2048, parameters={"kid": "old"})
    ec = ECKey.generate_key("P-384", parameters={"kid": "ec"})
    claims = _validate(_id_token(ehr_key, now, kid=None), now, _jwks(other, ec, ehr_key))
    assert claims["iss"] == ISS


def test_es384_id_tokens_are_accepted(now: datetime) -> None:
    ec = ECKey.generate_key("P-384", parameters={"kid": "ec"})
    _validate(_id_token(ec, now, kid="ec", alg="ES384"), now, _jwks(ec))


@responses.activate
def test_the_jwks_is_fetched_once_and_cached(ehr_key: RSAKey, now: datetime) -> None:
    responses.get(JWKS_URL, json=_jwks(ehr_key))
    for _ in range(3):
        _validate(_id_token(ehr_key, now), now, None, jwks_uri=JWKS_URL)
    assert len(responses.calls) == 1


@responses.activate
def test_an_unknown_kid_refetches_the_jwks_once(ehr_key: RSAKey, now: datetime) -> None:
    rotated = RSAKey.generate_key(2048, parameters={"kid": "ehr-2"})
    responses.get(JWKS_URL, json=_jwks(ehr_key))
    _validate(_id_token(ehr_key, now), now, None, jwks_uri=JWKS_URL)
    responses.replace(responses.GET, JWKS_URL, json=_jwks(ehr_key, rotated))
    _validate(_id_token(rotated, now, kid="ehr-2"), now, None, jwks_uri=JWKS_URL)
    assert len(responses.calls) == 2
    with pytest.raises(IdTokenError, match="no key"):
        _validate(_id_token(rotated, now, kid="ehr-3"), now, None, jwks_uri=JWKS_URL)
    assert len(responses.calls) == 3


@responses.activate
def test_an_unreachable_jwks_is_an_id_token_error(ehr_key: RSAKey, now: datetime) -> None:
    responses.get(JWKS_URL, status=500)
    with pytest.raises(IdTokenError, match="JWKS"):
        _validate(_id_token(ehr_key, now), now, None, jwks_uri=JWKS_URL)


def test_without_any_jwks_the_id_token_cannot_be_trusted(ehr_key: RSAKey, now: datetime) -> None:
    with pytest.raises(IdTokenError, match="no JWKS"):
        _validate(_id_token(ehr_key, now), now, None, jwks_uri=None)


def test_garbage_is_an_id_token_error(now: datetime) -> None:
    with pytest.raises(IdTokenError):
        _validate("not-a-jwt", now, {"keys": []})
    with pytest.raises(IdTokenError):
        _validate("e30.e30.sig", now, {"keys": []})


def test_the_expected_issuer_prefers_the_configured_issuer(config: Any) -> None:
    assert expected_issuer(config, "https://other") == ISS


@pytest.mark.parametrize(
    ("fhir_user", "expected"),
    [
        ("Practitioner/77", "Practitioner/77"),
        (ISS + "/Practitioner/77", "Practitioner/77"),
        (ISS + "/PractitionerRole/a-1/_history/2", "PractitionerRole/a-1"),
        ("https://elsewhere.example.org/fhir/Practitioner/77", None),
        (ISS + "x/Practitioner/77", None),
        ("Observation/1", None),
        ("Practitioner/../../x", None),
        (None, None),
    ],
)
def test_fhir_user_becomes_a_relative_reference_on_our_server(
    fhir_user: str | None, expected: str | None
) -> None:
    assert fhir_user_reference({"fhirUser": fhir_user} if fhir_user else {}, ISS) == expected


def test_the_launch_context_combines_tokens_and_identity(now: datetime) -> None:
    tokens = parse_token_response(
        {"access_token": "a", "token_type": "Bearer", "scope": "launch patient/Patient.rs", "patient": "123"},
        now=now,
        requested_scope=None,
    )
    ctx = launch_context_from(tokens, ISS, {"fhirUser": ISS + "/Practitioner/9"})
    assert ctx.patient == "123" and ctx.fhir_user == "Practitioner/9"
    assert ctx.need_patient_banner is True  # absent means show the banner
    assert ctx.granted_scopes == frozenset({"launch", "patient/Patient.rs"})
    assert "123" not in repr(ctx)
    assert launch_context_from(tokens, ISS, None).fhir_user is None


def _ctx(scope: str, now: datetime) -> Any:
    tokens = parse_token_response(
        {"access_token": "a", "token_type": "Bearer", "scope": scope}, now=now, requested_scope=None
    )
    return launch_context_from(tokens, ISS, None)


@pytest.mark.parametrize(
    ("scope", "resource", "interaction", "allowed"),
    [
        ("patient/Observation.rs", "Observation", "read", True),
        ("patient/Observation.rs", "Observation", "search", True),
        ("patient/Observation.r", "Observation", "search", False),  # r does not imply s
        ("patient/DocumentReference.c", "DocumentReference", "create", True),
        ("patient/DocumentReference.c", "DocumentReference", "read", False),  # write does not imply read
        ("patient/Observation.read", "Observation", "s", True),
        ("user/DocumentReference.write", "DocumentReference", "create", True),
        ("patient/DocumentReference.write", "DocumentReference", "read", False),
        ("patient/*.read", "Condition", "read", True),
        ("patient/*.cruds", "Device", "delete", True),
        ("patient/Observation.*", "Observation", "update", True),
        ("patient/Observation.rs?category=vital-signs", "Observation", "read", False),  # granular: partial
        ("patient/Observation.sr", "Observation", "read", False),  # out of cruds order
        ("system/Observation.rs", "Observation", "read", False),
        ("patient/Patient.rs", "Observation", "read", False),
    ],
)
def test_has_scope_reads_v1_and_v2_syntax(
    scope: str, resource: str, interaction: str, allowed: bool, now: datetime
) -> None:
    assert has_scope(_ctx(scope, now), resource, interaction) is allowed


def test_has_scope_refuses_unknown_interactions(now: datetime) -> None:
    with pytest.raises(ValueError):
        has_scope(_ctx("patient/*.read", now), "Observation", "frobnicate")


def test_json_payload_helper_is_plain_json(ehr_key: RSAKey, now: datetime) -> None:
    # The id_token payload is plain JSON; claims come back as a dict of JSON values.
    claims = _validate(_id_token(ehr_key, now, extra={"a": [1]}), now, _jwks(ehr_key))
    assert json.loads(json.dumps(claims))["extra"] == {"a": [1]}
