"""Resolving a run's `{{ secrets.NAME }}`: the namespace's store, then TURNOUT_SECRET_<NAME>."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.masking import secret_references
from app.auth.vault import Vault, VaultUnavailable
from app.errors import ServiceUnavailable, WorkflowInvalid
from app.store.secrets import SecretStore

ENV_PREFIX = "TURNOUT_SECRET_"


class SecretResolver:
    def __init__(self, engine: AsyncEngine, secret_key: str | None) -> None:
        self.store = SecretStore(engine)
        self.vault = Vault(secret_key)

    async def resolve(self, namespace: str, definition: dict[str, Any]) -> dict[str, str]:
        """The values this definition reads; an unknown one is a WorkflowInvalid (422)."""
        wanted = secret_references(definition.get("nodes")) | secret_references(
            definition.get("output")
        )
        if not wanted:
            return {}
        tokens = await self.store.tokens(namespace, wanted)
        try:
            values = {name: self.vault.decrypt(token) for name, token in tokens.items()}
        except VaultUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        for name in wanted - values.keys():
            from_env = os.environ.get(ENV_PREFIX + name.upper())
            if from_env is not None:
                values[name] = from_env
        missing = sorted(wanted - values.keys())
        if missing:
            raise WorkflowInvalid(
                f"unknown secret {', '.join(missing)} in namespace '{namespace}'",
                [
                    {"loc": ["secrets", n], "code": "unknown_secret",
                     "message": f"no secret '{n}' (set it with `turnout secrets set {n}`)"}
                    for n in missing
                ],
            )  # fmt: skip
        return values
