"""What the SIP thread tells the event loop, and how it is configured.

Small frozen events, posted with `loop.call_soon_threadsafe`; no pjsua2 here.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.events import CallbotError
from callcenter.gateways.sip_invite import InviteRequest


class SipError(CallbotError):
    """The SIP stack could not start or refused a request."""


@dataclass(frozen=True, slots=True)
class PjsipConfig:
    host: str
    port: int  # 0: any free port
    public_address: str | None
    max_calls: int  # incoming calls taken at once; more get 486
    reserved_legs: int  # pjsua call slots kept for outgoing legs (dispatchers)
    debug: bool = False  # pjsip's own log at level 3 (our DEBUG) instead of 2
    poll_ms: int = 5  # the longest a submitted command waits for the SIP thread


@dataclass(frozen=True, slots=True)
class CallOffered:
    """An INVITE we may take: 180 Ringing is sent; answer or refuse it."""

    key: str
    invite: InviteRequest


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    key: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    key: str
    status_code: int  # the last SIP status (200 after a BYE, 487 after a CANCEL, ...)
    reason: str
    by_us: bool  # we hung up (or refused) the call


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    key: str
    digit: str


SipEvent = CallOffered | CallConfirmed | CallEnded | DtmfReceived
