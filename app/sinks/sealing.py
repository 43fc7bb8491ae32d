"""Signing secrets at rest: Fernet-encrypted under TURNOUT_SECRET_KEY when it is set.

The service must read a webhook's secret back to sign with it (a hash would not do), so
without TURNOUT_SECRET_KEY it is stored as it is, like Svix's and Stripe's own copies."""

from __future__ import annotations

from app.auth.vault import Vault

FERNET = "fernet:"
PLAIN = "plain:"


class SecretSeal:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def seal(self, secret: str) -> str:
        if self.vault.fernet is not None:
            return FERNET + self.vault.encrypt(secret)
        return PLAIN + secret

    def unseal(self, stored: str | None) -> str | None:
        """The secret; raises VaultUnavailable when it is encrypted and the key is gone."""
        if stored is None:
            return None
        if stored.startswith(FERNET):
            return self.vault.decrypt(stored[len(FERNET) :])
        return stored.removeprefix(PLAIN)
