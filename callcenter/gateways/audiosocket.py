"""Asterisk AudioSocket gateway: calls that Asterisk streams to us over TCP.

Asterisk's dialplan hands a call over with `AudioSocket(uuid,host:port)`:

    exten => 114,1,Answer()
     same => n,AudioSocket(${UUID_PREFIX}-000000000114,callbot.example:9092)
     same => n,Hangup()

The protocol (see `audiosocket_protocol`) carries the call's UUID, its audio
(8 kHz slin16, 20 ms messages), DTMF and hang-ups; it carries no caller number
and no dialled line. `CALLBOT_AUDIOSOCKET_LINE` fixes the line for every call
(a deployment with one port per line); unset, the line comes from the UUID's
last group: one whose digits end in 114 is answered as the fire line, anything
else as 113 (police). Calls are answered in `CALLBOT_AUDIOSOCKET_LANGUAGE`
(Vietnamese by default). The call id is "as-" + the UUID's hex.

Caller audio is resampled to 16 kHz and pushed into a `CallSession`; the bot's
audio goes back as 320-byte audio messages as the session plays it (already
paced to real time). AudioSocket has no "clear": on barge-in we only drop
audio not yet written. When the bot ends the call we send a hang-up message
and close the socket. While the service is still starting a connection gets
an error message (code 0x10) and is closed, so the dialplan can route the call
to people (the next priority after `AudioSocket()` runs).

Bad input is logged and dropped; a stream we cannot follow (not AudioSocket,
cut mid-message, too many bad messages) ends that connection only. The call
record is kept whatever happens: the session writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from callcenter.audio import StreamResampler, array_to_pcm, pcm_to_array
from callcenter.center import CallCenter, NotReady
from callcenter.events import CallInfo, Language, Line
from callcenter.gateways import audiosocket_protocol as proto
from callcenter.logs import call_context
from callcenter.session import CallSession

log = logging.getLogger(__name__)

_UUID_TIMEOUT_S = 5.0
_WRITE_TIMEOUT_S = 2.0  # a peer that stops reading for this long is gone
_STOP_TIMEOUT_S = 10.0
_MAX_BAD_MESSAGES = 50
_READ_BYTES = 4096


class _SocketOutput:
    """The bot's side of the call, written to the AudioSocket connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._down = StreamResampler(16_000, proto.LINE_RATE_HZ)
        self._pending = bytearray()  # 8 kHz audio short of a whole 320-byte message
        self._lock = asyncio.Lock()
        self.closed = False

    async def _write(self, data: bytes) -> None:
        if self.closed or self._writer.is_closing():
            self.closed = True
            return
        try:
            async with self._lock:
                self._writer.write(data)
                if self._writer.transport.get_write_buffer_size():
                    # The kernel's buffer is full: wait, but not for ever.
                    await asyncio.wait_for(self._writer.drain(), _WRITE_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.warning("audiosocket peer stopped taking audio: %r", exc)
            self.closed = True
            self._writer.close()

    async def send_audio(self, pcm: bytes) -> None:
        self._pending += array_to_pcm(self._down.process(pcm_to_array(pcm)))
        size = proto.AUDIO_FRAME_BYTES
        whole = len(self._pending) - len(self._pending) % size
        if not whole:
            return
        chunk = bytes(self._pending[:whole])
        del self._pending[:whole]
        await self._write(
            b"".join(proto.audio_message(chunk[i : i + size]) for i in range(0, whole, size))
        )

    async def send_mark(self, name: str) -> None:
        return  # AudioSocket has no marks; playback is paced on our side

    async def clear(self) -> None:
        # AudioSocket has no way to drop audio Asterisk already has; drop ours.
        self._pending.clear()

    def abandon(self) -> None:
        """The peer has gone: close without a hang-up message."""
        self.closed = True
        self._writer.close()

    def hang_up_now(self) -> None:
        """The call is over on our side: send Asterisk a hang-up and close."""
        if self.closed:
            return
        self.closed = True
        if not self._writer.is_closing():
            self._writer.write(proto.hangup_message())
            self._writer.close()

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        log.info("the bot ends the audiosocket call: %s", reason)
        await self._write(proto.hangup_message())
        self.closed = True
        self._writer.close()


class AudioSocketServer:
    """The AudioSocket TCP server: one `CallSession` per connection."""

    name = "audiosocket"

    def __init__(self, center: CallCenter) -> None:
        self._center = center
        self._host = center.settings.audiosocket_host
        self._port = center.settings.audiosocket_port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._sessions: set[CallSession] = set()

    @property
    def address(self) -> str | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"tcp {host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, reuse_address=True
        )
        log.info("AudioSocket listening on %s", self.address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.hangup("service shutting down")
        tasks = list(self._connections)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT_S)
            for task in pending:
                self._connections[task].close()
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except Exception:
            # The per-connection supervisor: one broken connection never takes
            # the server (or another call) with it.
            log.exception("audiosocket connection failed")
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), _WRITE_TIMEOUT_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = proto.AudioSocketParser()
        peer = writer.get_extra_info("peername")
        call_uuid, pending = await _read_uuid(reader, parser)
        if call_uuid is None:
            log.warning("audiosocket connection from %s closed: no UUID", _host_of(peer))
            return
        settings = self._center.settings
        fixed_line = settings.audiosocket_line
        info = CallInfo(
            call_id=f"as-{call_uuid.hex}",
            line=Line(fixed_line) if fixed_line else proto.line_from_uuid(call_uuid),
            language=Language(settings.audiosocket_language),
            caller_number=None,
            channel="audiosocket",
        )
        output = _SocketOutput(writer)
        try:
            session = self._center.open_call(info, output)
        except NotReady as exc:
            log.warning("audiosocket call refused: %s", exc)
            with contextlib.suppress(OSError, TimeoutError):
                writer.write(proto.error_message(proto.ERROR_NOT_READY))
                await asyncio.wait_for(writer.drain(), _WRITE_TIMEOUT_S)
            return
        self._sessions.add(session)
        with call_context(info.call_id):
            log.info("audiosocket call started on line %s", info.line)
            session_task = asyncio.create_task(self._center.run_call(session))
            # However the session ends, Asterisk gets a hang-up and the socket
            # closes, which also ends the read loop below.
            session_task.add_done_callback(lambda _task: output.hang_up_now())
            try:
                reason, peer_ended = await _pump(reader, parser, pending, session, session_task)
                if peer_ended:
                    output.abandon()
                session.hangup(reason)
            finally:
                session.hangup("socket closed")
                await session_task
                self._sessions.discard(session)


async def _read_uuid(
    reader: asyncio.StreamReader, parser: proto.AudioSocketParser
) -> tuple[uuid.UUID | None, list[proto.Parsed]]:
    """The first message, which must be the UUID, within `_UUID_TIMEOUT_S`,
    and any messages that came in the same read after it."""
    deadline = time.monotonic() + _UUID_TIMEOUT_S
    while True:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            log.warning("no AudioSocket UUID within %.0f s", _UUID_TIMEOUT_S)
            return None, []
        try:
            data = await asyncio.wait_for(reader.read(_READ_BYTES), left_s)
        except TimeoutError:
            continue
        except OSError:
            return None, []
        if not data:
            bad = parser.finish()
            if bad is not None:
                log.warning("bad audiosocket stream: %s", bad.reason)
            return None, []
        messages = parser.feed(data)
        for index, message in enumerate(messages):
            if isinstance(message, proto.CallId):
                return message.uuid, messages[index + 1 :]
            if isinstance(message, proto.BadMessage):
                log.warning("bad audiosocket stream: %s", message.reason)
                return None, []
            if isinstance(message, proto.Hangup):
                return None, []


async def _pump(
    reader: asyncio.StreamReader,
    parser: proto.AudioSocketParser,
    pending: list[proto.Parsed],
    session: CallSession,
    session_task: asyncio.Task[object],
) -> tuple[str, bool]:
    """Feed the peer's messages to the session until the call ends.

    Returns why it ended and whether the peer ended it (hang-up, EOF).
    `pending`: messages already parsed (those that came in the UUID's read)."""
    upsample = StreamResampler(proto.LINE_RATE_HZ, 16_000)
    bad_messages = 0
    while not session_task.done():
        for message in pending:
            if isinstance(message, proto.Audio):
                await session.push_audio(array_to_pcm(upsample.process(pcm_to_array(message.pcm))))
            elif isinstance(message, proto.Dtmf):
                session.dtmf(message.digit)
            elif isinstance(message, proto.Hangup):
                return "caller hung up", True
            elif isinstance(message, proto.PeerError):
                if message.code is not None and message.code & proto.ASTERISK_ERROR_HANGUP:
                    return "caller hung up", True
                log.warning("audiosocket peer reported error code %s", message.code)
            elif isinstance(message, proto.BadMessage):
                bad_messages += 1
                log.warning("bad audiosocket message: %s", message.reason)
                if message.fatal:
                    return "bad audiosocket stream", False
                if bad_messages >= _MAX_BAD_MESSAGES:
                    log.warning("closing: %d bad audiosocket messages", bad_messages)
                    return "too many bad audiosocket messages", False
        try:
            data = await reader.read(_READ_BYTES)
        except OSError:
            return "socket closed", True
        if not data:
            bad = parser.finish()
            if bad is not None:
                log.warning("bad audiosocket stream: %s", bad.reason)
            return "socket closed", True
        pending = parser.feed(data)
    return "call ended", False


def _host_of(peer: object) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown peer"
