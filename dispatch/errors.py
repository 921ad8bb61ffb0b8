"""Errors of the dispatch package."""

from __future__ import annotations

from callcenter.events import CallbotError


class DispatchError(CallbotError):
    """A dispatch store operation was refused (e.g. a turn for an unknown call)."""


class StoreUnavailable(DispatchError):
    """The database cannot be reached, timed out, or failed; retry or journal."""


class UnknownCall(DispatchError):
    """The call id was never started in this store."""


class UnknownIncident(DispatchError):
    """No incident with this id in the store."""


class InvalidTransition(DispatchError):
    """The incident's status does not allow this action (e.g. closing a new incident)."""


class AlreadyClaimed(InvalidTransition):
    """Another dispatcher acknowledged the incident first."""


class StaleVersion(DispatchError):
    """The incident changed since the caller read it (`expected_version` is behind)."""
