"""``ApiKeyRing``: which user and tier an API key belongs to, read from a TOML file.

    [[keys]]
    user = "alice"
    tier = "pro"
    sha256 = "9f86d081..."   # hex SHA-256 of the key (preferred: the file then holds no secret)
    # key = "lsk_..."        # or the key itself
    # admin = true           # may read every user's monitoring and change faults (default: false)
    # tags = ["search"]      # budget tags the key may charge (metadata budget_tag; default: none)
    # cache = true           # the response cache on (false: off, whatever a client asks; default: its tier's)

Keys are looked up by their SHA-256, so the ring never holds a presented key and the lookup
does not leak where two keys differ. ``python -m policy.keys new --user alice --tier pro [--admin]
[--tag search]`` prints a fresh key and the lines to add.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from errors import ConfigurationError
from errors.secrets import withhold
from policy.budgets import TAG_PATTERN
from policy.tiers import Tier

KEY_PREFIX = "lsk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling. ``key_id`` names the key in limits and logs without revealing it; an
    unauthenticated caller (the server runs open) has none. ``admin``: may read every user's
    monitoring, the metrics and the dashboard, and change faults. ``tags``: the budget tags its
    requests may name. ``cache``: the response cache for its requests, over its tier's (None: as the tier)."""

    user_id: str
    tier_name: str
    tier: Tier
    key_id: str | None
    admin: bool = False
    tags: frozenset[str] = frozenset()  # budget tags the key may charge (``policy.budgets``)
    cache: bool | None = None

    @property
    def authenticated(self) -> bool:
        return self.key_id is not None


class ApiKeyRing:
    def __init__(self, callers_by_hash: Mapping[str, Caller]):
        self._by_hash = dict(callers_by_hash)

    @property
    def empty(self) -> bool:
        return not self._by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, presented: str) -> Caller | None:
        return self._by_hash.get(hash_key(presented))

    @classmethod
    def from_file(cls, path: Path | None, tiers: Mapping[str, Tier]) -> ApiKeyRing:
        """The ring in ``path``; an empty ring (the server runs open) when ``path`` is None."""
        if path is None:
            return cls({})
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"LLM_SERVER_API_KEYS_FILE points at {path}, which does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read LLM_SERVER_API_KEYS_FILE {path} ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
        # A typo must not run the server open: a ring with no keys serves everyone at the open tier.
        unknown = sorted(set(document) - {"keys"})
        if unknown:
            raise ConfigurationError(f"{path}: unknown table or key {unknown}; list the keys as [[keys]] entries")
        entries = document.get("keys", [])
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(
                f"{path} holds no [[keys]] entry; add one (python -m policy.keys new --user NAME --tier TIER), "
                "or unset LLM_SERVER_API_KEYS_FILE to run open on localhost"
            )
        callers: dict[str, Caller] = {}
        for number, entry in enumerate(entries, start=1):
            digest = _digest_of(entry, path, number)
            user, tier = entry.get("user"), entry.get("tier")
            if not isinstance(user, str) or not user:
                raise ConfigurationError(f"{path}: key #{number} needs a `user`")
            if tier not in tiers:
                raise ConfigurationError(f"{path}: key #{number} ({user}) has tier {tier!r}; tiers: {sorted(tiers)}")
            if digest in callers:
                raise ConfigurationError(f"{path}: key #{number} ({user}) repeats an earlier key")
            admin = entry.get("admin", False)
            if not isinstance(admin, bool):  # "yes" or 1 must not pass for true, nor "false" for false
                raise ConfigurationError(
                    f"{path}: key #{number} ({user}) has `admin` = {admin!r}, which is not a boolean; "
                    "write admin = true (or leave it out for an ordinary key)"
                )
            tags = _tags_of(entry, path, number, user)
            cache = entry.get("cache")
            if cache is not None and not isinstance(cache, bool):
                raise ConfigurationError(
                    f"{path}: key #{number} ({user}) has `cache` = {cache!r}, which is not a boolean; write "
                    "cache = true or cache = false (or leave it out: its tier decides)"
                )
            callers[digest] = Caller(
                user_id=user, tier_name=tier, tier=tiers[tier], key_id=digest[:12], admin=admin, tags=tags, cache=cache
            )
        return cls(callers)


ENTRY_FIELDS = frozenset({"user", "tier", "sha256", "key", "admin", "tags", "cache"})


def _tags_of(entry: dict[str, object], path: Path, number: int, user: str) -> frozenset[str]:
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and re.match(TAG_PATTERN, t) for t in tags):
        raise ConfigurationError(
            f"{path}: key #{number} ({user}) has `tags` = {tags!r}; write a list of budget tags, each 1 to 64 "
            'letters, digits, ".", "_" or "-", e.g. tags = ["search"]'
        )
    return frozenset(tags)


def _digest_of(entry: object, path: Path, number: int) -> str:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path}: key #{number} must be a table ([[keys]])")
    unknown = sorted(set(entry) - ENTRY_FIELDS)
    if unknown:
        raise ConfigurationError(f"{path}: key #{number} has unknown fields {unknown}; use {sorted(ENTRY_FIELDS)}")
    if isinstance(entry.get("sha256"), str):
        digest = entry["sha256"].strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigurationError(f"{path}: key #{number} has a `sha256` that is not 64 hex digits")
        return digest
    if isinstance(entry.get("key"), str) and len(entry["key"]) >= 16:
        withhold(entry["key"])  # a key in clear is a secret this process now holds
        return hash_key(entry["key"])
    raise ConfigurationError(f"{path}: key #{number} needs `sha256` (hex) or `key` (16 characters or more)")


def main(tiers: Mapping[str, Tier]) -> None:
    """``python -m policy.keys new --user U --tier T [--admin]``; ``tiers``: the configured ones."""
    parser = argparse.ArgumentParser(description="Make a new API key and print its entry for the keys file.")
    parser.add_argument("command", choices=["new"])
    parser.add_argument("--user", required=True)
    parser.add_argument("--tier", required=True)
    parser.add_argument(
        "--admin", action="store_true", help="may read every user's monitoring, the dashboard and /metrics"
    )
    parser.add_argument("--tag", action="append", default=[], help="a budget tag the key may charge (repeatable)")
    args = parser.parse_args()
    if args.tier not in tiers:
        parser.error(f"no tier {args.tier!r}; the tiers are {', '.join(tiers)} (LLM_SERVER_TIERS)")
    bad = [tag for tag in args.tag if not re.match(TAG_PATTERN, tag)]
    if bad:
        parser.error(f"budget tags are 1 to 64 letters, digits, '.', '_' or '-'; not {', '.join(map(repr, bad))}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    print(f"# give this key to {json.dumps(args.user)}; it is not stored anywhere:\n#   {key}")
    # JSON's string escapes are TOML's: a crafted name stays one string, never a second entry.
    user, tier, digest = (json.dumps(value) for value in (args.user, args.tier, hash_key(key)))
    tags = f"\ntags = {json.dumps(sorted(set(args.tag)))}" if args.tag else ""
    admin = "\nadmin = true" if args.admin else ""
    print(f"[[keys]]\nuser = {user}\ntier = {tier}\nsha256 = {digest}{admin}{tags}")


if __name__ == "__main__":
    from settings import Settings  # this entry point is its own composition root

    main(Settings().tiers)
