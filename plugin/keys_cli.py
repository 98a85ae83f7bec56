"""``itb keys``: list, rotate, activate and retire the private_key_jwt signing keys in ``ITB_KEYS_FILE``.

A rotation keeps every old key in the published JWKS, so an EHR that cached the JWKS keeps verifying
assertions signed just before. A new key can stay *pending* (published, not yet signing) until every EHR
has refetched the JWKS; ``activate`` then switches signing to it, and ``retire`` removes an old key.
Key ids are base64url thumbprints and may begin with "-", so they are given as ``--kid KID`` (or
``--kid=KID``), never as positional arguments.

These commands read only ``ITB_KEYS_FILE``, ``ITB_INSTANCE_PATH`` and ``ITB_SIGNING_ALG``; they do not build
the app, so they work before the first start in production (where the app refuses to start without keys).
Running workers read the file at start: reload them (``systemctl reload itb``, a rolling restart) after
every change.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask

from smart_launch.keys import KeySet

ALGS = ("ES384", "RS384")


def key_settings() -> dict[str, Any]:
    """Return the ``ITB_*`` settings the key commands need, resolved as the app resolves them."""
    app = Flask("plugin.app", instance_path=os.environ.get("ITB_INSTANCE_PATH") or None)
    app.config.from_prefixed_env("ITB")
    keys_file = app.config.get("KEYS_FILE") or str(Path(app.instance_path) / "keys.json")
    return {
        "keys_file": Path(str(keys_file)),
        "signing_alg": str(app.config.get("SIGNING_ALG") or "ES384"),
        "registry": app.config.get("EHR_REGISTRY"),
    }


def _keys_path(option: str | None) -> Path:
    """Return the keys file: ``--keys-file`` or the settings."""
    return Path(option) if option else key_settings()["keys_file"]


def _load(path: Path) -> KeySet:
    """Load the key file or stop with a one-line reason."""
    if not path.exists():
        raise click.ClickException(f"no keys file at {path}; `itb keys rotate` creates one")
    try:
        return KeySet.load(path)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot read keys file {path}: {error}") from None


def with_active(keys: KeySet, kid: str) -> KeySet:
    """Return the same keys with ``kid`` active (it must be one of them)."""
    if kid not in keys.kids:
        raise click.ClickException(f"no key with kid {kid!r} in the keys file (see `itb keys list`)")
    return KeySet.from_jwks({**keys.private_jwks(), "active_kid": kid})


def _alg_of(keys: KeySet, kid: str) -> str:
    """Return the JWS algorithm of one key."""
    return next(str(k["alg"]) for k in keys.public_jwks()["keys"] if k["kid"] == kid)


def registry_alg_warnings(keys: KeySet) -> list[str]:
    """Return warnings for private_key_jwt EHRs whose ``signing_alg`` differs from the active key's."""
    source = key_settings()["registry"]
    if not source:
        return []
    from plugin.registry import RegistryError, load_registry

    try:
        entries = load_registry(str(source)).entries()
    except RegistryError:
        return []
    return [
        f"warning: EHR {entry.name!r} has signing_alg {entry.signing_alg} but the active key is "
        f"{keys.active_alg}; change its signing_alg in the registry before reloading the workers"
        for entry in entries
        if entry.auth_method == "private_key_jwt" and entry.signing_alg != keys.active_alg
    ]


def _saved(keys: KeySet, path: Path, message: str) -> None:
    """Save the keys, say what changed, warn about registry mismatches and remind to reload."""
    keys.save(path)
    click.echo(message)
    for warning in registry_alg_warnings(keys):
        click.echo(warning, err=True)
    click.echo("reload the workers so they use the new keys (systemctl reload itb, or a rolling restart)")


keys_file_option = click.option(
    "--keys-file", type=click.Path(dir_okay=False), default=None, help="Default: ITB_KEYS_FILE."
)


@click.group("keys")
def keys_group() -> None:
    """Manage the private_key_jwt signing keys (ITB_KEYS_FILE)."""


@keys_group.command("list")
@keys_file_option
def list_command(keys_file: str | None) -> None:
    """List the keys: kid, algorithm, and whether each is active or published only."""
    keys = _load(_keys_path(keys_file))
    for kid in keys.kids:
        state = "active" if kid == keys.active_kid else "published"
        click.echo(f"{kid}  {_alg_of(keys, kid)}  {state}")


@keys_group.command("rotate")
@click.option(
    "--alg", type=click.Choice(ALGS), default=None, help="Default: the active key's (or ITB_SIGNING_ALG)."
)
@click.option("--activate", is_flag=True, help="Sign with the new key at once (default: keep it pending).")
@keys_file_option
def rotate_command(alg: str | None, activate: bool, keys_file: str | None) -> None:
    """Add a new key; old keys stay published. Creates the keys file when there is none."""
    path = _keys_path(keys_file)
    if not path.exists():
        keys = KeySet.generate(alg or key_settings()["signing_alg"])  # type: ignore[arg-type]
        _saved(keys, path, f"created {path} with active key {keys.active_kid} ({keys.active_alg})")
        return
    old = _load(path)
    rotated = old.rotate(alg or old.active_alg)  # type: ignore[arg-type]
    new_kid = rotated.active_kid
    if activate:
        _saved(rotated, path, f"added key {new_kid} ({rotated.active_alg}), now active")
    else:
        pending = with_active(rotated, old.active_kid)
        _saved(
            pending,
            path,
            f"added key {new_kid} ({_alg_of(rotated, new_kid)}), pending: "
            f"published but not signing; `itb keys activate --kid={new_kid}` once EHRs have refetched",
        )


@keys_group.command("activate")
@click.option("--kid", required=True, help="The key to sign with (its kid may begin with '-').")
@keys_file_option
def activate_command(kid: str, keys_file: str | None) -> None:
    """Sign with the key ``--kid`` from now on (it must already be published)."""
    path = _keys_path(keys_file)
    keys = with_active(_load(path), kid)
    _saved(keys, path, f"key {kid} ({keys.active_alg}) is now active")


@keys_group.command("retire")
@click.option("--kid", required=True, help="The key to remove (its kid may begin with '-').")
@keys_file_option
def retire_command(kid: str, keys_file: str | None) -> None:
    """Remove the key ``--kid`` from the keys file and the JWKS (never the active key)."""
    path = _keys_path(keys_file)
    keys = _load(path)
    if kid not in keys.kids:
        raise click.ClickException(f"no key with kid {kid!r} in the keys file (see `itb keys list`)")
    if kid == keys.active_kid:
        raise click.ClickException("refusing to retire the active key: activate another key first")
    _saved(keys.without(kid), path, f"retired key {kid}")


@keys_group.command("jwks")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@keys_file_option
def jwks_command(output: str | None, keys_file: str | None) -> None:
    """Print the public JWKS (what /.well-known/jwks.json serves), e.g. for a proxy to serve statically."""
    document = json.dumps(_load(_keys_path(keys_file)).public_jwks(), indent=2)
    if output:
        Path(output).write_text(document + "\n", encoding="utf-8")
    else:
        sys.stdout.write(document + "\n")
