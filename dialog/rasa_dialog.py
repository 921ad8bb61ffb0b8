"""`RasaDialog`: the `Dialog` interface over a Rasa server's HTTP API.

One turn is two requests on loopback: the caller's words to the REST channel
(`POST /webhooks/rest/webhook`, which runs NLU, the form and its validation
action and returns the bot's messages), then the tracker
(`GET /conversations/{id}/tracker?include_events=NONE`) for the slots, the
requested slot and the intent's confidence.

Red flags are checked here, on the raw words, before Rasa sees them, so they
work whatever the classifier makes of the turn: a hit sets priority 1, records
the flag, asks for a human (`handoff`), and the reply starts with "help is
being sent" and the flag's safety instruction; the form then goes on
gathering details until a dispatcher takes over.

Every request, and every whole turn, has a timeout (`timeout_s`); any HTTP
error, timeout or malformed answer raises `DialogError`, and the call session
then fails toward a human.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import yaml

from callcenter.events import CallInfo, DialogTurn, Language
from dialog.base import DialogError
from dialog.redflags import RedFlag, detect_red_flags, safety_instruction_for_flag

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = Path(__file__).resolve().parent / "rasa" / "domain.yml"
MAX_TEXT_CHARS = 1000

# Slots copied into DialogTurn.slots (as strings) when set.
PUBLIC_SLOTS: tuple[str, ...] = (
    "what_happened",
    "incident_location",
    "location_confirmed",
    "location_status",
    "location_unit_code",
    "location_unit_name",
    "location_old_district",
    "location_landmark",
    "caller_name",
    "callback_number",
    "caller_id",
    "injured",
    "trapped",
    "handoff_reason",
    "lang",
    "line",
)
_RESTORED_SLOTS: tuple[str, ...] = (
    *PUBLIC_SLOTS,
    "category",
    "priority",
    "red_flags",
    "handoff",
    "done",
    "ask_mode",
    "location_readback",
    "location_question",
    "callback_readback",
    "dialog_state",
)


class Responses:
    """The domain's response texts, by response name and language."""

    def __init__(self, domain_path: Path = DEFAULT_DOMAIN) -> None:
        domain = yaml.safe_load(domain_path.read_text(encoding="utf-8"))
        self._texts: dict[str, dict[Language, list[str]]] = {}
        for name, variants in (domain.get("responses") or {}).items():
            by_lang: dict[Language, list[str]] = {Language.VI: [], Language.EN: []}
            for variant in variants:
                text = variant.get("text")
                if not text:
                    continue
                lang = next(
                    (c["value"] for c in variant.get("condition") or [] if c["name"] == "lang"),
                    "vi",  # the unconditioned variant is the Vietnamese default
                )
                by_lang[Language(lang)].append(str(text))
            self._texts[str(name)] = by_lang

    def first(self, name: str, language: Language) -> str:
        return self._texts[name][language][0]

    def fixed(self, language: Language) -> list[str]:
        """Every text with no slot to fill in, once each."""
        seen: dict[str, None] = {}
        for by_lang in self._texts.values():
            for text in by_lang[language]:
                if "{" not in text:
                    seen.setdefault(text, None)
        return list(seen)


@dataclass(slots=True)
class _Call:
    info: CallInfo
    flags: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RasaDialog:
    """The dialog engine: a Rasa server (NLU, forms) and its action server."""

    name = "rasa"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.5,
        token: str | None = None,
        domain_path: Path = DEFAULT_DOMAIN,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._params = {"token": token} if token else {}
        self._client = client or httpx.AsyncClient(
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_keepalive_connections=32, max_connections=64),
        )
        self._own_client = client is None
        self._responses = Responses(domain_path)
        self._calls: dict[str, _Call] = {}

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def fixed_prompts(self, language: Language) -> list[str]:
        return self._responses.fixed(language)

    # --- the Dialog protocol ------------------------------------------------

    async def start(self, call: CallInfo) -> DialogTurn:
        previous = self._calls.get(call.call_id)
        state = _Call(info=call)
        self._calls[call.call_id] = state
        async with state.lock, self._deadline("start"):
            if previous is not None:
                await self._post_events(call.call_id, [{"event": "restart"}])
            body = await self._trigger(call.call_id, "start_call", _start_entities(call))
            return self._turn(state, body["tracker"], _texts(body.get("messages")))

    async def respond(self, call_id: str, text: str) -> DialogTurn:
        state = self._calls.get(call_id)
        if state is None:
            raise DialogError(f"unknown conversation {call_id!r}")
        said = _sanitise(text)
        async with state.lock, self._deadline("respond"):
            prefix = await self._red_flags(state, said)
            if not said:
                body = await self._trigger(call_id, "silence", {})
                return self._turn(state, body["tracker"], [*prefix, *_texts(body.get("messages"))])
            messages = await self._send(call_id, said)
            tracker = await self._tracker(call_id)
            if tracker.get("slots", {}).get("lang") is None and state.slots:
                log.warning("Rasa lost the conversation (restarted?); restoring it")
                await self._restore(state)
                messages = await self._send(call_id, said)
                tracker = await self._tracker(call_id)
            return self._turn(state, tracker, [*prefix, *messages])

    async def end(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    # --- red flags ------------------------------------------------------------

    async def _red_flags(self, state: _Call, said: str) -> list[str]:
        language = state.info.language
        hits = detect_red_flags(said, language) if said else []
        new: list[RedFlag] = []
        for hit in hits:
            if hit.flag.value not in state.flags and hit.flag not in new:
                new.append(hit.flag)
        if not new:
            return []
        state.flags.extend(flag.value for flag in new)
        reason = state.slots.get("handoff_reason") or f"red flag: {', '.join(f.value for f in new)}"
        await self._post_events(
            state.info.call_id,
            [
                _slot("red_flags", list(state.flags)),
                _slot("priority", 1),
                _slot("handoff", True),
                _slot("handoff_reason", reason),
            ],
        )
        log.info("red flags %s: priority 1, dispatcher asked to take the call",
                 [f.value for f in new])
        texts = [self._responses.first("utter_help_sent", language)]
        for flag in new:
            instruction = safety_instruction_for_flag(flag, language)
            if instruction and instruction not in texts:
                texts.append(instruction)
        return texts

    async def _restore(self, state: _Call) -> None:
        slots = state.slots
        events: list[dict[str, Any]] = [{"event": "restart"}]
        events += [_slot(k, slots[k]) for k in _RESTORED_SLOTS if slots.get(k) is not None]
        requested = slots.get("requested_slot")
        if requested and not slots.get("done"):
            events += [{"event": "active_loop", "name": "incident_form"},
                       _slot("requested_slot", requested)]
        events.append({"event": "action", "name": "action_listen"})
        await self._post_events(state.info.call_id, events)

    # --- HTTP -------------------------------------------------------------------

    def _deadline(self, what: str) -> _Deadline:
        return _Deadline(what, self._timeout_s)

    async def _request(self, method: str, path: str, json: Any = None) -> Any:
        # include_events=NONE: the tracker without its event history (small, fast)
        params = {**self._params, "include_events": "NONE"} if path.startswith("/conv") else {}
        try:
            response = await self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise DialogError(f"Rasa did not answer {method} {path} in time") from exc
        except httpx.HTTPError as exc:
            raise DialogError(f"Rasa request {method} {path} failed: {exc!r}") from exc
        if response.status_code >= 400:
            raise DialogError(
                f"Rasa answered {response.status_code} to {method} {path}: {response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise DialogError(f"Rasa sent malformed JSON for {method} {path}") from exc

    async def _trigger(self, call_id: str, intent: str, entities: Mapping[str, str]) -> Any:
        body = await self._request(
            "POST",
            f"/conversations/{quote(call_id, safe='')}/trigger_intent",
            {"name": intent, "entities": dict(entities)},
        )
        if not isinstance(body, dict) or not isinstance(body.get("tracker"), dict):
            raise DialogError("Rasa's trigger_intent answer has no tracker")
        return body

    async def _send(self, call_id: str, text: str) -> list[str]:
        body = await self._request(
            "POST", "/webhooks/rest/webhook", {"sender": call_id, "message": text}
        )
        return _texts(body)

    async def _tracker(self, call_id: str) -> dict[str, Any]:
        body = await self._request(
            "GET", f"/conversations/{quote(call_id, safe='')}/tracker"
        )
        if not isinstance(body, dict) or not isinstance(body.get("slots"), dict):
            raise DialogError("Rasa's tracker has no slots")
        return cast(dict[str, Any], body)

    async def _post_events(self, call_id: str, events: list[dict[str, Any]]) -> None:
        await self._request(
            "POST",
            f"/conversations/{quote(call_id, safe='')}/tracker/events",
            events,
        )

    # --- tracker to DialogTurn ----------------------------------------------------

    def _turn(self, state: _Call, tracker: dict[str, Any], texts: list[str]) -> DialogTurn:
        slots: dict[str, Any] = dict(tracker.get("slots") or {})
        state.slots = slots
        flags = [str(f) for f in slots.get("red_flags") or []]
        for flag in flags:
            if flag not in state.flags:
                state.flags.append(flag)
        active = (tracker.get("active_loop") or {}).get("name")
        # Inside a form Rasa's latest_message is stale; the actions keep the turn's NLU.
        nlu = slots.get("dialog_state") or {}
        confidence = nlu.get("confidence") if isinstance(nlu, dict) else None
        if confidence is None:
            confidence = ((tracker.get("latest_message") or {}).get("intent") or {}).get(
                "confidence"
            )
        priority = slots.get("priority")
        return DialogTurn(
            reply=" ".join(t.strip() for t in texts if t and t.strip()),
            category=slots.get("category"),
            priority=int(priority) if priority is not None else None,
            slots={k: _as_text(slots[k]) for k in PUBLIC_SLOTS if slots.get(k) is not None},
            requested_slot=slots.get("requested_slot") if active else None,
            red_flags=tuple(flags),
            handoff=bool(slots.get("handoff")),
            done=bool(slots.get("done")),
            intent_confidence=float(confidence) if confidence is not None else None,
        )


class _Deadline:
    """An overall limit for one dialog call, whatever its requests did."""

    def __init__(self, what: str, seconds: float) -> None:
        self._what = what
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._timeout.__aexit__(*exc)
        except TimeoutError as err:
            raise DialogError(f"Rasa {self._what} took too long") from err


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _sanitise(text: str) -> str:
    """The caller's words as plain text for Rasa.

    A leading "/" would make Rasa read the text as an intent name with
    entities ("/report_fire{...}"), so it is removed; so are control characters.
    Text without a single word counts as silence.
    """
    text = _CONTROL.sub(" ", text)[:MAX_TEXT_CHARS].strip()
    text = text.lstrip("/").strip()
    # no word at all ("...", "?", noise the recogniser wrote down): a silent turn
    return text if re.search(r"[^\W_]", text) else ""


def _start_entities(call: CallInfo) -> dict[str, str]:
    entities = {"lang": call.language.value, "line": call.line.value}
    if call.caller_number:
        entities["caller_id"] = call.caller_number
    return entities


def _slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


def _texts(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        raise DialogError("Rasa's messages are not a list")
    return [str(m["text"]) for m in messages if isinstance(m, dict) and m.get("text")]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
