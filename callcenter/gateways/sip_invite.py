"""What an incoming INVITE asks for: the line, the language, the caller, the codecs.

Pure functions over the raw SIP text, so the rules are unit-tested without a
SIP stack. The caller is never refused for the number they dialled: anything
that is not recognisably 113 or 114 goes to 113 (police), with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callcenter.events import Language, Line

LANG_HEADER = "X-Callbot-Lang"
G711_CODECS = frozenset({"PCMU", "PCMA"})

# RFC 3261 compact header names
_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "c": "content-type"}
# static RTP payload types of RFC 3551 that a peer may offer without an rtpmap
_STATIC_PAYLOADS = {
    0: "PCMU",
    3: "GSM",
    4: "G723",
    8: "PCMA",
    9: "G722",
    18: "G729",
}
_WITHHELD = frozenset({"anonymous", "unknown", "restricted", "private", "unavailable"})
_URI_IN_BRACKETS = re.compile(r"<([^>]*)>")
_LINE_DIGITS = re.compile(r"11[34]")


@dataclass(frozen=True, slots=True)
class InviteRequest:
    """The parts of an INVITE that decide how the call is taken."""

    line: Line
    line_recognised: bool  # False: the dialled number said neither 113 nor 114
    dialled: str  # the user part that chose the line ("" when none)
    language: Language
    caller_number: str | None  # personal data: never log it at INFO
    offered_codecs: frozenset[str] | None  # None: no SDP offer (offer comes in the ACK)

    @property
    def acceptable_media(self) -> bool:
        """We answer only G.711; an INVITE without an offer is answered with ours."""
        return self.offered_codecs is None or bool(self.offered_codecs & G711_CODECS)


def parse_invite(message: str) -> InviteRequest:
    """The INVITE's request line, headers and SDP body, as `InviteRequest`."""
    head, _, body = message.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    request_uri = _request_uri(lines[0]) if lines else ""
    headers = parse_headers(lines[1:])
    to_uri = _header_uri(headers.get("to", ""))
    line, dialled, recognised = select_line(request_uri, to_uri)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    codecs = sdp_audio_codecs(body) if content_type == "application/sdp" and body.strip() else None
    return InviteRequest(
        line=line,
        line_recognised=recognised,
        dialled=dialled,
        language=select_language(request_uri, headers.get(LANG_HEADER.lower())),
        caller_number=caller_number(headers),
        offered_codecs=codecs,
    )


def parse_headers(lines: list[str]) -> dict[str, str]:
    """Header name (lower case, compact forms expanded) to value; the first wins.

    Continuation lines (starting with white space) are folded into the header
    above them, as RFC 3261 allows.
    """
    headers: dict[str, str] = {}
    name = ""
    for raw in lines:
        if raw[:1] in (" ", "\t") and name:
            headers[name] = f"{headers[name]} {raw.strip()}"
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            name = ""
            continue
        name = key.strip().lower()
        name = _COMPACT.get(name, name)
        if name in headers:  # keep the first value of a repeated header
            name = ""
            continue
        headers[name] = value.strip()
    return headers


def caller_number(headers: dict[str, str]) -> str | None:
    """The caller's number: the network-asserted identity (P-Asserted-Identity)
    when the carrier sends one, else the From user; None when withheld."""
    for name in ("p-asserted-identity", "from"):
        for value in _header_values(headers.get(name, "")):  # PAI may list sip: and tel:
            user = uri_user(_header_uri(value))
            if user is not None and user.lower() not in _WITHHELD:
                return user
    return None


def _header_values(header: str) -> list[str]:
    """A header's comma-separated values; commas inside quotes or <...> do not split
    ('"Lan, tel:113" <sip:0912@carrier>' is one value)."""
    values: list[str] = []
    current: list[str] = []
    quoted, escaped, angle = False, False, 0
    for ch in header:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle += 1
        elif ch == ">" and not quoted and angle:
            angle -= 1
        elif ch == "," and not quoted and not angle:
            values.append("".join(current))
            current = []
            continue
        current.append(ch)
    values.append("".join(current))
    return values


def uri_user(uri: str) -> str | None:
    """The user part of a sip:, sips: or tel: URI ("0912345678"), or None."""
    uri = uri.strip()
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in {"sip", "sips", "tel"}:
        return None
    if scheme.lower() == "tel":
        user = rest.split(";")[0]
    else:
        if "@" not in rest:
            return None
        user = rest.rsplit("@", 1)[0].split(";")[0]
    user = user.split(":")[0]  # sip:user:password@host
    return user or None


def uri_params(uri: str) -> dict[str, str]:
    """The URI parameters (";lang=en") after the host part, names in lower case."""
    params: dict[str, str] = {}
    after_host = uri.split("@", 1)[-1].split("?", 1)[0]
    for item in after_host.split(";")[1:]:
        key, _, value = item.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip()
    return params


def select_line(request_uri: str, to_uri: str = "") -> tuple[Line, str, bool]:
    """(line, dialled user part, recognised) from the request URI, then the To URI.

    "113" or "114" anywhere in the user part counts ("sip:114@host",
    "sip:+84114@host"); a proxy that rewrote the request URI to our own contact
    usually keeps the dialled number in To. Anything else is police (113).
    """
    for uri in (request_uri, to_uri):
        user = uri_user(uri) or ""
        found = _LINE_DIGITS.search(user)
        if found is not None:
            return Line(found.group()), user, True
    return Line.POLICE, uri_user(request_uri) or "", False


def select_language(request_uri: str, lang_header: str | None) -> Language:
    """English when the X-Callbot-Lang header or a ";lang=" URI parameter says so."""
    for value in (lang_header, uri_params(request_uri).get("lang")):
        if value is not None and value.strip().lower().startswith("en"):
            return Language.EN
    return Language.VI


def sdp_audio_codecs(sdp: str) -> frozenset[str]:
    """Encoding names (upper case) offered on the SDP's audio m-lines.

    Static payload types count without an rtpmap; "telephone-event" (DTMF)
    is not a codec and is left out. An audio line with port 0 is disabled.
    """
    payloads: list[int] = []
    rtpmap: dict[int, str] = {}
    in_audio = False
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            fields = line[2:].split()
            in_audio = len(fields) >= 4 and fields[0] == "audio" and fields[1] != "0"
            if in_audio:
                payloads.extend(int(pt) for pt in fields[3:] if _payload_type(pt))
        elif in_audio and line.startswith("a=rtpmap:"):
            number, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            if _payload_type(number):
                rtpmap[int(number)] = encoding.split("/")[0].strip().upper()
    names = {rtpmap.get(pt) or _STATIC_PAYLOADS.get(pt, f"PT{pt}") for pt in payloads}
    names.discard("TELEPHONE-EVENT")
    return frozenset(names)


def _payload_type(text: str) -> bool:
    """An RTP payload type: 1-3 ASCII digits (str.isdigit also takes "²" and 5,000-digit
    numbers, which int() refuses)."""
    return 1 <= len(text) <= 3 and text.isascii() and text.isdigit()


def _request_uri(request_line: str) -> str:
    parts = request_line.split()
    return parts[1] if len(parts) == 3 else ""


def _header_uri(value: str) -> str:
    """The URI of a From/To/Contact value, with or without angle brackets."""
    bracketed = _URI_IN_BRACKETS.search(value)
    if bracketed is not None:
        return bracketed.group(1)
    return value.split(";")[0].strip()  # without brackets, parameters are the header's
