"""The EHR allow-list: loading, lookup, and refusal of incomplete entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.registry import RegistryError, load_registry


def test_registry_finds_an_ehr_by_exact_iss_ignoring_a_trailing_slash() -> None:
    registry = load_registry([{"iss": "https://ehr.example/fhir/r4", "client_id": "a"}])
    assert registry.find("https://ehr.example/fhir/r4/") is not None
    assert registry.find("https://ehr.example/fhir") is None
    assert registry.find("https://ehr.example/FHIR/r4") is None


def test_registry_reads_a_client_secret_from_a_file_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret\n")
    (tmp_path / "registry.toml").write_text(
        '[[ehr]]\niss = "https://e/fhir"\nclient_id = "c"\nauth = "client_secret_basic"\n'
        'client_secret_file = "secret.txt"\nframe_ancestors = ["https://e"]\n'
    )
    entry = load_registry(tmp_path / "registry.toml").find("https://e/fhir")
    assert entry is not None
    assert entry.client_secret == "s3cret"
    assert entry.frame_ancestors == ("https://e",)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"client_id": "c"}, "missing 'iss'"),
        ({"iss": "https://e", "client_id": "c", "auth": "magic"}, "auth must be one of"),
        ({"iss": "https://e", "client_id": "c", "auth": "client_secret_post"}, "needs client_secret"),
        ({"iss": "https://e", "client_id": "c", "signing_alg": "RS256"}, "ES384 or RS384"),
    ],
)
def test_registry_refuses_incomplete_entries_with_a_clear_reason(raw: dict[str, str], reason: str) -> None:
    with pytest.raises(RegistryError, match=reason):
        load_registry([raw])


def test_unreadable_registry_file_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[ehr]\n")
    with pytest.raises(RegistryError, match="cannot read EHR registry"):
        load_registry(tmp_path / "bad.toml")


def test_roles_from_ehr_is_on_by_default_and_must_be_a_boolean() -> None:
    from plugin.registry import RegistryError, entry_from_mapping

    base = {"iss": "https://ehr.example.org/fhir", "client_id": "c", "auth": "none"}
    assert entry_from_mapping(base).roles_from_ehr is True
    assert entry_from_mapping({**base, "roles_from_ehr": False}).roles_from_ehr is False
    with pytest.raises(RegistryError, match="roles_from_ehr must be true or false"):
        entry_from_mapping({**base, "roles_from_ehr": "no"})
