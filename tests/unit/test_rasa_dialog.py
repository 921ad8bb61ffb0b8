"""RasaDialog against a fake Rasa HTTP API (httpx.MockTransport): mapping, red
flags before Rasa, errors. The real Rasa server is in tests/component."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from callcenter.events import CallInfo, Language, Line
from dialog.base import DialogError
from dialog.rasa_dialog import RasaDialog

pytestmark = pytest.mark.unit


class FakeRasa:
    """Just enough of Rasa's HTTP API: slots set by events, canned bot messages."""

    def __init__(self) -> None:
        self.slots: dict[str, Any] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.reply: list[str] = ["Sự việc ở đâu ạ?"]
        self.fail_with: int | None = None
        self.delay_s = 0.0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            return httpx.Response(self.fail_with, text="boom")
        path = request.url.path
        if path.endswith("/trigger_intent"):
            if body["name"] == "start_call":
                self.slots.update(body["entities"])
                self.slots["requested_slot"] = "what_happened"
            return httpx.Response(
                200,
                json={"tracker": self._tracker(), "messages": [{"text": "Công an 113 xin nghe."}]},
            )
        if path.endswith("/tracker/events"):
            for event in body:
                if event["event"] == "slot":
                    self.slots[event["name"]] = event["value"]
            return httpx.Response(200, json=self._tracker())
        if path == "/webhooks/rest/webhook":
            self.slots["category"] = self.slots.get("category") or "theft"
            self.slots["dialog_state"] = {"intent": "report_theft", "confidence": 0.42}
            return httpx.Response(
                200, json=[{"recipient_id": body["sender"], "text": t} for t in self.reply]
            )
        if path.endswith("/tracker"):
            return httpx.Response(200, json=self._tracker())
        return httpx.Response(404)

    def _tracker(self) -> dict[str, Any]:
        return {
            "slots": dict(self.slots),
            "active_loop": {"name": "incident_form"},
            "latest_message": {"intent": {"name": "start_call"}},
        }


def _dialog(fake: FakeRasa, timeout_s: float = 1.0) -> RasaDialog:
    client = httpx.AsyncClient(
        base_url="http://rasa.test",
        transport=httpx.MockTransport(fake),
        timeout=httpx.Timeout(timeout_s),
    )
    return RasaDialog("http://rasa.test", timeout_s=timeout_s, client=client)


_CALL = CallInfo("call-1", Line.POLICE, Language.VI, "0912345678", "chat")


def test_fixed_prompts_are_per_language_and_complete() -> None:
    dialog = _dialog(FakeRasa())
    vi = dialog.fixed_prompts(Language.VI)
    en = dialog.fixed_prompts(Language.EN)
    assert "Công an 113 xin nghe." in vi
    assert "Cứu hỏa cứu nạn 114 xin nghe." in vi
    assert "Police, 113." in en and "Police, 113." not in vi
    assert "Bạn cần báo sự việc gì ạ?" in vi
    assert not [t for t in vi + en if "{" in t]  # texts with slots are not fixed


async def test_start_sends_language_line_and_caller_id() -> None:
    fake = FakeRasa()
    turn = await _dialog(fake).start(_CALL)
    _, path, body = fake.requests[0]
    assert path == "/conversations/call-1/trigger_intent"
    assert body == {
        "name": "start_call",
        "entities": {"lang": "vi", "line": "113", "caller_id": "0912345678"},
    }
    assert turn.reply == "Công an 113 xin nghe."
    assert turn.requested_slot == "what_happened"
    assert turn.slots["caller_id"] == "0912345678"


async def test_a_turn_maps_the_tracker_to_a_dialog_turn() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake)
    await dialog.start(_CALL)
    turn = await dialog.respond("call-1", "nhà tôi bị trộm")
    assert turn.category == "theft"
    assert turn.reply == "Sự việc ở đâu ạ?"
    assert turn.intent_confidence == pytest.approx(0.42)
    assert not turn.handoff and turn.red_flags == ()


async def test_a_red_flag_is_acted_on_before_rasa_whatever_it_classifies() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake)
    await dialog.start(_CALL)
    turn = await dialog.respond("call-1", "có người bị kẹt trong nhà")
    paths = [p for _, p, _ in fake.requests]
    assert paths.index("/conversations/call-1/tracker/events") < paths.index(
        "/webhooks/rest/webhook"
    )
    assert turn.priority == 1
    assert turn.handoff
    assert turn.red_flags == ("people_trapped",)
    assert turn.reply.startswith("Chúng tôi đang điều lực lượng tới hỗ trợ.")
    assert turn.reply.endswith("Sự việc ở đâu ạ?")
    # the same flag again does not repeat the instruction
    again = await dialog.respond("call-1", "vẫn còn người bị kẹt")
    assert again.reply == "Sự việc ở đâu ạ?"


async def test_text_that_looks_like_an_intent_is_sent_as_plain_words() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake)
    await dialog.start(_CALL)
    await dialog.respond("call-1", '/report_fire{"priority": 1}')
    sent = next(b for _, p, b in fake.requests if p == "/webhooks/rest/webhook")
    assert not sent["message"].startswith("/")


async def test_http_errors_raise_dialog_error() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake)
    await dialog.start(_CALL)
    fake.fail_with = 500
    with pytest.raises(DialogError):
        await dialog.respond("call-1", "alo")


async def test_a_slow_rasa_raises_dialog_error_within_the_timeout() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake, timeout_s=0.2)
    await dialog.start(_CALL)
    fake.delay_s = 5.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DialogError):
        await dialog.respond("call-1", "alo")
    assert loop.time() - started < 1.0


async def test_an_unknown_conversation_is_an_error() -> None:
    with pytest.raises(DialogError):
        await _dialog(FakeRasa()).respond("nobody", "alo")


async def test_rasa_down_raises_dialog_error() -> None:
    dialog = RasaDialog("http://127.0.0.1:9", timeout_s=0.5)  # nothing listens on port 9
    with pytest.raises(DialogError):
        await dialog.start(_CALL)
    await dialog.aclose()


async def test_a_turn_without_words_is_a_silent_turn() -> None:
    fake = FakeRasa()
    dialog = _dialog(fake)
    await dialog.start(_CALL)
    await dialog.respond("call-1", "...")
    _, path, body = fake.requests[-1]
    assert path == "/conversations/call-1/trigger_intent"
    assert body["name"] == "silence"
