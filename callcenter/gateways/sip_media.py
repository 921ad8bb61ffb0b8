"""pjsua2 objects the SIP thread uses: the media port, the log writer, small helpers.

The media port's frame callbacks run on pjsip's media clock thread every 20 ms:
they only copy bytes in and out of a `CallAudio`.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from callcenter.events import FRAME_BYTES
from callcenter.gateways.sip_audio import CallAudio

log = logging.getLogger(__name__)

_RT_PRIORITY = 10  # SCHED_RR priority for pjsip's media threads, when allowed
_NICE = -10  # otherwise this nice value, when allowed


def vector_reader() -> Callable[[Any], bytes]:
    """A fast way to copy a pjsua2 `ByteVector` out as bytes.

    `bytes(vector)` walks SWIG's iterator (~0.3 ms a frame, on the media clock
    thread). A `std::vector<unsigned char>` starts with its begin and end
    pointers, so ctypes can copy the storage in ~1 µs. Checked on a known
    vector at start-up; the slow way is kept if the layout differs.
    """
    pointer_size = ctypes.sizeof(ctypes.c_void_p)

    def fast(vector: Any) -> bytes:
        address = int(vector.this)
        begin = ctypes.c_void_p.from_address(address).value
        end = ctypes.c_void_p.from_address(address + pointer_size).value
        if not begin or end is None or not 0 < end - begin <= 8 * FRAME_BYTES:
            return b""
        return ctypes.string_at(begin, end - begin)

    probe = bytes(range(256)) * 2 + bytes(range(128))
    try:
        works = fast(pj.ByteVector(probe)) == probe
    except (TypeError, ValueError, AttributeError, OverflowError):
        works = False
    if works:
        return fast
    log.warning("reading pjsua2 frames through SWIG's iterator (~0.3 ms a frame)")
    return lambda vector: bytes(vector)


class MediaPort(pj.AudioMediaPort):  # type: ignore[misc]
    """The bot's end of a call leg in pjsip's conference bridge (16 kHz, 20 ms).

    Ports are never freed while pjsip runs: freeing one while the bridge's clock
    thread is inside its callback crashed the process. A port whose leg ended is
    detached (it then hears nothing and sends silence) and reused for a later
    leg; there are never more ports than calls at once.
    """

    def __init__(self, read: Callable[[Any], bytes]) -> None:
        super().__init__()
        self._audio: CallAudio[object] | None = None
        self._read = read
        self._silence = pj.ByteVector(bytes(FRAME_BYTES))
        self._zeros = bytes(FRAME_BYTES)

    def attach(self, audio: CallAudio[object]) -> None:
        self._audio = audio

    def detach(self) -> None:
        self._audio = None

    def onFrameReceived(self, frame: Any) -> None:
        audio = self._audio
        if audio is None:
            return
        try:
            pcm = self._read(frame.buf) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            # No RTP is silence: the session's clock keeps pace with the line.
            audio.received(pcm if len(pcm) == FRAME_BYTES else self._zeros)
        except Exception:  # an exception must never unwind into pjsip's clock thread
            log.exception("media port: receiving a frame failed")

    def onFrameRequested(self, frame: Any) -> None:
        audio = self._audio
        try:
            vector = None if audio is None else audio.next_frame()
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = self._silence if vector is None else vector
            frame.size = FRAME_BYTES
        except Exception:
            log.exception("media port: sending a frame failed")


class PjLogWriter(pj.LogWriter):  # type: ignore[misc]
    """pjsip's log into ours (it may call from any pjlib thread).

    pjsip's errors and warnings are about what peers send (a malformed
    request, an offer without our codecs): WARNING. Only their first line is
    logged there, because pjsip appends the offending packet, caller number
    included; the rest goes to DEBUG.
    """

    def write(self, entry: Any) -> None:
        try:
            first, _, rest = str(entry.msg).strip().partition("\n")
            if int(entry.level) <= 2:
                log.warning("pjsip: %s", first.strip())
                if rest:
                    log.debug("pjsip (cont.): %s", rest)
            else:
                log.debug("pjsip: %s", str(entry.msg).strip())
        except Exception:  # never raise into pjsip
            pass


def pjsua_max_calls() -> int | None:
    """pjsua's own call limit after libInit (pjsua2 does not expose it)."""
    try:
        from pjsua2 import pjsua2 as swig_module

        library = ctypes.CDLL(swig_module._pjsua2.__file__)
        get_max = library.pjsua_call_get_max_count
    except (ImportError, AttributeError, OSError):
        return None
    get_max.restype = ctypes.c_uint
    get_max.argtypes = []
    return int(get_max())


def add_headers(prm: Any, headers: dict[str, str]) -> None:
    for name, value in headers.items():
        header = pj.SipHeader()
        header.hName = name
        header.hValue = value
        prm.txOption.headers.append(header)


def raise_media_thread_priority(names: frozenset[str], done: set[int]) -> None:
    """Best effort: pjsip's media threads (the bridge's clock, RTP I/O) ahead of
    speech recognition and everything else on the machine, so that a busy CPU
    delays a reply rather than cutting holes in the audio.

    Real-time round-robin if allowed, else a lower nice value; neither needs
    to succeed. `done` keeps the thread ids already handled.
    """
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return
    for task in tasks:
        tid = int(task.name)
        if tid in done:
            continue
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name not in names:
            continue
        done.add(tid)
        try:
            os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(_RT_PRIORITY))
            log.debug("pjsip thread %s (%d): real-time priority", name, tid)
            continue
        except (PermissionError, OSError, AttributeError):
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, tid, _NICE)
            log.debug("pjsip thread %s (%d): nice %d", name, tid, _NICE)
        except (PermissionError, OSError):
            log.debug("pjsip thread %s (%d) keeps its priority", name, tid)
