"""Secrets' values encrypted at rest with Fernet under TURNOUT_SECRET_KEY."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class VaultUnavailable(Exception):
    """TURNOUT_SECRET_KEY is not set or is not a Fernet key (make one with
    `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`)."""


class Vault:
    def __init__(self, key: str | None) -> None:
        try:
            self.fernet = Fernet(key.encode()) if key else None
        except ValueError:
            self.fernet = None

    def _need(self) -> Fernet:
        if self.fernet is None:
            raise VaultUnavailable((VaultUnavailable.__doc__ or "").strip())
        return self.fernet

    def encrypt(self, value: str) -> str:
        token: bytes = self._need().encrypt(value.encode())
        return token.decode()

    def decrypt(self, token: str) -> str:
        try:
            plain: bytes = self._need().decrypt(token.encode())
            return plain.decode()
        except InvalidToken as exc:
            raise VaultUnavailable(
                "a stored secret cannot be decrypted with TURNOUT_SECRET_KEY (was it changed?)"
            ) from exc
