"""Ways calls arrive: each gateway turns its protocol into a `CallSession`.

A gateway opens a session with `center.open_call(info, output)`, pushes the
caller's audio (16 kHz, 20 ms frames) with `session.push_audio`, delivers DTMF
and hang-ups, and plays what the session sends to its `CallOutput`. The
media-stream WebSocket lives in the FastAPI app; the others listen on their
own ports and are started and stopped with the app (`build_gateways`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from callcenter.center import CallCenter

log = logging.getLogger(__name__)


class Gateway(Protocol):
    name: str

    @property
    def address(self) -> str | None:
        """Where it listens once started (e.g. "udp 127.0.0.1:5060"), for /health."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop listening and end its calls (each goes through the session's hang-up)."""
        ...


def build_gateways(center: CallCenter) -> list[Gateway]:
    """The gateways the settings enable; imported only when enabled.

    A gateway whose library cannot be loaded (e.g. pjsip on an unusual
    platform) is reported in /health; the others still take calls.
    """
    settings = center.settings
    gateways: list[Gateway] = []
    if settings.sip_enabled:
        try:
            from callcenter.gateways.sip import SipGateway

            gateways.append(SipGateway(center))
        except ImportError as exc:
            _unavailable(center, "sip", exc)
    if settings.audiosocket_enabled:
        try:
            from callcenter.gateways.audiosocket import AudioSocketServer

            gateways.append(AudioSocketServer(center))
        except ImportError as exc:
            _unavailable(center, "audiosocket", exc)
    return gateways


def _unavailable(center: CallCenter, name: str, exc: ImportError) -> None:
    log.error("the %s gateway cannot be loaded: %s", name, exc)
    center.gateways[name] = f"failed: cannot load ({exc})"
