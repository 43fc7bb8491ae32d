"""API keys and dashboard sessions: only hashes are stored, never a key or a session token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from app.store.base import StoreBase
from app.store.tables import api_keys, api_sessions


@dataclass
class KeyRecord:
    id: int
    name: str
    namespace: str
    scopes: list[str]
    key_hash: str
    key_hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def public(self) -> dict[str, Any]:
        """What `keys ls` and the API show: never the hash."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "scopes": self.scopes,
            "hint": self.key_hint,
            "createdAt": self.created_at.isoformat(),
            "lastUsedAt": self.last_used_at.isoformat() if self.last_used_at else None,
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _key(row: Any) -> KeyRecord:
    return KeyRecord(**{c: row[c] for c in KeyRecord.__dataclass_fields__})


class KeyNameTaken(Exception):
    """A key with this name already exists (revoked keys keep their names)."""


class KeyStore(StoreBase):
    """Keys are revoked, never deleted: a revoked key keeps auth on and its name in the audit."""

    async def create(
        self, name: str, namespace: str, scopes: list[str], key_hash: str, hint: str
    ) -> KeyRecord:
        now = datetime.now(UTC)
        async with self._write() as conn:
            taken = await conn.execute(select(api_keys.c.id).where(api_keys.c.name == name))
            if taken.first() is not None:
                raise KeyNameTaken(name)
            await conn.execute(
                insert(api_keys).values(
                    name=name,
                    namespace=namespace,
                    scopes=scopes,
                    key_hash=key_hash,
                    key_hint=hint,
                    created_at=now,
                )
            )
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.name == name)))
                .mappings()
                .one()
            )
        return _key(row)

    async def list(self) -> list[KeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.name))).mappings().all()
        return [_key(r) for r in rows]

    async def revoke(self, name: str) -> bool:
        """True when a live key of this name was revoked; its sessions end with it."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                    .returning(api_keys.c.id)
                )
            ).first()
            if row is None:
                return False
            await conn.execute(delete(api_sessions).where(api_sessions.c.key_id == row[0]))
        return True

    async def any_exist(self) -> bool:
        """Auth stays on once a key was ever made, even after the last one is revoked."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(api_keys.c.id).limit(1))).first() is not None

    async def find_live(self, key_hash: str) -> KeyRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(api_keys).where(
                            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                        )
                    )
                )
                .mappings()
                .first()
            )
        return _key(row) if row is not None else None

    async def create_session(self, token_hash: str, key_id: int, csrf: str, ttl: timedelta) -> None:
        now = datetime.now(UTC)
        async with self._write() as conn:
            await conn.execute(delete(api_sessions).where(api_sessions.c.expires_at < now))
            await conn.execute(
                insert(api_sessions).values(
                    token_hash=token_hash,
                    key_id=key_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )

    async def find_session(self, token_hash: str) -> tuple[KeyRecord, str] | None:
        """The live key behind a session and the session's CSRF token."""
        now = datetime.now(UTC)
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(api_keys, api_sessions.c.csrf_token)
                        .join(api_sessions, api_sessions.c.key_id == api_keys.c.id)
                        .where(
                            api_sessions.c.token_hash == token_hash,
                            api_sessions.c.expires_at > now,
                            api_keys.c.revoked_at.is_(None),
                        )
                    )
                )
                .mappings()
                .first()
            )
        return (_key(row), row["csrf_token"]) if row is not None else None

    async def end_session(self, token_hash: str) -> None:
        async with self._write() as conn:
            await conn.execute(delete(api_sessions).where(api_sessions.c.token_hash == token_hash))
