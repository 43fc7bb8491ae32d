"""API keys: random tokens shown once, stored as SHA-256 hashes, and the principal a key is."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCOPES = ("read", "run", "control", "admin")
DEFAULT_NAMESPACE = "default"
KEY_PREFIX = "tno_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class KeyInvalid(ValueError):
    """A key name, namespace or scope list that cannot be used."""


def new_token() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a prefix that secret scanners recognise."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(stored: str, token: str) -> bool:
    return hmac.compare_digest(stored, hash_token(token))


def parse_scopes(text: str | list[str]) -> list[str]:
    """`read,run` -> ["read", "run"]; an unknown scope is refused."""
    items = text.split(",") if isinstance(text, str) else text
    wanted = {s.strip() for s in items if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise KeyInvalid(f"unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
    if not wanted:
        raise KeyInvalid(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in wanted]


def check_name(kind: str, value: str) -> str:
    if not NAME.match(value):
        raise KeyInvalid(
            f"{kind} {value!r} must be 1-100 letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key's name, its namespace and scopes (`admin` implies every scope)."""

    name: str
    namespace: str
    scopes: frozenset[str]
    label: str | None = None  # X-Actor: a sub-label, never the identity
    authenticated: bool = True  # False with auth off: X-Actor names the caller, as before

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def actor(self) -> str:
        """What events and steps record: the key's name, with the caller's label after it."""
        if not self.authenticated:
            return self.label or self.name
        return f"{self.name} ({self.label})" if self.label else self.name
