"""Errors of the auth package."""

from __future__ import annotations

from callcenter.events import CallbotError


class AuthError(CallbotError):
    """An authentication or account operation was refused."""


class AuthStoreUnavailable(AuthError):
    """The account database cannot be reached, timed out, or failed."""


class InvalidCredentials(AuthError):
    """Wrong username or password (deliberately not saying which)."""


class AccountLocked(AuthError):
    """Too many failed logins for this account; refused until `retry_after_s` passes."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed logins; try again in {int(retry_after_s) + 1} s")
        self.retry_after_s = retry_after_s


class AccountExists(AuthError):
    """A user with this name already exists."""


class UnknownAccount(AuthError):
    """No user or token with this name."""


class WeakPassword(AuthError):
    """The new password does not meet the length rules."""
