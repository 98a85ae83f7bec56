"""``itb keys``: rotation keeps old keys; pending keys, activate, retire, kids that begin with "-"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from plugin.app import create_app
from plugin.cli import cli
from smart_launch.keys import KeySet


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ITB_KEYS_FILE at a temporary path (no file yet) and keep other ITB_* settings out."""
    path = tmp_path / "keys.json"
    monkeypatch.setenv("ITB_KEYS_FILE", str(path))
    monkeypatch.delenv("ITB_EHR_REGISTRY", raising=False)
    return path


def itb(*args: str) -> Result:
    """Run ``itb ARGS`` in-process."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def kid_starting_with_dash() -> KeySet:
    """Return a one-key KeySet whose kid begins with '-' (a thumbprint does so about once in 64 keys)."""
    for _ in range(3000):
        keys = KeySet.generate("ES384")
        if keys.active_kid.startswith("-"):
            return keys
    raise AssertionError("no kid beginning with '-' in 3000 keys")


def test_rotate_creates_the_file_then_adds_a_pending_key_that_is_published_but_not_signing(
    keys_file: Path,
) -> None:
    created = itb("keys", "rotate")
    assert created.exit_code == 0, created.output
    first = KeySet.load(keys_file)
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"

    pending = itb("keys", "rotate")
    assert pending.exit_code == 0, pending.output
    keys = KeySet.load(keys_file)
    assert len(keys.kids) == 2
    assert keys.active_kid == first.active_kid, "a rotation without --activate keeps signing with the old key"
    new_kid = next(k for k in keys.kids if k != first.active_kid)
    assert new_kid in pending.output and "pending" in pending.output
    assert {k["kid"] for k in keys.public_jwks()["keys"]} == {first.active_kid, new_kid}


def test_rotate_with_activate_and_alg_signs_with_the_new_rs384_key_and_keeps_the_old_one(
    keys_file: Path,
) -> None:
    itb("keys", "rotate", "--alg", "ES384")
    old = KeySet.load(keys_file)
    result = itb("keys", "rotate", "--alg", "RS384", "--activate")
    assert result.exit_code == 0, result.output
    keys = KeySet.load(keys_file)
    assert keys.active_alg == "RS384"
    assert keys.active_kid != old.active_kid
    assert old.active_kid in keys.kids
    listing = itb("keys", "list").output.splitlines()
    assert f"{keys.active_kid}  RS384  active" in listing
    assert f"{old.active_kid}  ES384  published" in listing


def test_activate_and_retire_take_kids_beginning_with_a_dash(keys_file: Path) -> None:
    dashed = kid_starting_with_dash()
    dashed.save(keys_file)
    itb("keys", "rotate", "--activate")
    other = KeySet.load(keys_file).active_kid
    assert other != dashed.active_kid

    for form in (["--kid", dashed.active_kid], [f"--kid={dashed.active_kid}"]):
        result = itb("keys", "activate", *form)
        assert result.exit_code == 0, result.output
        assert KeySet.load(keys_file).active_kid == dashed.active_kid

    retired = itb("keys", "retire", "--kid", other)
    assert retired.exit_code == 0, retired.output
    assert KeySet.load(keys_file).kids == (dashed.active_kid,)


def test_retire_refuses_the_active_key_and_unknown_kids(keys_file: Path) -> None:
    itb("keys", "rotate")
    active = KeySet.load(keys_file).active_kid
    refused = itb("keys", "retire", "--kid", active)
    assert refused.exit_code == 1
    assert "active key" in refused.output
    assert KeySet.load(keys_file).kids == (active,)
    unknown = itb("keys", "activate", "--kid", "-not-a-kid")
    assert unknown.exit_code == 1 and "no key with kid" in unknown.output


def test_commands_without_a_keys_file_say_so_in_one_line(keys_file: Path) -> None:
    result = itb("keys", "list")
    assert result.exit_code == 1
    assert "no keys file" in result.output and "Traceback" not in result.output


def test_keys_commands_work_in_production_before_the_app_could_start(
    keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITB_ENV_NAME", "production")  # no secret key, no keys: create_app would refuse
    monkeypatch.delenv("ITB_SECRET_KEY", raising=False)
    assert itb("keys", "rotate").exit_code == 0
    assert keys_file.exists()


def test_activate_warns_about_registry_entries_signing_with_another_algorithm(
    keys_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(
        '[[ehr]]\nname = "Epic"\niss = "https://ehr.example.org/fhir"\nclient_id = "x"\n'
        'auth = "private_key_jwt"\nsigning_alg = "ES384"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ITB_EHR_REGISTRY", str(registry))
    itb("keys", "rotate", "--alg", "ES384")
    result = CliRunner().invoke(cli, ["keys", "rotate", "--alg", "RS384", "--activate"])
    assert result.exit_code == 0
    assert "'Epic' has signing_alg ES384 but the active key is RS384" in result.output


def test_the_app_publishes_every_key_of_the_file_at_its_jwks_url(keys_file: Path, tmp_path: Path) -> None:
    itb("keys", "rotate", "--alg", "ES384")
    itb("keys", "rotate", "--alg", "RS384")
    keys = KeySet.load(keys_file)
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "k", "KEYS_FILE": str(keys_file)},
        instance_path=str(tmp_path / "instance"),
    )
    try:
        published = app.test_client().get("/.well-known/jwks.json").get_json()
    finally:
        app.extensions["itb.db"].dispose()
    assert [k["kid"] for k in published["keys"]] == list(keys.kids)
    assert {k["alg"] for k in published["keys"]} == {"ES384", "RS384"}
    assert all("d" not in k for k in published["keys"])
    exported = json.loads(itb("keys", "jwks").output)
    assert exported == published
