"""Per-namespace secrets: Fernet tokens only (the vault encrypts; the store never sees values)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update

from app.store.base import StoreBase
from app.store.tables import secrets


class SecretStore(StoreBase):
    async def put(self, namespace: str, name: str, token: str) -> None:
        now = datetime.now(UTC)
        async with self._write() as conn:
            changed = await conn.execute(
                update(secrets)
                .where(secrets.c.namespace == namespace, secrets.c.name == name)
                .values(value=token, updated_at=now)
            )
            if changed.rowcount == 0:
                await conn.execute(
                    insert(secrets).values(
                        namespace=namespace, name=name, value=token, updated_at=now
                    )
                )

    async def names(self, namespace: str) -> list[tuple[str, datetime]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(secrets.c.name, secrets.c.updated_at)
                .where(secrets.c.namespace == namespace)
                .order_by(secrets.c.name)
            )
            return [(r.name, r.updated_at) for r in rows]

    async def tokens(self, namespace: str, names: set[str]) -> dict[str, str]:
        if not names:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(secrets.c.name, secrets.c.value).where(
                    secrets.c.namespace == namespace, secrets.c.name.in_(names)
                )
            )
            return {r.name: r.value for r in rows}

    async def remove(self, namespace: str, name: str) -> bool:
        async with self._write() as conn:
            done = await conn.execute(
                delete(secrets).where(secrets.c.namespace == namespace, secrets.c.name == name)
            )
        return bool(done.rowcount)
