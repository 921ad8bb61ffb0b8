"""Dialog quality of a running service, from labelled caller conversations over chat.

    python -m bench.bench_dialog [--url http://127.0.0.1:8080] \
        [--data tests/data/dialog_eval.json] [--lang vi|en] [--limit N] [--json PATH]

Plays each conversation of the held-out set through the chat API, one at a time:
open a session on the conversation's line and language, then send the caller's
scripted messages in order, one after each bot reply. A conversation stops after
its last message, when the dialog says it is done, or when it has been handed to
a human and the bot stops answering. The final state is then scored against the
labels: per-category precision/recall/F1 and macro-F1, emergency recall, red-flag
recall and precision, location capture, ward resolution and accuracy, callback
number accuracy, hand-off rate, and the chat reply latency.

Prints JSON on stdout (or to --json PATH) and a table on stderr. Exits 0 whatever
the figures; 2 only when the service cannot be reached (or the URL is not loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.stats import emit, is_loopback, summarize_ms, table

log = logging.getLogger("bench.bench_dialog")

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "dialog_eval.json"
CATEGORIES_113 = (
    "theft", "robbery", "assault", "weapon_threat", "domestic_violence",
    "missing_child", "public_disorder", "traffic_accident",
)  # fmt: skip
CATEGORIES_114 = (
    "fire", "explosion_gas_leak", "collapse_trapped", "drowning_water_rescue", "other_rescue",
)  # fmt: skip
CATEGORIES_OTHER = ("medical", "administrative", "prank_silent", "human_request")
ALL_CATEGORIES = CATEGORIES_113 + CATEGORIES_114 + CATEGORIES_OTHER
NON_EMERGENCY = frozenset({"administrative", "prank_silent"})
NO_CATEGORY = "(none)"
TARGETS = {"macro_f1": 0.90, "emergency_recall": 0.99, "location_captured": 0.95}
MAX_TURNS = 20
MAX_TEXT_CHARS = 2000
MAX_UNANSWERED = 3  # opens in a row that fail before the run stops


class ServiceUnreachable(Exception):
    """The chat API did not answer at all (connection refused, timeout, 5xx on open)."""


# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class Expect:
    category: str
    emergency: bool
    red_flag: bool
    location_said: bool
    ward: str | None = None
    callback_number: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    line: str
    lang: str
    turns: tuple[str, ...]
    expect: Expect
    caller_number: str | None = None



def ward_of(slots: Mapping[str, str]) -> str | None:
    """The ward or commune the dialog resolved the location to, if any."""
    return slots.get("location_unit_name") or slots.get("ward_name") or None

def _field(
    raw: Mapping[str, Any], key: str, kind: type, where: str, *, optional: bool = False
) -> Any:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def parse_conversation(raw: object) -> Conversation:
    """One labelled conversation from its JSON object; ValueError names what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"a conversation must be an object, got {raw!r}")
    cid = _field(raw, "id", str, "conversation")
    where = f"conversation {cid!r}"
    line = _field(raw, "line", str, where)
    lang = _field(raw, "lang", str, where)
    if line not in ("113", "114") or lang not in ("vi", "en"):
        raise ValueError(f"{where}: line must be 113|114 and lang vi|en")
    turns = _field(raw, "turns", list, where)
    if not turns or len(turns) > MAX_TURNS:
        raise ValueError(f"{where}: 1..{MAX_TURNS} turns")
    for turn in turns:
        if not isinstance(turn, str) or not turn.strip() or len(turn) > MAX_TEXT_CHARS:
            raise ValueError(f"{where}: every turn must be non-blank text")
    ex = _field(raw, "expect", dict, where)
    category = _field(ex, "category", str, where)
    if category not in ALL_CATEGORIES:
        raise ValueError(f"{where}: unknown category {category!r}")
    expect = Expect(
        category=category,
        emergency=_field(ex, "emergency", bool, where),
        red_flag=_field(ex, "red_flag", bool, where),
        location_said=_field(ex, "location_said", bool, where),
        ward=_field(ex, "ward", str, where, optional=True),
        callback_number=_field(ex, "callback_number", str, where, optional=True),
    )
    if expect.emergency != (category not in NON_EMERGENCY):
        raise ValueError(f"{where}: emergency contradicts category {category!r}")
    if expect.callback_number is not None and normalize_phone(expect.callback_number) != (
        expect.callback_number
    ):
        raise ValueError(f"{where}: callback_number must be normalised (0XXXXXXXXX)")
    return Conversation(
        id=cid,
        line=line,
        lang=lang,
        turns=tuple(turns),
        expect=expect,
        caller_number=_field(raw, "from", str, where, optional=True),
    )


def load_conversations(path: Path) -> list[Conversation]:
    """The labelled set: a JSON list, or an object holding it under "conversations"."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = raw.get("conversations") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ValueError(f"{path}: no list of conversations")
    conversations = [parse_conversation(item) for item in items]
    ids = [c.id for c in conversations]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate conversation ids")
    return conversations


# ---------------------------------------------------------------- normalising


def normalize_phone(text: str | None) -> str | None:
    """National 0... digits of a phone number as the service or a label writes it."""
    if not text:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits.startswith("0084"):
        digits = "0" + digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    elif len(digits) == 9 and not digits.startswith("0"):
        digits = "0" + digits
    if digits.startswith("00"):  # "+84 09..." keeps the trunk zero
        digits = digits[1:]
    return digits or None


# The type word before a name ("phường Hoàn Kiếm", "P. Hoàn Kiếm", "xã Xuân Mai") or
# after it ("Hoan Kiem ward"). Only one, at either end: "Hòa Xá" ends in "xa".
_UNIT_BEFORE = frozenset({"phuong", "xa", "p", "x", "ward", "commune"})
_UNIT_AFTER = frozenset({"ward", "commune"})


def normalize_place(text: str | None) -> str:
    """A ward or commune name without accents, case, type word or punctuation."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = "".join(ch if ch.isalnum() else " " for ch in plain).split()
    if len(words) > 1 and words[0] in _UNIT_BEFORE:
        words = words[1:]
    if len(words) > 1 and words[-1] in _UNIT_AFTER:
        words = words[:-1]
    return " ".join(words)


def same_place(got: str | None, expected: str) -> bool:
    return bool(got) and normalize_place(got) == normalize_place(expected)


# ---------------------------------------------------------------- playing


@dataclass(slots=True)
class Outcome:
    conversation: Conversation
    category: str | None = None
    priority: int | None = None
    slots: dict[str, str] = field(default_factory=dict)
    red_flags: list[str] = field(default_factory=list)
    handoff: bool = False
    done: bool = False
    turns_sent: int = 0
    reply_s: list[float] = field(default_factory=list)
    open_s: float | None = None
    bot_messages: list[list[str]] = field(default_factory=list)
    error: str | None = None

    def take(self, state: object) -> None:
        """Fold one answer's state in: the latest values, red flags and hand-off kept."""
        if not isinstance(state, dict):
            return
        category = state.get("category")
        self.category = category if isinstance(category, str) and category else None
        priority = state.get("priority")
        self.priority = priority if isinstance(priority, int) else None
        slots = state.get("slots")
        if isinstance(slots, dict):
            self.slots = {str(k): str(v) for k, v in slots.items() if v not in (None, "")}
        for flag in state.get("red_flags") or ():
            if str(flag) not in self.red_flags:
                self.red_flags.append(str(flag))
        self.handoff = self.handoff or bool(state.get("handoff"))
        self.done = bool(state.get("done"))


def _json(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _messages(body: Mapping[str, Any]) -> list[str]:
    messages = body.get("messages")
    return [str(m) for m in messages] if isinstance(messages, list) else []


async def play(client: httpx.AsyncClient, conversation: Conversation) -> Outcome:
    """Open a chat and send the caller's turns; ServiceUnreachable when it cannot open."""
    outcome = Outcome(conversation)
    payload: dict[str, str] = {"line": conversation.line, "lang": conversation.lang}
    if conversation.caller_number:
        payload["from"] = conversation.caller_number
    started = time.perf_counter()
    try:
        response = await client.post("/api/v1/chat/sessions", json=payload)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"open: {exc!r}") from exc
    if response.status_code >= 500:
        raise ServiceUnreachable(f"open: HTTP {response.status_code} {response.text[:200]}")
    outcome.open_s = time.perf_counter() - started
    body = _json(response)
    session_id = body.get("session_id")
    if response.status_code != 201 or not isinstance(session_id, str):
        outcome.error = f"open: HTTP {response.status_code} {response.text[:200]}"
        return outcome
    outcome.bot_messages.append(_messages(body))
    outcome.take(body.get("state"))
    for text in conversation.turns:
        if outcome.done:
            break
        started = time.perf_counter()
        try:
            response = await client.post(
                f"/api/v1/chat/sessions/{session_id}/messages", json={"text": text}
            )
        except httpx.TransportError as exc:
            outcome.error = f"turn {outcome.turns_sent + 1}: {exc!r}"
            break
        outcome.turns_sent += 1
        if response.status_code != 200:
            outcome.error = f"turn {outcome.turns_sent}: HTTP {response.status_code}"
            break
        outcome.reply_s.append(time.perf_counter() - started)
        body = _json(response)
        replies = _messages(body)
        outcome.bot_messages.append(replies)
        outcome.take(body.get("state"))
        if outcome.handoff and not replies:
            break  # a human has the chat; the bot no longer answers
    return outcome


# ---------------------------------------------------------------- metrics


def ratio(hits: int, total: int) -> float | None:
    return None if total == 0 else round(hits / total, 4)


def category_scores(
    pairs: Sequence[tuple[str, str | None]],
) -> tuple[dict[str, dict[str, float | int | None]], float | None]:
    """Per-category precision/recall/F1 from (expected, got) pairs, and their macro-F1.

    The macro average runs over the categories that occur among the expected labels;
    a conversation that ended with no category counts against its expected one's
    recall. Precision is None for a category never predicted.
    """
    labels = sorted({expected for expected, _ in pairs})
    scores: dict[str, dict[str, float | int | None]] = {}
    f1s: list[float] = []
    for label in labels:
        tp = sum(1 for e, g in pairs if e == label and g == label)
        support = sum(1 for e, _ in pairs if e == label)
        predicted = sum(1 for _, g in pairs if g == label)
        precision = tp / predicted if predicted else None
        recall = tp / support
        f1 = 2 * tp / (support + predicted)
        f1s.append(f1)
        scores[label] = {
            "precision": None if precision is None else round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
            "predicted": predicted,
        }
    macro = round(sum(f1s) / len(f1s), 4) if f1s else None
    return scores, macro


def is_emergency_kept(got: str | None) -> bool:
    """An emergency call ended as one: a known category, and not a non-emergency one.

    A label outside the category keys (say "unknown") counts as no category.
    """
    return got in ALL_CATEGORIES and got not in NON_EMERGENCY


def emergency_recall(pairs: Sequence[tuple[bool, str | None]]) -> float | None:
    """Share of emergency conversations (True) not ending as non-emergency or uncategorised."""
    kept = [is_emergency_kept(got) for emergency, got in pairs if emergency]
    return ratio(sum(kept), len(kept))


def binary_scores(pairs: Sequence[tuple[bool, bool]]) -> dict[str, float | int | None]:
    """Recall and precision of a yes/no label from (expected, got) pairs."""
    tp = sum(1 for e, g in pairs if e and g)
    fn = sum(1 for e, g in pairs if e and not g)
    fp = sum(1 for e, g in pairs if g and not e)
    return {
        "recall": ratio(tp, tp + fn),
        "precision": ratio(tp, tp + fp),
        "true_pos": tp,
        "false_neg": fn,
        "false_pos": fp,
    }


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Every quality figure over the conversations tried; a failed one scores as a miss."""
    played = list(outcomes)
    pairs = [(o.conversation.expect.category, o.category) for o in played]
    per_category, macro_f1 = category_scores(pairs)
    emergency = emergency_recall([(o.conversation.expect.emergency, o.category) for o in played])
    red = binary_scores([(o.conversation.expect.red_flag, bool(o.red_flags)) for o in played])

    said = [o for o in played if o.conversation.expect.location_said]
    captured = [o for o in said if o.slots.get("incident_location")]
    ward_expected = [o for o in played if o.conversation.expect.ward]
    ward_resolved = [o for o in ward_expected if ward_of(o.slots)]
    ward_right = [
        o
        for o in ward_expected
        if same_place(ward_of(o.slots), o.conversation.expect.ward or "")
    ]
    callback_expected = [o for o in played if o.conversation.expect.callback_number]
    callback_right = [
        o
        for o in callback_expected
        if normalize_phone(o.slots.get("callback_number")) == o.conversation.expect.callback_number
    ]

    def handoff_rate(group: Sequence[Outcome]) -> float | None:
        return ratio(sum(o.handoff for o in group), len(group))

    by_lang: dict[str, dict[str, Any]] = {}
    for lang in sorted({o.conversation.lang for o in played}):
        group = [o for o in played if o.conversation.lang == lang]
        _, lang_macro = category_scores(
            [(o.conversation.expect.category, o.category) for o in group]
        )
        by_lang[lang] = {
            "conversations": len(group),
            "macro_f1": lang_macro,
            "accuracy": ratio(
                sum(o.category == o.conversation.expect.category for o in group), len(group)
            ),
            "emergency_recall": emergency_recall(
                [(o.conversation.expect.emergency, o.category) for o in group]
            ),
        }

    figures: dict[str, Any] = {
        "conversations": len(played),
        "accuracy": ratio(sum(e == g for e, g in pairs), len(pairs)),
        "macro_f1": macro_f1,
        "emergency_recall": emergency,
        "non_emergency_kept_out": ratio(
            sum(
                1
                for o in played
                if not o.conversation.expect.emergency and o.category in NON_EMERGENCY
            ),
            sum(1 for o in played if not o.conversation.expect.emergency),
        ),
        "red_flag": red,
        "location_captured": ratio(len(captured), len(said)),
        "location_said": len(said),
        "ward_resolved": ratio(len(ward_resolved), len(ward_expected)),
        "ward_accuracy": ratio(len(ward_right), len(ward_expected)),
        "ward_resolved_any": ratio(sum(1 for o in said if ward_of(o.slots)), len(said)),
        "ward_expected": len(ward_expected),
        "callback_accuracy": ratio(len(callback_right), len(callback_expected)),
        "callback_expected": len(callback_expected),
        "handoff": {
            "all": handoff_rate(played),
            "red_flag": handoff_rate([o for o in played if o.conversation.expect.red_flag]),
            "human_request": handoff_rate(
                [o for o in played if o.conversation.expect.category == "human_request"]
            ),
            "other": handoff_rate(
                [
                    o
                    for o in played
                    if not o.conversation.expect.red_flag
                    and o.conversation.expect.category != "human_request"
                ]
            ),
        },
        "per_category": per_category,
        "by_lang": by_lang,
        "misclassified": [
            {"id": o.conversation.id, "expected": o.conversation.expect.category, "got": o.category}
            for o in played
            if o.category != o.conversation.expect.category
        ],
        "unknown_categories": dict(
            Counter(o.category for o in played if o.category and o.category not in ALL_CATEGORIES)
        ),
        "emergencies_missed": [
            o.conversation.id
            for o in played
            if o.conversation.expect.emergency and not is_emergency_kept(o.category)
        ],
        "locations_missed": [o.conversation.id for o in said if o not in captured],
    }
    figures["meets_targets"] = {
        key: None if figures[key] is None else figures[key] >= target
        for key, target in TARGETS.items()
    }
    return figures


# ---------------------------------------------------------------- report


def conversation_record(outcome: Outcome, transcripts: bool) -> dict[str, Any]:
    c = outcome.conversation
    record: dict[str, Any] = {
        "id": c.id,
        "lang": c.lang,
        "expected": c.expect.category,
        "got": outcome.category,
        "priority": outcome.priority,
        "red_flags": outcome.red_flags,
        "handoff": outcome.handoff,
        "done": outcome.done,
        "turns_sent": outcome.turns_sent,
        "turns": len(c.turns),
        "location": outcome.slots.get("incident_location"),
        "ward": ward_of(outcome.slots),
        "ward_expected": c.expect.ward,
        "callback_number": outcome.slots.get("callback_number"),
        "callback_expected": c.expect.callback_number,
        "error": outcome.error,
    }
    if transcripts:
        record["transcript"] = [
            {"bot": outcome.bot_messages[0] if outcome.bot_messages else []},
            *(
                {"caller": text, "bot": outcome.bot_messages[i + 1]}
                for i, text in enumerate(c.turns)
                if i + 1 < len(outcome.bot_messages)
            ),
        ]
        record["slots"] = outcome.slots
    return record


def build_report(
    url: str, data: Path, outcomes: Sequence[Outcome], wall_s: float, transcripts: bool
) -> dict[str, Any]:
    return {
        "bench": "dialog",
        "url": url,
        "data": str(data),
        "targets": TARGETS,
        **score(outcomes),
        "chat_reply_latency": summarize_ms([s for o in outcomes for s in o.reply_s]),
        "chat_open_latency": summarize_ms([o.open_s for o in outcomes if o.open_s is not None]),
        "errors": sum(1 for o in outcomes if o.error),
        "wall_s": round(wall_s, 1),
        "results": [conversation_record(o, transcripts) for o in outcomes],
    }


def _pct(value: object) -> object:
    return None if not isinstance(value, float | int) else f"{100 * value:.1f}%"


def print_table(report: Mapping[str, Any]) -> None:
    per_category = report["per_category"]
    rows = [
        [
            label,
            s["support"],
            s["predicted"],
            _pct(s["precision"]),
            _pct(s["recall"]),
            _pct(s["f1"]),
        ]
        for label, s in per_category.items()
    ]
    red = report["red_flag"]
    handoff = report["handoff"]
    latency = report["chat_reply_latency"]

    def target(key: str) -> str:
        met = report["meets_targets"][key]
        mark = "-" if met is None else ("ok" if met else "MISSED")
        return f">= {TARGETS[key]:.2f} {mark}"

    figures = [
        ["macro-F1", _pct(report["macro_f1"]), target("macro_f1")],
        ["accuracy", _pct(report["accuracy"]), ""],
        ["emergency recall", _pct(report["emergency_recall"]), target("emergency_recall")],
        ["non-emergency kept out", _pct(report["non_emergency_kept_out"]), ""],
        ["red-flag recall", _pct(red["recall"]), ""],
        ["red-flag precision", _pct(red["precision"]), ""],
        ["location captured", _pct(report["location_captured"]), target("location_captured")],
        ["ward resolved (ward expected)", _pct(report["ward_resolved"]), ""],
        ["ward accuracy (ward expected)", _pct(report["ward_accuracy"]), ""],
        ["ward resolved (location said)", _pct(report["ward_resolved_any"]), ""],
        ["callback number accuracy", _pct(report["callback_accuracy"]), ""],
        ["hand-off, all", _pct(handoff["all"]), ""],
        ["hand-off, red flag", _pct(handoff["red_flag"]), ""],
        ["hand-off, human request", _pct(handoff["human_request"]), ""],
        ["hand-off, other", _pct(handoff["other"]), ""],
        ["chat reply median ms", latency["median_ms"], ""],
        ["chat reply p95 ms", latency["p95_ms"], ""],
    ]
    missed: list[str] = report["emergencies_missed"]
    langs = ", ".join(
        f"{lang}: {v['conversations']} conv, macro-F1 {_pct(v['macro_f1'])}"
        for lang, v in report["by_lang"].items()
    )
    sys.stderr.write(
        f"\ndialog quality, {report['conversations']} conversations ({langs}), {report['url']}\n"
        + table(["category", "n", "predicted", "precision", "recall", "F1"], rows)
        + "\n\n"
        + table(["figure", "value", "target"], figures)
        + f"\nerrors: {report['errors']}"
        + f"  categories outside the keys: {report['unknown_categories'] or '-'}"
        + f"\nemergencies missed ({len(missed)}): {', '.join(missed[:12]) or '-'}"
        + (" ..." if len(missed) > 12 else "")
        + "\n"
    )
    if any("HTTP 429" in str(r.get("error")) for r in report["results"]):
        sys.stderr.write(
            "some turns were refused by the chat rate limits (HTTP 429): the figures are not "
            "valid. Start the service with CALLBOT_CHAT_OPENS_PER_IP_PER_MIN, "
            "CALLBOT_CHAT_OPENS_PER_NUMBER_PER_MIN and CALLBOT_CHAT_MESSAGES_PER_CHAT_PER_MIN "
            "raised (e.g. 100000) for this benchmark.\n"
        )


# ---------------------------------------------------------------- main


async def wait_ready(client: httpx.AsyncClient, timeout_s: float) -> bool:
    """Poll /health while it says "starting"; False when nothing answers at all."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = await client.get("/health")
        except httpx.TransportError:
            return False
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "starting" or time.monotonic() >= deadline:
            return True
        await asyncio.sleep(0.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dialog", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the service (loopback)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled conversations")
    parser.add_argument("--lang", choices=("vi", "en"), default=None, help="only this language")
    parser.add_argument("--limit", type=int, default=None, help="at most N conversations")
    parser.add_argument("--request-timeout", type=float, default=15.0, help="seconds per request")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="wait for /health")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="start none after")
    parser.add_argument("--transcripts", action="store_true", help="bot replies in the JSON")
    parser.add_argument("--json", type=Path, default=None, help="write JSON here, not stdout")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """The benchmark; `transport` lets tests put a fake service behind the URL."""
    if not is_loopback(args.url):
        sys.stderr.write(f"refusing {args.url}: the benchmark drives loopback services only\n")
        return 2
    conversations = load_conversations(args.data)
    if args.lang:
        conversations = [c for c in conversations if c.lang == args.lang]
    if args.limit is not None:
        conversations = conversations[: max(args.limit, 0)]
    outcomes: list[Outcome] = []
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=args.url,
        timeout=args.request_timeout,
        trust_env=False,
        transport=transport,
    ) as client:
        if not await wait_ready(client, args.ready_timeout):
            sys.stderr.write(f"the service at {args.url} is unreachable\n")
            return 2
        unanswered = 0
        for conversation in conversations:
            if time.monotonic() - started > args.max_seconds:
                log.warning("stopped after %.0f s", args.max_seconds)
                break
            try:
                outcome = await play(client, conversation)
                unanswered = 0
            except ServiceUnreachable as exc:
                if not outcomes:
                    sys.stderr.write(f"the chat API at {args.url} does not answer: {exc}\n")
                    return 2
                outcome = Outcome(conversation, error=str(exc))  # scored as a miss
                unanswered += 1
            if outcome.error:
                log.warning("%s: %s", conversation.id, outcome.error)
            outcomes.append(outcome)
            if unanswered >= MAX_UNANSWERED:
                log.warning("the service stopped answering; the rest are not played")
                break
    report = build_report(
        args.url, args.data, outcomes, time.monotonic() - started, args.transcripts
    )
    emit(report, args.json)
    print_table(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
