"""Password hashing with argon2id (argon2-cffi), rehash on login, constant cost.

`verify_unknown` checks a password against a dummy hash made with the same
parameters, so a login for a user that does not exist costs as much time as a
wrong password and does not reveal which usernames exist.
"""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.auth.errors import WeakPassword
from callcenter.auth.models import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS


class PasswordService:
    """Hash and verify passwords; `hasher` defaults to argon2-cffi's RFC 9106 profile."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash("not a real password, only spends time")

    def hash(self, password: str) -> str:
        """The encoded argon2id hash; `WeakPassword` if too short or too long."""
        if len(password) < MIN_PASSWORD_CHARS:
            raise WeakPassword(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > MAX_PASSWORD_CHARS:
            raise WeakPassword(f"a password has at most {MAX_PASSWORD_CHARS} characters")
        return self._hasher.hash(password)

    def verify(self, encoded_hash: str, password: str) -> bool:
        """True when the password matches (argon2 compares in constant time)."""
        if len(password) > MAX_PASSWORD_CHARS:
            self.verify_unknown(password[:MAX_PASSWORD_CHARS])
            return False
        try:
            return self._hasher.verify(encoded_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_unknown(self, password: str) -> bool:
        """Spend the time of one verification and fail (for unknown users)."""
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy_hash, password[:MAX_PASSWORD_CHARS])
        return False

    def needs_rehash(self, encoded_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(encoded_hash)
        except InvalidHashError:
            return True
