"""Capture RTP on the loopback interface, to see what the service really sent.

A packet socket (AF_PACKET) on `lo` sees every UDP datagram between sipp and
the service, with its arrival time, without taking any port away from them.
It needs root or CAP_NET_RAW (as sipp's `play_pcap_audio` does). Tests use it
to check that the bot's audio arrived; the benchmark, to time replies and
find gaps in the bot's stream.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from callcenter.audio import alaw_decode, mulaw_decode, rms_dbfs

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4  # on lo each datagram shows up twice: keep the incoming copy
_SILENT_DBFS = -50.0
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RtpPacket:
    at_s: float  # time.monotonic() when captured
    src: Address
    dst: Address
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes

    @property
    def voiced(self) -> bool:
        """Audible G.711 audio (PCMU 0 or PCMA 8), not the line's digital silence."""
        if self.payload_type == 0:
            samples = mulaw_decode(self.payload)
        elif self.payload_type == 8:
            samples = alaw_decode(self.payload)
        else:
            return False
        return rms_dbfs(samples) > _SILENT_DBFS


def capture_available() -> bool:
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL)):
            return True
    except (PermissionError, OSError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class SipDatagram:
    at_s: float
    src: Address
    dst: Address
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.text.split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def audio_port(self) -> int | None:
        """The port of the SDP body's audio line, if any."""
        for line in self.text.split("\r\n"):
            if line.startswith("m=audio "):
                return int(line.split()[1])
        return None


class RtpCapture:
    """Records RTP datagrams to or from `ports` (and SIP ones on `sip_ports`) on `lo`.

    Arrival times are the kernel's (SO_TIMESTAMPNS), moved onto the
    time.monotonic() clock, so a busy capture thread does not invent gaps.
    """

    def __init__(self, ports: Iterable[int], sip_ports: Iterable[int] = ()) -> None:
        self._ports = set(ports)
        self._sip_ports = set(sip_ports)
        self.packets: list[RtpPacket] = []
        self.sip: list[SipDatagram] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wall_to_mono = 0.0

    def __enter__(self) -> RtpCapture:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 2**20)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind(("lo", 0))
        sock.settimeout(0.1)
        self._sock = sock
        self._wall_to_mono = time.monotonic() - time.time()
        self._thread = threading.Thread(target=self._run, name="rtp-capture", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        time.sleep(0.1)  # the last datagrams
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._sock is not None:
            self._sock.close()

    def snapshot(self) -> list[RtpPacket]:
        with self._lock:
            return list(self.packets)

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                frame, ancillary, _flags, address = self._sock.recvmsg(65_535, 256)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == _PACKET_OUTGOING:
                continue
            at_s = time.monotonic()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", data[:16])
                    at_s = seconds + nanoseconds / 1e9 + self._wall_to_mono
            udp = _udp(frame)
            if udp is None:
                continue
            src, dst, payload = udp
            if src[1] in self._sip_ports or dst[1] in self._sip_ports:
                text = payload.decode(errors="replace")
                with self._lock:
                    self.sip.append(SipDatagram(at_s, src, dst, text))
            elif src[1] in self._ports or dst[1] in self._ports:
                packet = _rtp(payload, at_s, src, dst)
                if packet is not None:
                    with self._lock:
                        self.packets.append(packet)


def _udp(frame: bytes) -> tuple[Address, Address, bytes] | None:
    """Source, destination and payload of an IPv4 UDP datagram in an Ethernet frame."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    header_len = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    src_port, dst_port, udp_len = struct.unpack("!HHH", ip[header_len : header_len + 6])
    src = (socket.inet_ntoa(ip[12:16]), src_port)
    dst = (socket.inet_ntoa(ip[16:20]), dst_port)
    return src, dst, ip[header_len + 8 : header_len + udp_len]


def _rtp(data: bytes, at_s: float, src: Address, dst: Address) -> RtpPacket | None:
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    payload_type = data[1] & 0x7F
    if 72 <= payload_type <= 76:  # RTCP
        return None
    seq, timestamp, ssrc = struct.unpack("!HII", data[2:12])
    header = 12 + 4 * (data[0] & 0x0F)
    return RtpPacket(at_s, src, dst, payload_type, seq, timestamp, ssrc, data[header:])


# ----- analysis --------------------------------------------------------------
def streams(packets: Iterable[RtpPacket]) -> dict[tuple[Address, Address], list[RtpPacket]]:
    """Packets grouped by (source, destination), in arrival order."""
    grouped: dict[tuple[Address, Address], list[RtpPacket]] = defaultdict(list)
    for packet in packets:
        grouped[(packet.src, packet.dst)].append(packet)
    return dict(grouped)


def arrival_gaps_ms(packets: list[RtpPacket], over_ms: float = 60.0) -> list[float]:
    """Inter-arrival times above `over_ms` (a 20 ms stream should show none)."""
    return [
        (later.at_s - earlier.at_s) * 1000
        for earlier, later in itertools.pairwise(packets)
        if (later.at_s - earlier.at_s) * 1000 > over_ms
    ]


def lost_packets(packets: list[RtpPacket]) -> int:
    """Sequence numbers missing between the first and the last packet."""
    if not packets:
        return 0
    expected = (packets[-1].seq - packets[0].seq) % 65_536 + 1
    return max(0, expected - len({p.seq for p in packets}))


def voiced_seconds(packets: list[RtpPacket]) -> float:
    return sum(1 for p in packets if p.voiced) * 0.020


def last_voiced_at(packets: list[RtpPacket]) -> float | None:
    voiced = [p.at_s for p in packets if p.voiced]
    return voiced[-1] if voiced else None


def first_voiced_after(packets: list[RtpPacket], at_s: float) -> float | None:
    """Arrival time of the first audible packet after `at_s`."""
    for packet in packets:
        if packet.at_s > at_s and packet.voiced:
            return packet.at_s
    return None
