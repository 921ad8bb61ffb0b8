"""Random secrets (API tokens, session ids, CSRF tokens) and how they are stored.

Secrets are 32 random bytes, URL-safe base64. Only their SHA-256 digest goes in
the database (API tokens and session ids), so a copy of the database lets no
one in. Fast hashing is enough here: the secrets are random, not passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32
MAX_SECRET_CHARS = 128  # anything longer is not one of ours; refused unhashed


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """The hex SHA-256 of a secret, as stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def plausible_secret(secret: str) -> bool:
    """Cheap shape check before touching the database."""
    return 0 < len(secret) <= MAX_SECRET_CHARS and secret.isascii()


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing or empty."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
