"""Does decoding several callers' utterances as one Whisper batch help? Not a test.

    python -m bench.bench_whisper_batch [--batches 1,2,4,8] [--repeats 3] \
        [--whisper-model-dir DIR] [--device cpu|cuda] [--json PATH]

When several callers stop speaking at once, their utterances wait for the
recogniser one after another. faster-whisper decodes one audio at a time (its
batched pipeline batches the chunks of one long recording), so batching
across calls means calling CTranslate2 directly: the log-mel features of B
utterances (each padded to Whisper's 30 s window) through one `encode` and
one greedy `generate`. For B = 1, 2, 4, 8 of the English espeak-ng caller
turns in the telephone band this prints the time to decode them one by one
(`WhisperModel.transcribe`, greedy, no VAD, no timestamps: the same decoding)
and as one batch, the best of `--repeats`, and whether the texts agree.

JSON on stdout (or --json PATH), a table on stderr; exits 0 whatever the
figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from bench.corpus import ENGLISH_CALLER_TURNS, espeak_pcm, phone_band
from bench.stats import emit, table, whisper_model_dir
from callcenter.settings import Settings

MAX_NEW_TOKENS = 120


class Decoders:
    def __init__(self, model: WhisperModel) -> None:
        self.model = model
        self.tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
        self.prompt = model.get_prompt(self.tokenizer, [], without_timestamps=True)

    def one_by_one(self, audios: list[np.ndarray]) -> list[str]:
        texts = []
        for audio in audios:
            segments, _ = self.model.transcribe(
                audio,
                language="en",
                beam_size=1,
                temperature=0.0,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            texts.append(" ".join(s.text.strip() for s in segments))
        return texts

    def batched(self, audios: list[np.ndarray]) -> list[str]:
        features = np.stack([pad_or_trim(self.model.feature_extractor(a)) for a in audios])
        encoded = self.model.encode(features)
        results = self.model.model.generate(
            encoded,
            [self.prompt] * len(audios),
            beam_size=1,
            max_length=len(self.prompt) + MAX_NEW_TOKENS,
            suppress_blank=True,
        )
        eot = self.tokenizer.eot
        return [
            self.tokenizer.decode([t for t in r.sequences_ids[0] if t < eot]).strip()
            for r in results
        ]


def best_of(
    repeats: int, work: Callable[[list[np.ndarray]], list[str]], audios: list[np.ndarray]
) -> tuple[float, list[str]]:
    best, texts = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        texts = work(audios)
        best = min(best, time.perf_counter() - started)
    return best, texts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_whisper_batch", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whisper-model-dir", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [min(len(ENGLISH_CALLER_TURNS), int(b)) for b in args.batches.split(",") if b.strip()]
    model_dir = whisper_model_dir(Settings(), args.whisper_model_dir)
    threads = os.cpu_count() or 1
    model = WhisperModel(
        str(model_dir), device=args.device, compute_type=args.compute_type, cpu_threads=threads
    )
    decoders = Decoders(model)
    audios = [
        np.frombuffer(phone_band(espeak_pcm(turn.text)), dtype="<i2").astype(np.float32) / 32768
        for turn in ENGLISH_CALLER_TURNS[: max(sizes)]
    ]
    decoders.one_by_one(audios[:1])  # warm-up, untimed
    decoders.batched(audios[:2])
    load_before = os.getloadavg()
    rows: list[dict[str, object]] = []
    for size in sizes:
        alone_s, alone = best_of(args.repeats, decoders.one_by_one, audios[:size])
        batch_s, batch = best_of(args.repeats, decoders.batched, audios[:size])
        same = sum(a.lower() == b.lower() for a, b in zip(alone, batch, strict=True))
        rows.append(
            {
                "utterances": size,
                "one_by_one_s": round(alone_s, 3),
                "batched_s": round(batch_s, 3),
                "batched_saves": round(1 - batch_s / alone_s, 3),
                "same_text": same,
            }
        )
    emit(
        {
            "bench": "whisper_batch",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "model": str(model_dir),
            "device": args.device,
            "compute_type": args.compute_type,
            "cpu_threads": threads,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "rows": rows,
        },
        args.json,
    )
    print(
        table(
            ["utterances", "one by one s", "one batch s", "batch saves", "same text"],
            [
                [r["utterances"], r["one_by_one_s"], r["batched_s"], r["batched_saves"],
                 f"{r['same_text']}/{r['utterances']}"]
                for r in rows
            ],
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
