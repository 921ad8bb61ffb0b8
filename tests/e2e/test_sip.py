"""Phone calls over SIP: sipp scripts the caller (and the dispatcher), baresip is a real softphone.

The service runs as a child process (tests/e2e/conftest.py). The caller's
speech is espeak-ng English sent as G.711 RTP; a packet capture on the
loopback interface shows what the service sent back.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from callcenter.audio import read_wav, rms_dbfs
from tests.e2e.conftest import RunningService, start_service, stop_service
from tests.sipp.rtp_capture import (
    RtpCapture,
    RtpPacket,
    capture_available,
    first_voiced_after,
    last_voiced_at,
    voiced_seconds,
)
from tests.sipp.rtp_pcap import make_speech_pcap, speech_g711
from tests.sipp.sipp_run import finish_sipp, free_udp_port, run_sipp, start_sipp

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is not installed"),
    pytest.mark.skipif(
        not capture_available(), reason="sipp's pcap replay and the RTP capture need CAP_NET_RAW"
    ),
]

CALLER_WORDS = "There is a fire in my kitchen and the smoke is everywhere"
DISPATCHER_WORDS = "Fire service dispatcher here. Tell me exactly where you are."
KEY_WORDS = ("fire", "kitchen", "smoke")


@dataclass(frozen=True)
class CallRow:
    call_id: str
    channel: str
    line: str
    language: str
    status: str
    end_reason: str | None
    handoff_reason: str | None
    turns: list[tuple[str, str, int | None]]  # speaker, text, start_ms

    def texts(self, speaker: str) -> list[str]:
        return [text for who, text, _ in self.turns if who == speaker]


def _caller_number() -> str:
    return "09" + str(uuid.uuid4().int)[:8]


def _call_record(data_dir: Path, caller: str, *, wait_s: float = 15.0) -> CallRow:
    """The finished call of `caller` in the service's database."""
    deadline = time.monotonic() + wait_s
    while True:
        with sqlite3.connect(f"file:{data_dir / 'callbot.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT id, channel, line, language, status, end_reason, handoff_reason "
                "FROM calls WHERE caller_number = ? AND ended_at IS NOT NULL",
                (caller,),
            ).fetchone()
            if row is not None:
                turns = db.execute(
                    "SELECT speaker, text, start_ms FROM turns WHERE call_id = ? ORDER BY seq",
                    (row[0],),
                ).fetchall()
                return CallRow(*row, turns=[tuple(t) for t in turns])
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished call record for caller {caller}")
        time.sleep(0.25)


def _log_lines(service: RunningService, call_id: str) -> list[str]:
    return [line for line in service.log_path.read_text().splitlines() if call_id in line]


def _sip_request(target: tuple[str, int], text: str, timeout_s: float = 2.0) -> str | None:
    """Send one SIP request over UDP; the status line of the first answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout_s)
        port = sock.getsockname()[1]
        sock.sendto(text.format(port=port).replace("\n", "\r\n").encode(), target)
        try:
            while True:
                data = sock.recv(65_535).decode(errors="replace")
                if not data.startswith("SIP/2.0 1"):  # skip 100 Trying / 180 Ringing
                    return data
        except TimeoutError:
            return None


def _options(target: tuple[str, int]) -> str | None:
    tag = uuid.uuid4().hex[:8]
    answer = _sip_request(
        target,
        f"OPTIONS sip:114@{target[0]}:{target[1]} SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-" + tag + "\n"
        f"From: <sip:probe@127.0.0.1>;tag={tag}\nTo: <sip:114@{target[0]}>\n"
        f"Call-ID: options-{tag}@127.0.0.1\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n"
        "Content-Length: 0\n\n",
    )
    return None if answer is None else answer.split("\r\n")[0]


@pytest.fixture(scope="module")
def caller_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pcap") / "caller.pcap"
    make_speech_pcap(path, CALLER_WORDS, "pcma")
    return path


@pytest.fixture(scope="module")
def dispatcher_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pcap") / "dispatcher.pcap"
    make_speech_pcap(path, DISPATCHER_WORDS, "pcma")
    return path


# ----- calls to the shared service ----------------------------------------
def test_caller_hears_the_greeting_is_heard_and_the_call_is_recorded(
    service: RunningService, caller_pcap: Path, tmp_path: Path
) -> None:
    target = service.gateway_address("sip")
    caller = _caller_number()
    media_port = free_udp_port(even=True)
    with RtpCapture([media_port]) as capture:
        result = run_sipp(
            "uac_speech.xml",
            target,
            tmp_path,
            service="114",
            media_port=media_port,
            variables={"caller": caller, "greeting_ms": "6000", "reply_ms": "10000"},
            files={"caller.pcap": caller_pcap},
            timeout_s=30,
        )
    assert result.returncode == 0, result.describe()

    from_bot = [p for p in capture.packets if p.dst[1] == media_port]
    from_caller = [p for p in capture.packets if p.src[1] == media_port]
    # RTP every 20 ms for the whole call (~16 s), G.711 A-law as the caller preferred.
    assert len(from_bot) > 500, f"{len(from_bot)} RTP packets from the service"
    assert {p.payload_type for p in from_bot} == {8}
    speech_end = last_voiced_at(from_caller)
    assert speech_end is not None, "sipp sent no speech"
    greeting = [p for p in from_bot if p.at_s < from_caller[0].at_s]
    assert voiced_seconds(greeting) > 1.0, "no greeting was heard"

    record = _call_record(service.data_dir, caller)
    assert (record.channel, record.line, record.language) == ("sip", "114", "en")
    assert record.end_reason == "caller hung up"
    bot_turns = [t for t in record.turns if t[0] == "bot"]
    assert bot_turns and (bot_turns[0][2] or 0) < 1000, "the greeting is the first bot turn"
    said = " ".join(record.texts("caller")).lower()
    assert any(word in said for word in KEY_WORDS), f"caller turn not recognised: {said!r}"
    # The bot answered the caller: speech from the service after the caller's.
    assert len(bot_turns) >= 2
    assert first_voiced_after(from_bot, speech_end) is not None, "no spoken reply"


def test_an_offer_without_g711_is_refused_with_488(service: RunningService, tmp_path: Path) -> None:
    result = run_sipp("uac_refused_codec.xml", service.gateway_address("sip"), tmp_path)
    assert result.returncode == 0, result.describe()


def test_cancel_before_answer_gets_487_and_the_call_is_kept(
    service: RunningService, tmp_path: Path
) -> None:
    caller = _caller_number()
    result = run_sipp(
        "uac_cancel.xml",
        service.gateway_address("sip"),
        tmp_path,
        service="113",
        variables={"caller": caller},
    )
    assert result.returncode == 0, result.describe()
    record = _call_record(service.data_dir, caller)
    assert (record.line, record.language) == ("113", "vi")  # Vietnamese unless asked
    assert record.end_reason == "caller hung up before answer"
    assert not [line for line in _log_lines(service, record.call_id) if " ERROR " in line]


def test_caller_hanging_up_during_the_greeting_leaves_clean_logs(
    service: RunningService, tmp_path: Path
) -> None:
    caller = _caller_number()
    result = run_sipp(
        "uac_short_call.xml",
        service.gateway_address("sip"),
        tmp_path,
        service="sip-999",  # neither 113 nor 114: taken on 113 all the same
        variables={"caller": caller, "hold_ms": "300"},
    )
    assert result.returncode == 0, result.describe()
    assert "answered" in result.logs
    record = _call_record(service.data_dir, caller)
    assert record.line == "113"
    assert record.end_reason == "caller hung up"
    lines = _log_lines(service, record.call_id)
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line], lines
    assert any("neither 113 nor 114" in line for line in lines)


def test_malformed_requests_do_not_break_the_gateway(service: RunningService) -> None:
    target = service.gateway_address("sip")
    tag = uuid.uuid4().hex[:8]
    invite = (
        f"INVITE sip:114@{target[0]}:{target[1]} SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-" + tag + "\n"
        f"From: <sip:0911111111@127.0.0.1>;tag={tag}\nTo: <sip:114@{target[0]}>\n"
        f"Call-ID: bad-{tag}@127.0.0.1\nCSeq: 1 INVITE\nMax-Forwards: 70\n"
        "Content-Length: 0\n\n"
    )
    # A body shorter than Content-Length: pjsip answers 400 itself.
    answer = _sip_request(target, invite.replace("Content-Length: 0", "Content-Length: 999"))
    assert answer is not None and answer.startswith("SIP/2.0 400"), answer
    # Unparseable headers, a missing Call-ID, binary noise: dropped without an answer.
    _sip_request(target, invite.replace("CSeq: 1 INVITE", "CSeq: one INVITE"), timeout_s=0.3)
    _sip_request(target, invite.replace(f"Call-ID: bad-{tag}@127.0.0.1\n", ""), timeout_s=0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for size in (1, 100, 1400, 9000):
            sock.sendto(random.randbytes(size), target)
    assert _options(target) == "SIP/2.0 200 OK"
    assert httpx.get(f"{service.base_url}/health", timeout=5).status_code == 200


def test_rtp_from_a_stranger_does_not_disturb_the_call(
    service: RunningService, caller_pcap: Path, tmp_path: Path
) -> None:
    """Noise and forged RTP sent to the call's media port from another address while
    the caller speaks: the call goes on, and the bot's audio still goes to the caller.

    (pjmedia follows a new RTP source only after 10 packets in a row from it with
    none from the caller, or at once while the caller has sent nothing.)
    """
    target = service.gateway_address("sip")
    caller = _caller_number()
    media_port = free_udp_port(even=True)
    with (
        RtpCapture([media_port]) as capture,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        stranger.bind(("127.0.0.1", 0))
        running = pool.submit(
            run_sipp,
            "uac_speech.xml",
            target,
            tmp_path,
            media_port=media_port,
            variables={"caller": caller, "greeting_ms": "300", "reply_ms": "6000"},
            files={"caller.pcap": caller_pcap},
        )
        service_rtp = _wait_for_rtp(capture, media_port, timeout_s=10)
        assert service_rtp is not None, "the service sent no RTP"
        assert _wait_for_rtp(capture, media_port, timeout_s=5, sent=True), "sipp sent no RTP"
        for seq in range(150):
            forged = bytes([0x80, 0x08]) + seq.to_bytes(2, "big") + os.urandom(8 + 160)
            stranger.sendto(forged, service_rtp)
            stranger.sendto(random.randbytes(random.randint(1, 1400)), service_rtp)
            stranger.sendto(os.urandom(40), (service_rtp[0], service_rtp[1] + 1))  # RTCP
            time.sleep(0.01)
        stranger_done = time.monotonic()
        result = running.result(timeout=40)
        stranger.setblocking(False)
        leaked: list[bytes] = []
        with contextlib.suppress(BlockingIOError):
            while True:
                leaked.append(stranger.recv(2048))
    # pjmedia does send its RTCP reports to whoever sent RTCP last (sipp sends
    # none), but never the audio.
    audio = [d for d in leaked if len(d) > 12 and not 72 <= d[1] & 0x7F <= 76]
    assert not audio, f"{len(audio)} RTP packets of the bot's audio went to the stranger"
    assert result.returncode == 0, result.describe()
    after = [p for p in capture.packets if p.dst[1] == media_port and p.at_s > stranger_done]
    assert len(after) > 100, "the bot's audio stopped reaching the caller"
    record = _call_record(service.data_dir, caller)
    assert record.end_reason == "caller hung up"
    assert _options(target) == "SIP/2.0 200 OK"


def _wait_for_rtp(
    capture: RtpCapture, media_port: int, timeout_s: float, *, sent: bool = False
) -> tuple[str, int] | None:
    """The service's RTP address, once its first packet to sipp's `media_port`
    arrives (or, with `sent`, once sipp's first packet to it does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for packet in capture.snapshot():
            if sent and packet.src[1] == media_port:
                return packet.dst
            if not sent and packet.dst[1] == media_port:
                return packet.src
        time.sleep(0.05)
    return None


# ----- baresip, a real softphone --------------------------------------------
@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed")
def test_baresip_call_has_audio_both_ways(service: RunningService, tmp_path: Path) -> None:
    host, port = service.gateway_address("sip")
    caller = _caller_number()
    config_dir = tmp_path / "baresip"
    recordings = tmp_path / "recordings"
    config_dir.mkdir()
    recordings.mkdir()
    microphone = tmp_path / "caller.wav"
    _caller_wav(microphone, lead_s=4.0, trail_s=4.0)
    sip_port = free_udp_port()
    (config_dir / "config").write_text(
        "\n".join(
            [
                "poll_method poll",
                f"sip_listen 127.0.0.1:{sip_port}",
                # aufile is a source only in baresip 1.0; the speaker goes to a bridge
                # nobody reads, and sndfile writes what was heard to a WAV file.
                f"audio_source aufile,{microphone}",
                "audio_player aubridge,speaker",
                "audio_alert aubridge,speaker",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_app account.so",
                "module_app menu.so",
                f"snd_path {recordings}",
                "",
            ]
        )
    )
    (config_dir / "accounts").write_text(f"<sip:{caller}@127.0.0.1>;regint=0\n")
    # The call ends when the microphone file does (aufile's end of file hangs up).
    process = subprocess.Popen(
        [
            "baresip",
            "-f",
            str(config_dir),
            "-e",
            f"/dial sip:114@{host}:{port};lang=en",
            "-t",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    output = _until_line(process, "terminated", timeout_s=35)
    assert "Call established" in output, output[-3000:]
    assert "terminated" in output, output[-3000:]

    heard_files = sorted(recordings.glob("*-dec.wav"))
    assert heard_files, f"baresip recorded nothing: {list(recordings.iterdir())}"
    heard, rate = read_wav(heard_files[0])
    frame = rate // 50
    levels = [rms_dbfs(heard[i : i + frame]) for i in range(0, heard.size - frame + 1, frame)]
    loudest_s = max(
        rms_dbfs(heard[i : i + rate]) for i in range(0, max(1, heard.size - rate), frame)
    )
    assert loudest_s > -35, f"the bot's side is silent (loudest second {loudest_s:.1f} dBFS)"
    assert sum(level > -50 for level in levels) * 0.020 >= 1.0

    record = _call_record(service.data_dir, caller)
    assert (record.channel, record.line, record.language) == ("sip", "114", "en")
    said = " ".join(record.texts("caller")).lower()
    assert any(word in said for word in KEY_WORDS), f"caller turn not recognised: {said!r}"


def _caller_wav(path: Path, *, lead_s: float, trail_s: float) -> None:
    """The caller's words as an 8 kHz 16-bit WAV with silence around them (sox)."""
    from callcenter.audio import alaw_decode, write_wav

    samples = alaw_decode(speech_g711(CALLER_WORDS, "pcma"))
    pad = np.zeros(int(8000 * lead_s), dtype=np.int16)
    tail = np.zeros(int(8000 * trail_s), dtype=np.int16)
    write_wav(path, np.concatenate([pad, samples, tail]).astype("<i2").tobytes(), 8000)


def _until_line(process: subprocess.Popen[str], marker: str, *, timeout_s: float) -> str:
    """Read a child's output until `marker` appears (or time runs out), then stop it."""
    assert process.stdout is not None
    seen: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                seen.append(line)
                if marker in line:
                    return

        reading = pool.submit(read)
        try:
            reading.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            pass
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return "".join(seen)


# ----- a service with special settings ----------------------------------------
@pytest.fixture(scope="module")
def not_ready_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """Speech recognition cannot load: the service never becomes ready for calls."""
    base = tmp_path_factory.mktemp("not-ready")
    running = start_service(
        base,
        expect="degraded",
        CALLBOT_WHISPER_MODEL_DIR=str(base / "no-model"),
        CALLBOT_RASA_VENV=str(base / "no-rasa"),
    )
    try:
        yield running
    finally:
        stop_service(running)


def test_invite_while_not_ready_gets_503_with_retry_after(
    not_ready_service: RunningService, tmp_path: Path
) -> None:
    result = run_sipp(
        "uac_short_call.xml",
        not_ready_service.gateway_address("sip"),
        tmp_path,
        variables={"caller": _caller_number(), "hold_ms": "100"},
    )
    assert result.returncode == 0, result.describe()
    assert "refused" in result.logs and "Retry-After: 10" in result.logs, result.logs


@dataclass(frozen=True)
class DispatcherSetup:
    service: RunningService
    dispatcher_port: int


@pytest.fixture(scope="module")
def dispatcher_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherSetup]:
    """The dialog is down, so every call asks for a human at once; two lines only;
    hand-offs go to sip:dispatcher@127.0.0.1:PORT (a sipp the tests start)."""
    base = tmp_path_factory.mktemp("dispatcher")
    dispatcher_port = free_udp_port()
    running = start_service(
        base,
        expect="degraded",
        CALLBOT_RASA_VENV=str(base / "no-rasa"),
        CALLBOT_SIP_MAX_CALLS="2",
        CALLBOT_SIP_DISPATCHER_URI=f"sip:dispatcher@127.0.0.1:{dispatcher_port}",
        CALLBOT_SIP_TRANSFER_TIMEOUT_S="3",
    )
    try:
        yield DispatcherSetup(running, dispatcher_port)
    finally:
        stop_service(running)


def test_handoff_bridges_the_caller_to_a_dispatcher(
    dispatcher_setup: DispatcherSetup, caller_pcap: Path, dispatcher_pcap: Path, tmp_path: Path
) -> None:
    service = dispatcher_setup.service
    caller = _caller_number()
    caller_media = free_udp_port(even=True)
    dispatcher_media = free_udp_port(even=True)
    dispatcher = start_sipp(
        "uas_dispatcher.xml",
        tmp_path / "dispatcher",
        sip_port=dispatcher_setup.dispatcher_port,
        media_port=dispatcher_media,
        files={"dispatcher.pcap": dispatcher_pcap},
        timeout_s=40,
    )
    try:
        time.sleep(0.5)  # sipp binds its port
        with RtpCapture([caller_media, dispatcher_media]) as capture:
            result = run_sipp(
                "uac_speech.xml",
                service.gateway_address("sip"),
                tmp_path / "caller",
                media_port=caller_media,
                variables={"caller": caller, "greeting_ms": "3000", "reply_ms": "7000"},
                files={"caller.pcap": caller_pcap},
                timeout_s=30,
                trace_messages=True,
            )
    finally:
        answered = finish_sipp(dispatcher, tmp_path / "dispatcher", timeout_s=15)
    assert result.returncode == 0, result.describe()
    assert answered.returncode == 0, answered.describe()
    assert "X-Callbot-Call-Id:" in answered.messages and "X-Callbot-Line: 114" in answered.messages

    packets = capture.packets
    dispatcher_said = [p for p in packets if p.src[1] == dispatcher_media]
    first_words = next((p.at_s for p in dispatcher_said if p.voiced), None)
    assert first_words is not None, "the dispatcher's sipp sent no speech"
    to_caller = [p for p in packets if p.dst[1] == caller_media and p.at_s > first_words]
    to_dispatcher = [p for p in packets if p.dst[1] == dispatcher_media]
    assert voiced_seconds(to_caller) > 1.0, "the caller did not hear the dispatcher"
    assert voiced_seconds(to_dispatcher) > 1.0, "the dispatcher did not hear the caller"

    record = _call_record(service.data_dir, caller)
    assert record.status == "handed_off"
    assert (record.handoff_reason or "").startswith("taken over by dispatcher sip:dispatcher@")


def test_unanswered_dispatcher_leaves_the_caller_with_the_bot(
    dispatcher_setup: DispatcherSetup, tmp_path: Path
) -> None:
    service = dispatcher_setup.service
    caller = _caller_number()
    caller_media = free_udp_port(even=True)
    ringing = start_sipp(
        "uas_ringing.xml",
        tmp_path / "dispatcher",
        sip_port=dispatcher_setup.dispatcher_port,
        timeout_s=30,
    )
    try:
        time.sleep(0.5)
        with RtpCapture([caller_media]) as capture:
            started = time.monotonic()
            result = run_sipp(
                "uac_short_call.xml",
                service.gateway_address("sip"),
                tmp_path / "caller",
                media_port=caller_media,
                variables={"caller": caller, "hold_ms": "9000"},
                timeout_s=25,
            )
    finally:
        rang = finish_sipp(ringing, tmp_path / "dispatcher", timeout_s=15)
    assert result.returncode == 0, result.describe()
    assert rang.returncode == 0, rang.describe()  # rang, then was cancelled
    record = _call_record(service.data_dir, caller)
    assert record.status == "handed_off"
    assert not (record.handoff_reason or "").startswith("taken over")
    lines = _log_lines(service, record.call_id)
    assert any("did not answer within 3 s" in line for line in lines), lines
    # After the transfer gave up, the caller still hears the bot (the hold prompt).
    later: list[RtpPacket] = [
        p for p in capture.packets if p.dst[1] == caller_media and p.at_s > started + 3.5
    ]
    assert voiced_seconds(later) > 0.5, "silence after the transfer failed"


# Last on this service: its dispatcher legs ring an unanswering port for 32 s
# (INVITE retransmissions until Timer B) and must not reach the tests above.
def test_calls_past_the_limit_get_486(dispatcher_setup: DispatcherSetup, tmp_path: Path) -> None:
    service = dispatcher_setup.service
    result = run_sipp(
        "uac_short_call.xml",
        service.gateway_address("sip"),
        tmp_path,
        calls=4,
        concurrent=4,
        rate_per_s=20,
        variables={"caller": _caller_number(), "hold_ms": "3000"},
        timeout_s=25,
    )
    assert result.returncode == 0, result.describe()
    assert result.logs.count("answered") == 2, result.logs
    assert result.logs.count("refused") == 2, result.logs
    assert _options(service.gateway_address("sip")) == "SIP/2.0 200 OK"
