"""Encryption at rest for access tokens and Payday secrets (Fernet: AES-128-CBC + HMAC).

ENCRYPTION_KEY holds one or more keys, newest first: values are written with the first and
read with any, so keys rotate without downtime (`rotate` re-encrypts with the newest)."""
from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class EncryptionKeyError(RuntimeError):
    pass


def _fernet(keys: str | None = None) -> MultiFernet:
    raw = keys if keys is not None else os.environ.get("ENCRYPTION_KEY", "")
    parts = [k.strip() for k in raw.split(",") if k.strip()]
    if not parts:
        raise EncryptionKeyError("ENCRYPTION_KEY is not set")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except (ValueError, TypeError) as exc:
        raise EncryptionKeyError("ENCRYPTION_KEY must be url-safe base64 Fernet keys") from exc


def encrypt(value: str | None) -> bytes | None:
    if value is None:
        return None
    return _fernet().encrypt(value.encode())


def decrypt(value: bytes | memoryview | None) -> str | None:
    if value is None:
        return None
    try:
        return _fernet().decrypt(bytes(value)).decode()
    except InvalidToken as exc:
        raise EncryptionKeyError("a stored secret cannot be decrypted with ENCRYPTION_KEY") from exc


def rotate(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else _fernet().rotate(bytes(value))
