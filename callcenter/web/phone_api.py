"""The browser softphone (`/phone`) and WebRTC signalling.

- `GET /phone`: the softphone page; public, like a phone line: a caller or a
  trainee needs no account.
- `POST /api/v1/phone/calls` `{sdp, type: "offer", line, lang, from?}` -> 201
  `{sdp, type: "answer", call_id}`: a call to the bot. Bad offers, lines or
  languages get 422 and start nothing; 503 while the service starts or when
  the gateway is at its call limit.
- `POST /api/v1/incidents/{id}/takeover` `{sdp, type: "offer"}` (staff, with
  the console's CSRF header) -> `{sdp, type: "answer", call_id}`: the
  dispatcher's browser joins the incident's live call; once its audio flows
  the bot falls silent and the dispatcher talks with the caller. 404 when the
  call is not in progress on this node, 409 when a dispatcher is already on it.

No trickle ICE: each side sends its description with all its candidates.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import StaffPrincipal
from callcenter.center import CallCenter, NotReady
from callcenter.events import Language, Line
from callcenter.gateways.webrtc import (
    MAX_SDP_CHARS,
    AlreadyBridged,
    BadOffer,
    TooManyCalls,
    WebRtcGateway,
)
from callcenter.incidents import incident_id_for
from callcenter.logs import call_context
from callcenter.web.incidents_api import actor_name
from callcenter.web.pages import PAGE_HEADERS, static_text
from dispatch.errors import DispatchError

log = logging.getLogger(__name__)

IncidentId = Annotated[str, Path(min_length=1, max_length=64)]
_INCIDENT_PREFIX = incident_id_for("")


class OfferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS, description="the complete SDP offer")
    type: Literal["offer"]


class PhoneCallBody(OfferBody):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    line: Line
    lang: Language
    caller_number: str | None = Field(
        default=None,
        alias="from",
        pattern=r"^\+?[0-9][0-9 .-]{2,30}$",
        description="a number to call back, if the caller gives one",
    )


class AnswerOut(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"
    call_id: str


_CALL_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "body too large"},
    422: {"description": "a malformed body, or an offer that cannot make an audio call"},
    503: {"description": "the service is starting, or too many WebRTC calls"},
}
_TAKEOVER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in, or a bad token"},
    403: {"description": "this role may not do this, or the CSRF token is missing"},
    404: {"description": "the incident's call is not in progress on this node"},
    409: {"description": "a dispatcher is already talking on this call"},
    **_CALL_ERRORS,
}


def phone_csp(page: str) -> str:
    """The page's content security policy: its own script and its one inline style."""
    styles = re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in styles
    )
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self' {hashes}; "
        "connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _unprocessable(exc: BadOffer) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def _unavailable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, message, headers={"Retry-After": "5"})


def phone_router(center: CallCenter) -> APIRouter:
    gateway = WebRtcGateway(
        center,
        max_calls=center.settings.webrtc_max_calls,
        connect_timeout_s=center.settings.webrtc_connect_timeout_s,
    )
    center.gateways["webrtc"] = f"/phone, up to {gateway.max_calls} calls"
    router = APIRouter(tags=["phone"])
    page = static_text("phone.html")
    page_headers = {**PAGE_HEADERS, "Content-Security-Policy": phone_csp(page)}

    @router.get("/phone", include_in_schema=False)
    async def phone_page() -> HTMLResponse:
        return HTMLResponse(page, headers=page_headers)

    @router.post("/api/v1/phone/calls", status_code=status.HTTP_201_CREATED, responses=_CALL_ERRORS)
    async def place_call(body: PhoneCallBody) -> AnswerOut:
        """Call 113 or 114 from a browser: the answer to its offer starts the call."""
        try:
            answer = await gateway.place_call(
                body.sdp, body.type, body.line, body.lang, body.caller_number
            )
        except BadOffer as exc:
            raise _unprocessable(exc) from exc
        except (NotReady, TooManyCalls) as exc:
            raise _unavailable(str(exc)) from exc
        return AnswerOut(sdp=answer.sdp, call_id=answer.call_id)

    @router.post(
        "/api/v1/incidents/{incident_id}/takeover",
        tags=["incidents"],
        responses=_TAKEOVER_ERRORS,
    )
    async def take_over(
        incident_id: IncidentId, body: OfferBody, principal: StaffPrincipal
    ) -> AnswerOut:
        """Talk with the caller of a call in progress: the bot falls silent."""
        call_id = incident_id.removeprefix(_INCIDENT_PREFIX)
        not_live = HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the call of incident {incident_id!r} is not in progress on this node",
        )
        if call_id == incident_id or call_id not in center.calls:
            raise not_live
        name = actor_name(principal)
        try:
            answer = await gateway.take_over(call_id, name, body.sdp, body.type)
        except KeyError:
            raise not_live from None
        except AlreadyBridged as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except BadOffer as exc:
            raise _unprocessable(exc) from exc
        with call_context(call_id):
            log.info("dispatcher %s is joining the call", name)
            try:
                await center.store.store.record_access(
                    name, principal.role.value, "take_over_call", f"call:{call_id}"
                )
            except (DispatchError, NotReady) as exc:  # never keep a dispatcher from a caller
                log.error("the take-over is not in the access log: %s", exc)
        return AnswerOut(sdp=answer.sdp, call_id=answer.call_id)

    return router
