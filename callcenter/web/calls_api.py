"""`/api/v1/calls`: call recordings, for supervisors and admins only.

Each download is written to the access log before a byte is sent; if the log
cannot be written, nothing is sent. The file is found through the call's
record, never from a path in the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import FileResponse

from callcenter.auth.deps import SupervisorPrincipal
from callcenter.center import CallCenter
from callcenter.web.incidents_api import Database, actor_name, refuse
from dispatch.errors import DispatchError

CallId = Annotated[str, Path(min_length=1, max_length=64)]


def calls_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/calls", tags=["calls"])

    @router.get(
        "/{call_id}/recording",
        response_class=FileResponse,
        responses={
            200: {
                "content": {"audio/flac": {}},
                "description": "stereo FLAC: caller left, bot right",
            },
            401: {"description": "not logged in, or a bad token"},
            403: {"description": "only supervisors and admins hear recordings"},
            404: {"description": "no such call, or no recording (not recorded, or purged)"},
            503: {"description": "the database is unreachable; try again"},
        },
    )
    async def recording(
        call_id: CallId, request: Request, principal: SupervisorPrincipal, database: Database
    ) -> FileResponse:
        """The call's audio, both sides (each download is access-logged)."""
        center: CallCenter = request.app.state.center
        try:
            call = await database.get_call(call_id)
            if call is None or call.recording is None or center.recorder is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no recording for this call")
            path = center.recorder.resolve(call.recording)
            if path is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "the recording was purged")
            await database.record_access(
                actor_name(principal), principal.role.value, "read_recording", f"call:{call_id}"
            )
        except DispatchError as exc:
            refuse(exc)
        return FileResponse(
            path,
            media_type="audio/flac",
            filename=f"{call_id}.flac",
            headers={"Cache-Control": "no-store"},
        )

    return router
