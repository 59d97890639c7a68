"""API keys of every tier for tests, the keys file that names them, and tiers with limits set."""

from __future__ import annotations

import json
from pathlib import Path

from policy.keys import hash_key
from policy.tiers import Tier, default_tiers
from settings import Settings
from tests.helpers.apps import settings_for
from tests.helpers.provider_double import ProviderDouble

KEYS = {
    "free": "lsk_free-alice-0123456789",
    "pro": "lsk_pro-bob-0123456789ab",
    "enterprise": "lsk_ent-carol-0123456789",
    "admin": "lsk_admin-dana-0123456789",
}


def keys_file(folder: Path) -> Path:
    """One key per tier: the free one stored as a hash (as in production), the others in clear;
    and an admin's (on the free tier: reading every user's monitoring is not a tier's right)."""
    path = folder / "api_keys.toml"
    path.write_text(
        f'[[keys]]\nuser = "alice"\ntier = "free"\nsha256 = "{hash_key(KEYS["free"])}"\n\n'
        f'[[keys]]\nuser = "bob"\ntier = "pro"\nkey = "{KEYS["pro"]}"\n\n'
        f'[[keys]]\nuser = "carol"\ntier = "enterprise"\nkey = "{KEYS["enterprise"]}"\n\n'
        f'[[keys]]\nuser = "dana"\ntier = "free"\nkey = "{KEYS["admin"]}"\nadmin = true\n'
    )
    return path


def write_keys(folder: Path, *entries: dict[str, object]) -> Path:
    """A keys file of ``entries``, each one ``[[keys]]`` table (strings, booleans, lists of strings)."""
    path = folder / "api_keys.toml"
    # JSON's strings, booleans and lists are TOML's.
    tables = [
        "[[keys]]\n" + "".join(f"{name} = {json.dumps(value)}\n" for name, value in entry.items()) for entry in entries
    ]
    path.write_text("\n".join(tables))
    return path


def keyed_settings(double: ProviderDouble, tmp_path: Path, **overrides: object) -> Settings:
    """Settings with the keys file in ``tmp_path``: every caller needs a key."""
    return settings_for(double, api_keys_file=keys_file(tmp_path), **overrides)


def as_tier(tier: str) -> dict[str, str]:
    """The key of a tier, or with "admin" the admin's."""
    return {"X-API-Key": KEYS[tier]}


def limited_tiers(**limits: int) -> dict[str, Tier]:
    tiers = default_tiers()
    tiers["pro"] = tiers["pro"].model_copy(update=limits)
    return tiers


def roomy_tiers() -> dict[str, Tier]:
    """The default tiers without limits that a module's worth of tests could reach: for an app the
    tests of a module share (``make_shared_app``), where no test is about limits."""
    room = {"requests_per_minute": 100_000, "tokens_per_minute": 100_000_000, "feedback_per_minute": 100_000}
    return {name: tier.model_copy(update=room) for name, tier in default_tiers().items()}
