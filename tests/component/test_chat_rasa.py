"""The chat API over the real Rasa dialog: a resident's first message in each
category is triaged, and the answers they give fill the incident."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from callcenter.chat import ChatService
from callcenter.settings import Settings
from callcenter.web.chat_api import chat_router
from dialog.categories import CATEGORIES
from dialog.rasa_dialog import RasaDialog
from dispatch.store import SqlCallStore

pytestmark = [
    pytest.mark.component,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
]

# One first message per category, as a resident might type it; none is taken
# from the training data.
FIRST_MESSAGES: list[tuple[str, str, str, str]] = [
    ("113", "vi", "theft", "tôi vừa bị lấy trộm cái xe máy để trước cửa hàng"),
    ("113", "vi", "robbery", "có 2 thằng đi xe máy giật túi xách của tôi rồi phóng đi"),
    ("113", "vi", "assault", "có người đánh bố tôi chảy máu đầu ở ngoài ngõ"),
    ("113", "en", "weapon_threat", "a man is waving a gun at people outside the shop"),
    ("113", "vi", "domestic_violence", "chồng tôi say rượu đang đánh vợ con trong nhà"),
    ("113", "vi", "missing_child", "con tôi 5 tuổi đi lạc ở chợ từ chiều không thấy đâu"),
    ("113", "vi", "public_disorder", "một nhóm thanh niên tụ tập hò hét đập phá quán"),
    ("113", "en", "traffic_accident", "a truck hit two motorbikes at the crossroads"),
    ("114", "vi", "fire", "cháy to lắm ở tầng 2 nhà bên cạnh, khói đen mù mịt"),
    ("114", "vi", "explosion_gas_leak", "ngửi thấy mùi ga nồng nặc trong bếp nhà hàng xóm"),
    ("114", "vi", "collapse_trapped", "bức tường công trình đổ sập đè lên mấy công nhân"),
    ("114", "en", "drowning_water_rescue", "a boy fell into the lake and is going under"),
    ("114", "vi", "other_rescue", "con mèo bị mắc kẹt trên cây cao không xuống được"),
    ("113", "vi", "medical", "mẹ tôi tự nhiên đau ngực dữ dội, khó thở"),
    ("113", "vi", "administrative", "cho hỏi làm lại căn cước công dân bị mất thì nộp ở đâu"),
    ("113", "vi", "human_request", "cho tôi gặp cán bộ trực ban, tôi không muốn nói với máy"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    dialog: RasaDialog, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, SqlCallStore]]:
    store = SqlCallStore(f"sqlite:///{tmp_path / 'chat.db'}")
    await store.create_schema()
    app = FastAPI()
    app.include_router(chat_router(Settings()))
    app.state.center = SimpleNamespace(chat=ChatService(dialog, store, dialog_timeout_s=3.0))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http, store
    await store.close()


async def _open(http: httpx.AsyncClient, line: str, lang: str, caller: str | None = None) -> str:
    body = {"line": line, "lang": lang} | ({"from": caller} if caller else {})
    response = await http.post("/api/v1/chat/sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["session_id"])


async def _say(http: httpx.AsyncClient, session_id: str, text: str) -> dict:
    response = await http.post(f"/api/v1/chat/sessions/{session_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(("line", "lang", "category", "text"), FIRST_MESSAGES)
async def test_first_message_is_triaged(client, line: str, lang: str, category: str, text: str):
    http, _ = client
    session_id = await _open(http, line, lang)
    reply = await _say(http, session_id, text)
    assert reply["messages"] and all(m.strip() for m in reply["messages"])
    assert reply["state"]["category"] == category, reply
    if CATEGORIES[category].is_emergency and category != "human_request":
        assert reply["state"]["priority"] is not None


async def test_a_fire_chat_fills_the_incident(client) -> None:
    http, store = client
    session_id = await _open(http, "114", "vi")
    state = (await _say(http, session_id, "alo cháy nhà rồi, lửa đang lan sang nhà bên"))["state"]
    assert state["category"] == "fire" and state["priority"] == 1
    assert "spreading_fire" in state["red_flags"] and state["handoff"] is True
    state = (await _say(http, session_id, "số 18 phố Hàng Bài, quận Hoàn Kiếm"))["state"]
    assert state["slots"]["incident_location"]
    assert state["slots"].get("location_unit_name") == "Cửa Nam"
    # The read-back is confirmed, then the bot goes on gathering details.
    for answer in ("đúng rồi", "Nguyễn Văn An", "không chín một hai ba bốn năm sáu bảy tám"):
        state = (await _say(http, session_id, answer))["state"]
    assert state["slots"].get("callback_number") == "0912345678"
    incident = await store.get_incident(state["incident_id"])
    assert incident is not None
    assert incident.incident.priority == 1 and incident.incident.category == "fire"
    assert incident.incident.callback_number == "0912345678"
