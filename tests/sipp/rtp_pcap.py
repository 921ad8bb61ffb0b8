"""Recorded caller speech as an RTP packet capture that sipp's `play_pcap_audio` replays.

espeak-ng speaks an English sentence into a WAV, sox turns it into 8 kHz
G.711 (A-law or µ-law), and `write_rtp_pcap` cuts it into 20 ms RTP packets
inside UDP, IPv4 and Ethernet headers, in the classic libpcap file format.
sipp rewrites the addresses and ports when it replays the file, and keeps
the packets' timing.

    python -m tests.sipp.rtp_pcap "There is a fire in my kitchen" caller.pcap --codec pcma
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PAYLOAD_TYPES = {"pcmu": 0, "pcma": 8}
SILENCE_BYTE = {"pcmu": 0xFF, "pcma": 0xD5}
SAMPLE_RATE_HZ = 8000
PACKET_MS = 20
PACKET_BYTES = SAMPLE_RATE_HZ * PACKET_MS // 1000  # 160 samples, one byte each

_PCAP_MAGIC = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1
_TIMEOUT_S = 30.0


def speech_g711(text: str, codec: str = "pcma", *, voice: str = "en", rate_wpm: int = 150) -> bytes:
    """`text` spoken by espeak-ng, as raw 8 kHz G.711 bytes (sox does the encoding)."""
    encoding = {"pcma": "a-law", "pcmu": "mu-law"}[codec]
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RuntimeError("espeak-ng and sox are needed (apt-get install espeak-ng sox)")
    with tempfile.TemporaryDirectory(prefix="callbot-rtp-") as tmp:
        wav = Path(tmp) / "speech.wav"
        raw = Path(tmp) / "speech.raw"
        subprocess.run(
            [espeak, "-v", voice, "-s", str(rate_wpm), "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=_TIMEOUT_S,
        )
        subprocess.run(
            [
                sox,
                str(wav),
                "-r",
                str(SAMPLE_RATE_HZ),
                "-c",
                "1",
                "-e",
                encoding,
                "-t",
                "raw",
                str(raw),
            ],
            check=True,
            capture_output=True,
            timeout=_TIMEOUT_S,
        )
        return raw.read_bytes()


def rtp_packet(
    payload: bytes, payload_type: int, seq: int, timestamp: int, ssrc: int, *, marker: bool = False
) -> bytes:
    """An RTP header (RFC 3550, version 2, no CSRC) and its payload."""
    first = 0x80
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return (
        struct.pack("!BBHII", first, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload
    )


def udp_ipv4_ethernet(
    payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int
) -> bytes:
    """`payload` in UDP (no checksum), IPv4 (with checksum) and Ethernet II headers."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    src_ip = bytes(int(part) for part in src[0].split("."))
    dst_ip = bytes(int(part) for part in dst[0].split("."))
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0, src_ip, dst_ip
    )
    ip = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:] + udp
    ethernet = bytes(6) + bytes(6) + struct.pack("!H", 0x0800)
    return ethernet + ip


def rtp_packets(
    g711: bytes,
    codec: str,
    *,
    lead_silence_ms: int = 0,
    trail_silence_ms: int = 500,
    ssrc: int = 0x0C0FFEE,
) -> Iterator[bytes]:
    """RTP packets of 20 ms, with digital silence before and after the speech."""
    silence = bytes([SILENCE_BYTE[codec]])
    audio = silence * (lead_silence_ms * 8) + g711 + silence * (trail_silence_ms * 8)
    audio += silence * (-len(audio) % PACKET_BYTES)
    for index in range(len(audio) // PACKET_BYTES):
        chunk = audio[index * PACKET_BYTES : (index + 1) * PACKET_BYTES]
        yield rtp_packet(
            chunk, PAYLOAD_TYPES[codec], index, index * PACKET_BYTES, ssrc, marker=index == 0
        )


def write_rtp_pcap(
    path: Path,
    packets: Iterator[bytes] | list[bytes],
    *,
    src: tuple[str, int] = ("127.0.0.1", 6000),
    dst: tuple[str, int] = ("127.0.0.1", 6002),
) -> int:
    """Write RTP packets 20 ms apart into a pcap file; returns how many."""
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
        for index, rtp in enumerate(packets):
            frame = udp_ipv4_ethernet(rtp, src, dst, index)
            at_us = index * PACKET_MS * 1000
            out.write(
                struct.pack("<IIII", at_us // 1_000_000, at_us % 1_000_000, len(frame), len(frame))
            )
            out.write(frame)
            count += 1
    return count


def make_speech_pcap(
    path: Path,
    text: str,
    codec: str = "pcma",
    *,
    lead_silence_ms: int = 0,
    trail_silence_ms: int = 500,
) -> float:
    """A pcap of `text` spoken; returns the end of the speech in seconds from the first packet."""
    g711 = speech_g711(text, codec)
    write_rtp_pcap(
        path,
        rtp_packets(
            g711, codec, lead_silence_ms=lead_silence_ms, trail_silence_ms=trail_silence_ms
        ),
    )
    return (lead_silence_ms + len(g711) / 8) / 1000


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text")
    parser.add_argument("pcap", type=Path)
    parser.add_argument("--codec", choices=sorted(PAYLOAD_TYPES), default="pcma")
    args = parser.parse_args()
    speech_s = make_speech_pcap(args.pcap, args.text, args.codec)
    print(f"{args.pcap}: {speech_s:.2f} s of speech")


if __name__ == "__main__":
    main()
