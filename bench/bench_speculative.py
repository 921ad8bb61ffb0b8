"""Is speculative early decoding worth it? English turns through CallRecognizer in real time.

    python -m bench.bench_speculative [--max-turns 12] [--band phone|full]
        [--speculative-after-ms 200] [--endpoint-silence-ms 500] [--pause-ms 0]
        [--whisper-model-dir DIR] [--json PATH]

Each espeak-ng caller turn of `bench.corpus` (with 600 ms of silence before and
1200 ms after) is streamed as its own call, in 20 ms frames paced to the wall
clock, through a `CallRecognizer` on Whisper, twice: decoding only at the
endpoint (`off`) and with speculative early decoding (`on`); the order
alternates per turn so that a change in machine load weighs on both.
`--pause-ms N` makes a hesitant caller: each turn is spoken in two halves
with N ms of silence between them (one utterance when N is below the
endpoint silence), so early decodes of the first half are made and wasted.

- **end of speech -> transcript**: from the moment the frame ending with the
  caller's last voiced sample was delivered to the moment the transcript was
  emitted; includes the endpointing silence. The dialog and synthesis come
  on top of this in a call.
- **after endpoint**: `Transcript.decode_ms`, the recogniser's time after it
  declared the end.
- **same text**: turns whose transcript is identical in both modes.
- **early decodes used / wasted**: speculative decodes whose result was the
  transcript / dropped because the caller spoke on (mid-sentence pauses).

Prints JSON on stdout (or to --json PATH) and a table on stderr; exits 0
whatever the figures. About 5 s of audio per turn and mode, plus decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.base import Transcriber
from asr.recognizer import CallRecognizer
from bench import corpus
from bench.stats import emit, summarize_ms, table, whisper_model_dir
from callcenter.events import FRAME_BYTES, FRAME_MS, AudioFrame, Language, SpeechStarted, Transcript
from callcenter.settings import Settings

log = logging.getLogger("bench.bench_speculative")

MAX_TURNS = len(corpus.ENGLISH_CALLER_TURNS)
MODES = ("off", "on")
LEAD_MS = 600
TAIL_MS = 1200


@dataclass(frozen=True, slots=True)
class TurnResult:
    mode: str
    turn: int
    texts: tuple[str, ...]
    latency_s: tuple[float, ...]  # end of speech -> transcript, per transcript
    after_endpoint_ms: tuple[float, ...]
    early_decodes: int
    early_used: int


async def play(
    transcriber: Transcriber,
    executor: Executor,
    pcm: bytes,
    *,
    speculative_after_ms: int | None,
    endpoint_silence_ms: int,
) -> tuple[list[tuple[Transcript, float]], CallRecognizer]:
    """Stream `pcm` in real time; each transcript with its latency after the end of speech."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    heard: list[tuple[Transcript, float]] = []

    async def frames() -> AsyncIterator[AudioFrame]:
        for index in range(len(pcm) // FRAME_BYTES):
            # Delivered when its last sample has been spoken, as from a phone line.
            await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_MS / 1000 - loop.time()))
            yield AudioFrame(pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES], index * FRAME_MS)

    async def on_event(event: SpeechStarted | Transcript) -> None:
        if isinstance(event, Transcript):
            speech_ended_at = started + event.end_ms / 1000
            heard.append((event, loop.time() - speech_ended_at))

    recognizer = CallRecognizer(
        transcriber,
        Language.EN,
        executor,
        endpoint_silence_ms=endpoint_silence_ms,
        min_utterance_ms=200,
        max_utterance_s=15.0,
        speculative_after_ms=speculative_after_ms,
        call_id="bench",
    )
    await recognizer.run(frames(), on_event)
    return heard, recognizer


async def run_turns(
    transcriber: Transcriber, turns: list[bytes], args: argparse.Namespace
) -> list[TurnResult]:
    results: list[TurnResult] = []
    with ThreadPoolExecutor(2, thread_name_prefix="asr") as executor:
        for index, turn in enumerate(turns):
            pcm = corpus.silence_pcm(LEAD_MS) + turn + corpus.silence_pcm(TAIL_MS)
            order = MODES if index % 2 == 0 else MODES[::-1]
            for mode in order:
                heard, recognizer = await play(
                    transcriber,
                    executor,
                    pcm,
                    speculative_after_ms=args.speculative_after_ms if mode == "on" else None,
                    endpoint_silence_ms=args.endpoint_silence_ms,
                )
                results.append(
                    TurnResult(
                        mode=mode,
                        turn=index,
                        texts=tuple(t.text for t, _ in heard),
                        latency_s=tuple(latency for _, latency in heard),
                        after_endpoint_ms=tuple(t.decode_ms for t, _ in heard),
                        early_decodes=recognizer.speculation.decoded,
                        early_used=recognizer.speculation.used,
                    )
                )
                log.info("turn %d %s: %s", index, mode, heard and round(heard[0][1] * 1000))
    return results


def summarise(results: list[TurnResult]) -> dict[str, object]:
    by_mode: dict[str, object] = {}
    for mode in MODES:
        mine = [r for r in results if r.mode == mode]
        latencies = [s for r in mine for s in r.latency_s]
        after = [ms / 1000 for r in mine for ms in r.after_endpoint_ms]
        by_mode[mode] = {
            "end_of_speech_to_transcript": summarize_ms(latencies),
            "after_endpoint": summarize_ms(after),
            "transcripts": sum(len(r.texts) for r in mine),
            "early_decodes": sum(r.early_decodes for r in mine),
            "early_used": sum(r.early_used for r in mine),
        }
    off = {r.turn: r.texts for r in results if r.mode == "off"}
    on = {r.turn: r.texts for r in results if r.mode == "on"}
    same = sum(off[turn] == on.get(turn) for turn in off)
    gains = [
        statistics.median(a.latency_s) - statistics.median(b.latency_s)
        for a in results
        for b in results
        if a.mode == "off" and b.mode == "on" and a.turn == b.turn and a.latency_s and b.latency_s
    ]
    return {
        "modes": by_mode,
        "turns": len(off),
        "same_text_turns": same,
        "median_gain_ms": round(statistics.median(gains) * 1000, 1) if gains else None,
        "differences": [
            {"turn": turn, "off": list(off[turn]), "on": list(on.get(turn, ()))}
            for turn in off
            if off[turn] != on.get(turn)
        ],
    }


def print_table(report: dict[str, object]) -> None:
    summary = report["summary"]
    assert isinstance(summary, dict)
    rows: list[list[object]] = []
    for mode, figures in summary["modes"].items():
        latency = figures["end_of_speech_to_transcript"]
        after = figures["after_endpoint"]
        rows.append(
            [
                mode,
                latency["n"],
                latency["median_ms"],
                latency["p95_ms"],
                after["median_ms"],
                f"{figures['early_used']}/{figures['early_decodes']}",
            ]
        )
    headers = ["speculation", "n", "median ms", "p95 ms", "after endpoint ms", "early used/made"]
    sys.stderr.write("end of speech -> transcript (Whisper, real-time stream)\n")
    sys.stderr.write(table(headers, rows) + "\n")
    sys.stderr.write(
        f"same text in both modes: {summary['same_text_turns']}/{summary['turns']} turns; "
        f"median gain per turn: {summary['median_gain_ms']} ms; "
        f"load average before: {report['load_average_before']}\n"
    )


def spoken_turns(args: argparse.Namespace) -> list[bytes]:
    turns: list[bytes] = []
    for turn in corpus.ENGLISH_CALLER_TURNS[: args.max_turns]:
        if args.pause_ms <= 0:
            pcm = corpus.espeak_pcm(turn.text, args.voice)
        else:
            words = turn.text.split()
            halves = (" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :]))
            first, second = (_voiced(corpus.espeak_pcm(half, args.voice)) for half in halves)
            pcm = first + corpus.silence_pcm(args.pause_ms) + second
        turns.append(corpus.phone_band(pcm) if args.band == "phone" else pcm)
    return turns


def _voiced(pcm: bytes) -> bytes:
    """Without espeak-ng's leading and trailing silence."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return pcm[int(loud[0]) * 2 : (int(loud[-1]) + 1) * 2] if loud.size else pcm


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_speculative", description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write JSON here, not stdout")
    parser.add_argument("--max-turns", type=int, default=MAX_TURNS, help=f"1..{MAX_TURNS}")
    parser.add_argument("--band", choices=("phone", "full"), default="phone")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--speculative-after-ms", type=int, default=200)
    parser.add_argument("--endpoint-silence-ms", type=int, default=500)
    parser.add_argument("--pause-ms", type=int, default=0, help="mid-sentence pause (0: none)")
    parser.add_argument("--whisper-model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.max_turns = min(max(args.max_turns, 1), MAX_TURNS)
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    began = time.perf_counter()
    settings = Settings()
    from asr.whisper_engine import WhisperTranscriber

    model_dir = whisper_model_dir(settings, args.whisper_model_dir)
    turns = spoken_turns(args)
    load_before = os.getloadavg()
    whisper = WhisperTranscriber.from_settings(settings, model_dir)
    try:
        whisper.transcribe(turns[0], Language.EN)  # warm-up, not measured
        results = asyncio.run(run_turns(whisper, turns, args))
    finally:
        whisper.close()
    report: dict[str, object] = {
        "bench": "speculative",
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "band": args.band,
        "speculative_after_ms": args.speculative_after_ms,
        "endpoint_silence_ms": args.endpoint_silence_ms,
        "pause_ms": args.pause_ms,
        "summary": summarise(results),
        "runs": [
            {
                "turn": r.turn,
                "mode": r.mode,
                "texts": list(r.texts),
                "latency_ms": [round(s * 1000, 1) for s in r.latency_s],
                "after_endpoint_ms": [round(ms, 1) for ms in r.after_endpoint_ms],
                "early_decodes": r.early_decodes,
                "early_used": r.early_used,
            }
            for r in results
        ],
        "wall_s": round(time.perf_counter() - began, 1),
    }
    emit(report, args.json)
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
