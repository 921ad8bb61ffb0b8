"""Speech recognition accuracy and speed, with the engines loaded in this process.

    python -m bench.bench_asr [--json PATH] [--max-clips N] [--whisper-model-dir DIR]

Per engine, language and band (full: 16 kHz as recorded; phone: through an
8 kHz µ-law line and back): word error rate (mean over clips and pooled over
all words), real-time factor (decode time / audio time), median and p95
decode time per utterance; per engine: load time and RSS after load.
English: the espeak-ng caller turns of `bench.corpus`; Vietnamese: the real
vieneu clips. Whisper also runs on Vietnamese, for comparison with viet-asr.
Prints JSON on stdout (or to --json PATH) and a table on stderr; exits 0
whatever the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asr.base import Transcriber
from asr.wer import normalise, word_error_rate
from bench import corpus
from bench.stats import emit, percentile, rss_mb, table, whisper_model_dir
from callcenter.events import INTERNAL_RATE_HZ, Language
from callcenter.settings import Settings

log = logging.getLogger("bench.bench_asr")

BANDS = ("full", "phone")


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    reference: str
    pcm: bytes
    key_words: tuple[str, ...] = ()

    @property
    def audio_s(self) -> float:
        return len(self.pcm) / 2 / INTERNAL_RATE_HZ


@dataclass(frozen=True, slots=True)
class Loaded:
    engine: Transcriber
    load_s: float
    rss_after_mb: float | None
    rss_delta_mb: float | None


def english_clips(max_clips: int) -> list[Clip]:
    return [
        Clip(f"en-{i:02d}", turn.text, corpus.espeak_pcm(turn.text, voice="en"), turn.key_words)
        for i, turn in enumerate(corpus.ENGLISH_CALLER_TURNS[:max_clips], start=1)
    ]


def vietnamese_clips(directory: Path | None, max_clips: int) -> list[Clip]:
    return [
        Clip(path.stem, text, corpus.read_wav_16k(path))
        for path, text in corpus.vieneu_clips(directory)[:max_clips]
    ]


def load(factory: Callable[[], Transcriber]) -> Loaded:
    before = rss_mb()
    started = time.perf_counter()
    engine = factory()
    load_s = time.perf_counter() - started
    after = rss_mb()
    delta = None if before is None or after is None else round(after - before, 1)
    return Loaded(engine, round(load_s, 2), after, delta)


def run_clips(
    engine: Transcriber, language: Language, band: str, clips: list[Clip]
) -> dict[str, object]:
    """Transcribe every clip once; WER, speed and the transcripts."""
    rows: list[dict[str, object]] = []
    decode_s: list[float] = []
    errors = 0.0
    ref_words = 0
    keys_found = keys_total = 0
    for clip in clips:
        pcm = corpus.phone_band(clip.pcm) if band == "phone" else clip.pcm
        started = time.perf_counter()
        recognition = engine.transcribe(pcm, language)
        elapsed = time.perf_counter() - started
        wer = word_error_rate(clip.reference, recognition.text)
        words = len(normalise(clip.reference))
        errors += wer * words
        ref_words += words
        decode_s.append(elapsed)
        heard = set(normalise(recognition.text))
        found = sum(1 for word in clip.key_words if word in heard)
        keys_found += found
        keys_total += len(clip.key_words)
        rows.append(
            {
                "clip": clip.name,
                "audio_s": round(clip.audio_s, 2),
                "decode_ms": round(elapsed * 1000, 1),
                "wer": round(wer, 3),
                "reference": clip.reference,
                "hypothesis": recognition.text,
            }
        )
    audio_s = sum(c.audio_s for c in clips)
    wers = [float(str(r["wer"])) for r in rows]
    return {
        "engine": engine.name,
        "lang": language.value,
        "band": band,
        "n": len(clips),
        "audio_s": round(audio_s, 1),
        "wer_mean": round(statistics.fmean(wers), 3) if wers else None,
        "wer_pooled": round(errors / ref_words, 3) if ref_words else None,
        "key_words_found": None if not keys_total else round(keys_found / keys_total, 3),
        "rtf": round(sum(decode_s) / audio_s, 3) if audio_s else None,
        "decode_median_ms": round(statistics.median(decode_s) * 1000, 1) if decode_s else None,
        "decode_p95_ms": round(percentile(decode_s, 0.95) * 1000, 1) if decode_s else None,
        "clips": rows,
    }


def warm_up(engine: Transcriber, language: Language, clip: Clip | None) -> float | None:
    """One untimed decode so the figures show steady state; returns its time."""
    if clip is None:
        return None
    started = time.perf_counter()
    engine.transcribe(clip.pcm, language)
    return round((time.perf_counter() - started) * 1000, 1)


def print_table(report: dict[str, object]) -> None:
    engines = report["engines"]
    runs = report["runs"]
    assert isinstance(engines, dict) and isinstance(runs, list)
    rows = [
        [
            r["engine"],
            r["lang"],
            r["band"],
            r["n"],
            r["wer_mean"],
            r["wer_pooled"],
            r["rtf"],
            r["decode_median_ms"],
            r["decode_p95_ms"],
        ]
        for r in runs
    ]
    load_rows = [
        [name, e["load_s"], e["warmup_ms"], e["rss_after_load_mb"], e["rss_delta_mb"]]
        for name, e in engines.items()
    ]
    sys.stderr.write(
        f"\nspeech recognition, {report['cpus']} CPUs, {report['wall_s']} s in all\n"
        + table(
            [
                "engine",
                "lang",
                "band",
                "clips",
                "WER mean",
                "WER pooled",
                "RTF",
                "median ms",
                "p95 ms",
            ],
            rows,
        )
        + "\n\n"
        + table(["engine", "load s", "warm-up ms", "RSS after MB", "RSS added MB"], load_rows)
        + "\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_asr", description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write JSON here, not stdout")
    parser.add_argument("--max-clips", type=int, default=12, help="per language (1..50)")
    parser.add_argument("--clips", type=Path, default=None, help="vieneu clips directory")
    parser.add_argument("--whisper-model-dir", type=Path, default=None)
    parser.add_argument("--no-whisper-vi", action="store_true", help="skip Whisper on Vietnamese")
    args = parser.parse_args(argv)
    args.max_clips = min(max(args.max_clips, 1), 50)
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    started = time.perf_counter()
    settings = Settings()
    from asr.vietasr_engine import VietAsrTranscriber
    from asr.whisper_engine import WhisperTranscriber

    model_dir = whisper_model_dir(settings, args.whisper_model_dir)

    english = english_clips(args.max_clips)
    vietnamese = vietnamese_clips(args.clips, args.max_clips)
    if not vietnamese:
        log.warning("no Vietnamese clips (run scripts/setup.sh --test or pass --clips)")
    rss_base = rss_mb()

    whisper = load(lambda: WhisperTranscriber.from_settings(settings, model_dir))
    viet = load(VietAsrTranscriber)
    plan: list[tuple[Loaded, Language, list[Clip]]] = [(whisper, Language.EN, english)]
    if vietnamese:
        plan.append((viet, Language.VI, vietnamese))
        if not args.no_whisper_vi:
            plan.append((whisper, Language.VI, vietnamese))

    engines: dict[str, dict[str, object]] = {}
    runs: list[dict[str, object]] = []
    try:
        for loaded, language, clips in plan:
            name = loaded.engine.name
            if name not in engines:
                engines[name] = {
                    "load_s": loaded.load_s,
                    "rss_after_load_mb": loaded.rss_after_mb,
                    "rss_delta_mb": loaded.rss_delta_mb,
                    "warmup_ms": warm_up(loaded.engine, language, clips[0] if clips else None),
                }
            for band in BANDS:
                runs.append(run_clips(loaded.engine, language, band, clips))
                log.info("%s %s %s done", name, language.value, band)
    finally:
        viet.engine.close()
        whisper.engine.close()

    report: dict[str, object] = {
        "bench": "asr",
        "cpus": os.cpu_count(),
        "whisper_model_dir": str(model_dir),
        "rss_before_engines_mb": rss_base,
        "rss_end_mb": rss_mb(),
        "engines": engines,
        "runs": runs,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(report, args.json)
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
