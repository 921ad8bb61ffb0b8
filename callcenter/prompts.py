"""Prompts the call session itself speaks, whatever the dialog engine."""

from __future__ import annotations

from enum import StrEnum

from callcenter.events import Language


class Prompt(StrEnum):
    HOLD = "hold"
    STILL_THERE = "still_there"
    SILENT_GOODBYE = "silent_goodbye"
    ALL_BUSY = "all_busy"


_TEXTS: dict[Language, dict[Prompt, str]] = {
    Language.VI: {
        Prompt.HOLD: (
            "Xin giữ máy, cuộc gọi đang được chuyển tới cán bộ trực. "
            "Thông tin của bạn đã được ghi lại."
        ),
        Prompt.STILL_THERE: (
            "Bạn còn nghe máy không? Nếu không nói được, hãy bấm một phím bất kỳ."
        ),
        Prompt.SILENT_GOODBYE: (
            "Chúng tôi không nghe thấy bạn. Cán bộ trực sẽ gọi lại cho số này. "
            "Nếu cần giúp, hãy gọi lại ngay."
        ),
        Prompt.ALL_BUSY: (
            "Tất cả các đường dây đang bận. Xin đừng gác máy, "
            "cuộc gọi của bạn sẽ được trả lời ngay khi có đường dây trống."
        ),
    },
    Language.EN: {
        Prompt.HOLD: (
            "Please hold, I am transferring you to an officer. What you told me has been recorded."
        ),
        Prompt.STILL_THERE: ("Are you still there? If you cannot speak, press any key."),
        Prompt.SILENT_GOODBYE: (
            "We cannot hear you. An officer will call this number back. "
            "If you need help, call again right away."
        ),
        Prompt.ALL_BUSY: (
            "All lines are busy. Please stay on the line: "
            "your call will be answered as soon as a line is free."
        ),
    },
}


def prompt_text(prompt: Prompt, language: Language) -> str:
    return _TEXTS[language][prompt]


def all_prompts(language: Language) -> list[str]:
    return list(_TEXTS[language].values())
