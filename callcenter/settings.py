"""Service settings, read from `CALLBOT_*` environment variables.

Built once in `main` / `create_app(settings)` and passed down; nothing here
runs at import time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

AsrEngineName = Literal["viet-asr", "whisper"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLBOT_", extra="ignore")

    # "production" refuses to start with default or missing secrets (production_problems)
    environment: Literal["development", "production"] = "development"
    # this node's name, stored with each call it answers (several nodes, one database)
    node_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("./var")
    database_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = False

    # Speech recognition
    whisper_model_dir: Path | None = None
    whisper_compute_type: str = "int8"
    whisper_device: str = "cpu"
    whisper_beam_size: int = Field(default=1, ge=1, le=10)
    whisper_max_new_tokens: int = Field(default=96, ge=8, le=440)
    asr_engine_vi: AsrEngineName = "viet-asr"
    asr_engine_en: AsrEngineName = "whisper"
    asr_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    asr_hotwords_vi: str = "cháy nổ cứu cứu hỏa công an cướp trộm tai nạn phường quận số"
    asr_hotwords_en: str = "fire smoke police help ambulance accident robbery street district"

    # Calls answered at once by this node; more callers hear "all lines busy, stay
    # on the line" and wait in order for a free line (never refused)
    max_concurrent_calls: int = Field(default=10, ge=1)
    busy_prompt_every_s: float = Field(default=20.0, gt=0)

    # Turn taking
    endpoint_silence_ms: int = Field(default=500, ge=100, le=3000)
    # Whisper starts decoding after this much silence; used if the caller stays quiet
    speculative_after_ms: int = Field(default=200, ge=0, le=2000)
    min_utterance_ms: int = Field(default=200, ge=20)
    max_utterance_s: float = Field(default=15.0, ge=1.0, le=60.0)
    silence_reprompt_s: float = Field(default=7.0, ge=1.0)
    silence_max_reprompts: int = Field(default=2, ge=0)

    # Dialog: the Rasa server (started here unless CALLBOT_RASA_URL points at one)
    dialog_engine: Literal["rasa", "scripted"] = "rasa"
    rasa_url: str | None = None
    rasa_port: int = Field(default=5005, ge=0, le=65535)  # 0: any free port
    rasa_action_port: int = Field(default=5055, ge=0, le=65535)
    rasa_model: Path | None = None  # default: DATA_DIR/rasa/models/callbot.tar.gz
    rasa_token: str | None = None  # for an external Rasa started with --auth-token
    rasa_timeout_s: float = Field(default=2.5, gt=0)  # each HTTP request to Rasa
    rasa_start_timeout_s: float = Field(default=90.0, gt=0)
    rasa_venv: Path = Path(".venv-rasa")
    rasa_endpoints_file: Path | None = None  # e.g. a shared PostgreSQL tracker store

    # Time limits for the parts of a turn; past them the call goes to a human
    dialog_timeout_s: float = Field(default=3.0, gt=0)
    tts_timeout_s: float = Field(default=3.0, gt=0)

    # Protocol limits for the media-stream gateway
    media_max_message_bytes: int = Field(default=65_536, ge=1024)
    media_max_errors: int = Field(default=50, ge=1)

    # Staff accounts and sessions (callcenter.auth)
    session_ttl_s: float = Field(default=12 * 3600, gt=0)  # idle expiry, sliding
    cookie_secure: Literal["auto", "always", "never"] = "auto"  # auto: Secure over https
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_s: float = Field(default=15 * 60, gt=0)

    # Rate limits (per node). Generous on purpose: many callers share one address
    # behind a carrier's NAT, and a frightened caller may retry.
    chat_opens_per_ip_per_min: float = Field(default=120, gt=0)
    chat_opens_per_number_per_min: float = Field(default=10, gt=0)
    chat_messages_per_chat_per_min: float = Field(default=30, gt=0)
    logins_per_ip_per_min: float = Field(default=30, gt=0)

    # Telephony gateways (callcenter.gateways); a port of 0 means any free port,
    # and the address actually used is shown in /health under "gateways".
    sip_enabled: bool = True
    sip_host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 to take calls from the network
    sip_port: int = Field(default=5060, ge=0, le=65535)
    sip_public_address: str | None = None  # the address peers should send RTP to (NAT)
    sip_max_calls: int = Field(default=60, ge=1)
    sip_dispatcher_uri: str | None = None  # hand-offs are transferred here, e.g. sip:disp@pbx
    sip_transfer_timeout_s: float = Field(default=20.0, gt=0)
    audiosocket_enabled: bool = True
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = Field(default=9092, ge=0, le=65535)
    audiosocket_line: Literal["113", "114"] | None = None  # unset: from the call's UUID
    audiosocket_language: Literal["vi", "en"] = "vi"
    webrtc_enabled: bool = True  # the browser softphone at /phone
    webrtc_max_calls: int = Field(default=20, ge=1)
    webrtc_connect_timeout_s: float = Field(default=15.0, gt=0)

    # Supervisor review: the scoring form (JSON list of questions; default built in)
    review_form_file: Path | None = None

    # Call recordings (both sides), kept under DATA_DIR/recordings
    recordings_enabled: bool = True
    recording_retention_days: float = Field(default=90.0, gt=0)
    # turns and caller numbers of ended calls; the call record and incident stay
    transcript_retention_days: float = Field(default=365.0, gt=0)

    def production_problems(self) -> list[str]:
        """Why this configuration must not take real calls (empty when it may)."""
        problems: list[str] = []
        if self.cookie_secure != "always":
            problems.append("CALLBOT_COOKIE_SECURE must be 'always' (serve staff pages over https)")
        if self.rasa_url and not _strong(self.rasa_token):
            problems.append("CALLBOT_RASA_TOKEN must be a long random secret for an external Rasa")
        if self.database_url:
            url = make_url(self.database_url)
            remote = url.host not in (None, "", "localhost", "127.0.0.1", "::1")
            if url.get_backend_name() == "postgresql" and remote and not _strong(url.password):
                problems.append(
                    "the PostgreSQL password in CALLBOT_DATABASE_URL is missing or weak"
                )
        if self.log_level.upper() == "DEBUG":
            problems.append("CALLBOT_LOG_LEVEL=DEBUG would log transcripts and caller numbers")
        return problems

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'callbot.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


_WEAK_SECRETS = frozenset(
    {"changeme", "password", "secret", "postgres", "callbot", "admin", "test"}
)


def _strong(secret: str | None) -> bool:
    """At least 16 characters and not a well-known default."""
    return secret is not None and len(secret) >= 16 and secret.lower() not in _WEAK_SECRETS
