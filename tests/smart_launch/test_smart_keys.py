"""Specification of the app's signing keys and its per-EHR client registrations."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from smart_launch.keys import KeySet
from smart_launch.registration import ClientRegistration, ClientRegistry

ISS = "https://ehr.example.org/fhir/r4"


def test_the_public_jwks_has_no_private_parts_and_names_kid_alg_use(
    es384_keys: KeySet, rs384_keys: KeySet
) -> None:
    for keys, private_members in ((es384_keys, {"d"}), (rs384_keys, {"d", "p", "q", "dp", "dq", "qi"})):
        (member,) = keys.public_jwks()["keys"]
        assert not private_members & set(member)
        assert member["kid"] == keys.active_kid and member["use"] == "sig"
        assert member["alg"] == keys.active_alg


def test_the_kid_is_the_rfc7638_thumbprint(es384_keys: KeySet) -> None:
    public = ECKey.import_key(es384_keys.public_jwks()["keys"][0])
    assert es384_keys.active_kid == public.thumbprint()


def test_save_writes_owner_only_and_load_restores_the_same_keys(tmp_path: Path, es384_keys: KeySet) -> None:
    path = tmp_path / "instance" / "jwks.json"
    rotated = es384_keys.rotate()
    rotated.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeySet.load(path)
    assert loaded.kids == rotated.kids and loaded.active_kid == rotated.active_kid
    assert loaded.public_jwks() == rotated.public_jwks()
    assert "d" in json.loads(path.read_text())["keys"][0]


def test_load_or_generate_creates_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    first = KeySet.load_or_generate(path)
    assert KeySet.load_or_generate(path).active_kid == first.active_kid


def test_rotate_adds_a_new_active_key_and_keeps_the_old_one_published(es384_keys: KeySet) -> None:
    rotated = es384_keys.rotate()
    assert rotated.active_kid != es384_keys.active_kid
    assert set(rotated.kids) == {es384_keys.active_kid, rotated.active_kid}
    assert len(rotated.public_jwks()["keys"]) == 2
    assert es384_keys.kids == (es384_keys.active_kid,)  # the original is unchanged
    assert rotated.without(es384_keys.active_kid).kids == (rotated.active_kid,)
    with pytest.raises(ValueError):
        rotated.without(rotated.active_kid)


def test_repr_shows_no_key_material(es384_keys: KeySet) -> None:
    private = es384_keys.private_jwks()["keys"][0]["d"]
    assert private not in repr(es384_keys)


def test_only_smart_algorithms_are_generated() -> None:
    with pytest.raises(ValueError):
        KeySet.generate("RS256")  # type: ignore[arg-type]


def test_a_p256_key_cannot_sign_es384() -> None:
    key = ECKey.generate_key("P-256")
    with pytest.raises(ValueError, match="P-384"):
        KeySet([key])


def test_registration_defaults_fhir_base_to_iss_and_hides_the_secret() -> None:
    registration = ClientRegistration(
        iss=ISS, client_id="c", auth_method="client_secret_basic", client_secret="hush"
    )
    assert registration.fhir_base == ISS and registration.is_confidential
    assert "hush" not in repr(registration)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth_method": "client_secret_basic"},
        {"auth_method": "client_secret_post"},
        {"auth_method": "private_key_jwt"},
        {"auth_method": "magic"},
    ],
)
def test_registration_refuses_missing_credentials(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ClientRegistration(iss=ISS, client_id="c", **kwargs)  # type: ignore[arg-type]


def test_registration_refuses_a_signing_alg_other_than_the_active_key(es384_keys: KeySet) -> None:
    with pytest.raises(ValueError, match="signing_alg"):
        ClientRegistration(
            iss=ISS,
            client_id="c",
            auth_method="private_key_jwt",
            signing_keys=es384_keys,
            signing_alg="RS384",
        )


def test_the_registry_matches_iss_exactly(es384_keys: KeySet) -> None:
    registry = ClientRegistry.from_mapping(
        {
            "ehr": [
                {"iss": ISS, "client_id": "pub", "frame_ancestors": ["https://ehr.example.org"]},
                {
                    "iss": "https://other.example.org/fhir",
                    "client_id": "asym",
                    "auth_method": "private_key_jwt",
                    "scopes": "launch patient/*.rs",
                },
            ]
        },
        signing_keys=es384_keys,
    )
    assert len(registry) == 2
    found = registry.lookup(ISS)
    assert found is not None and found.frame_ancestors == ("https://ehr.example.org",)
    assert registry.lookup(ISS + "/") is None
    other = registry.lookup("https://other.example.org/fhir")
    assert other is not None and other.signing_keys is es384_keys and other.scopes == "launch patient/*.rs"


def test_the_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ClientRegistry(
            [ClientRegistration(iss=ISS, client_id="a"), ClientRegistration(iss=ISS, client_id="b")]
        )
