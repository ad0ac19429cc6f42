"""Encryption of account contexts at rest (Fernet), and keys derived from the server secret."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts and decrypts JSON objects with the server's secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet = Fernet(key)

    @classmethod
    def from_environment(cls, data_dir: Path) -> SecretBox:
        """Key from `UNICRM_SECRET_KEY`, else `<data_dir>/secret.key` (created 0600 on first run).

        Every server process sharing a database must use the same key.
        """
        env = os.environ.get("UNICRM_SECRET_KEY")
        if env:
            return cls(env.strip().encode())
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            # O_EXCL: two processes starting at once must not write different keys.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(key)
        return cls(path.read_bytes().strip())

    def encrypt(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(data)).decode("ascii")

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            value = orjson.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise ValueError("cannot decrypt an account context: is UNICRM_SECRET_KEY the key it was written with?") from None
        return value if isinstance(value, dict) else {}

    def derive_key(self, purpose: str) -> bytes:
        """A key for another purpose (cursor signing), derived so the master key never leaves."""
        return hashlib.sha256(purpose.encode() + b"\x00" + self._key).digest()
