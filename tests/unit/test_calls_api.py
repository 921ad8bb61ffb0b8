"""Call recordings over HTTP: supervisors and admins only, every download logged."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.unit.test_incidents_api import Api, api, report

__all__ = ["api"]

pytestmark = pytest.mark.unit


async def recorded_call(api: Api, tmp_path: Path) -> str:
    await report(api.store, "rec1")
    relative = "2026/11/30/rec1.flac"
    path = tmp_path / "recordings" / relative
    path.parent.mkdir(parents=True)
    soundfile.write(path, np.zeros((8000, 2), dtype=np.int16), 8000, format="FLAC")
    await api.store.set_recording("rec1", relative, 1.0)
    return "/api/v1/calls/rec1/recording"


async def test_only_supervisors_and_admins_hear_recordings(api: Api, tmp_path: Path) -> None:
    url = await recorded_call(api, tmp_path)
    assert (await api.client.get(url)).status_code == 401
    answer = await api.client.get(url, headers=api.as_("dispatcher"))
    assert answer.status_code == 403
    for role in ("supervisor", "admin"):
        answer = await api.client.get(url, headers=api.as_(role))
        assert answer.status_code == 200, role
        assert answer.headers["content-type"] == "audio/flac"
        assert answer.content.startswith(b"fLaC")
    log = (await api.client.get("/api/v1/access-log", headers=api.as_("admin"))).json()["items"]
    assert sorted((e["actor"], e["action"], e["subject"]) for e in log) == [
        ("token:admin-bot", "read_recording", "call:rec1"),
        ("token:supervisor-bot", "read_recording", "call:rec1"),
    ]


async def test_missing_purged_and_forged_recordings_are_404(api: Api, tmp_path: Path) -> None:
    url = await recorded_call(api, tmp_path)
    boss = api.as_("supervisor")
    assert (await api.client.get("/api/v1/calls/nope/recording", headers=boss)).status_code == 404
    await report(api.store, "unrecorded")
    answer = await api.client.get("/api/v1/calls/unrecorded/recording", headers=boss)
    assert answer.status_code == 404
    # a record pointing outside the recordings directory is never served
    await api.store.set_recording("unrecorded", "../callbot.db", 1.0)
    answer = await api.client.get("/api/v1/calls/unrecorded/recording", headers=boss)
    assert answer.status_code == 404
    for path in ("/api/v1/calls/..%2F..%2Fcallbot.db/recording", "/api/v1/calls/%2e%2e/recording"):
        assert (await api.client.get(path, headers=boss)).status_code == 404
    (tmp_path / "recordings" / "2026/11/30/rec1.flac").unlink()  # purged
    answer = await api.client.get(url, headers=boss)
    assert answer.status_code == 404 and "purged" in answer.json()["detail"]
    log = (await api.client.get("/api/v1/access-log", headers=api.as_("admin"))).json()["items"]
    assert log == []  # nothing was served, nothing logged


async def test_retention_purges_old_transcripts_and_recordings_and_logs_it(
    api: Api, tmp_path: Path
) -> None:
    url = await recorded_call(api, tmp_path)
    file = tmp_path / "recordings" / "2026/11/30/rec1.flac"
    long_ago = time.time() - 400 * 86400
    os.utime(file, (long_ago, long_ago))
    await api.store.end_call(
        "rec1", "completed", "caller hung up", datetime.now(UTC) - timedelta(days=400)
    )
    await report(api.store, "recent")
    await api.store.end_call("recent", "completed", "caller hung up", datetime.now(UTC))

    center = api.client._transport.app.state.center  # type: ignore[attr-defined]
    assert await center.purge_expired() == (1, 1)
    assert await center.purge_expired() == (0, 0)  # nothing left to purge

    assert not file.exists()
    assert (await api.client.get(url, headers=api.as_("admin"))).status_code == 404
    old = await api.store.get_call("rec1")
    assert old is not None and old.turns == () and old.info.caller_number is None
    kept = await api.store.get_call("recent")
    assert kept is not None and len(kept.turns) == 1 and kept.info.caller_number == "0912345678"
    assert await api.store.get_incident("inc-rec1") is not None  # the incident stays
    log = (await api.client.get("/api/v1/access-log", headers=api.as_("admin"))).json()["items"]
    assert sorted((e["actor"], e["action"], e["subject"]) for e in log) == [
        ("system:retention", "purge_recording", "call:rec1"),
        ("system:retention", "purge_transcript", "call:rec1"),
    ]
