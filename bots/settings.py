"""Yimen's settings: the only place that reads the environment.

Every setting comes from a ``YIMEN_*`` environment variable or a ``.env`` file in the
working directory. With none set, Yimen runs on its embedded defaults: a SQLite file
under ./var/, in-process state, the embedded NLU and the local dispatch desk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integration.handoff_hours import DEFAULT_HOURS
from nlu.types import DEFAULT_MARGIN, DEFAULT_THRESHOLD


def default_model_cache() -> Path:
    """The user's shared model cache: $XDG_CACHE_HOME/yimen/models (~/.cache/yimen/models)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "yimen" / "models"


class Settings(BaseSettings):
    """Typed configuration, read once by the composition root."""

    model_config = SettingsConfigDict(
        env_prefix="YIMEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("var")
    # Trained NLU models, shared by every data directory and checkout of the user's
    # (keyed by the training-data fingerprint). Empty: <user cache dir>/yimen/models.
    model_cache: Path | None = None
    # The service catalogue (integration/services/catalogue.yml format); empty: the shipped one.
    service_catalogue: Path | None = None
    database_url: str = ""  # default: sqlite+aiosqlite:///<data_dir>/yimen.db
    # PostgreSQL connections each worker keeps open; empty: integration.db.POOL_SIZE.
    database_pool_size: int | None = Field(None, ge=1)
    redis_url: str = ""  # empty: in-process state (one worker only)
    redis_prefix: str = "yimen"
    redis_cluster: bool = False  # YIMEN_REDIS_URL names a node of a Redis Cluster
    nlu_backend: Literal["embedded", "rasa"] = "embedded"
    nlu_threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    nlu_margin: float = Field(DEFAULT_MARGIN, ge=0.0, le=1.0)
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: str = ""
    rasa_timeout: float = Field(2.0, gt=0)
    # The dispatch platform cases are forwarded to (integration/dispatch/).
    dispatch: Literal["local", "open311", "webhook"] = "local"
    open311_url: str = ""  # GeoReport v2 endpoint root, e.g. https://311.example.gov/v2/
    open311_api_key: str = ""
    open311_jurisdiction: str = ""
    dispatch_url: str = ""  # the generic REST platform's case endpoint (dispatch=webhook)
    dispatch_secret: str = ""  # HMAC-SHA256 key for its status callbacks
    dispatch_callback_url: str = ""  # our /dispatch/callback as the platform reaches it
    open311_format: Literal["json", "xml"] = "json"  # the suffix of every GeoReport call
    open311_map: Path | None = None  # category/status mapping file; default: the shipped one
    dispatch_timeout: float = Field(10.0, gt=0)  # seconds per platform request
    dispatch_lease: float = Field(60.0, gt=0)  # a claimed job is one worker's this long
    dispatch_batch: int = Field(50, ge=1)  # jobs claimed at once
    dispatch_concurrency: int = Field(16, ge=1)  # platform requests in flight at once
    dispatch_backoff: float = Field(2.0, gt=0)  # first retry delay, doubled each time
    dispatch_backoff_max: float = Field(900.0, gt=0)
    dispatch_max_attempts: int = Field(12, ge=1)  # then the case waits for staff
    dispatch_poll_interval: float = Field(1.0, gt=0)  # seconds between outbox looks
    dispatch_status_interval: float = Field(60.0, ge=0)  # status polling; 0 turns it off
    dispatch_callback_tolerance: float = Field(300.0, gt=0)  # signed callbacks' max age
    rating_reminder_after: float = Field(86_400.0, gt=0)  # one reminder after this
    # WeChat Official Account (bots/wechat.py); the channel is on when the token is set.
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""  # EncodingAESKey: safe mode when set
    wechat_api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    wechat_template_status: str = ""  # template id for status pushes outside the 48 h window
    wechat_deadline: float = Field(4.0, gt=0, lt=5)  # passive-reply budget; WeChat waits 5 s
    wechat_rate: float = Field(0.0, ge=0)  # customer/template messages per second; 0: unpaced
    # Telegram (bots/telegram.py); long polling when the token is set, webhook with the URL.
    telegram_token: str = ""
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_rate: float = Field(30.0, gt=0)  # messages per second, all chats together
    telegram_chat_interval: float = Field(1.0, ge=0)  # seconds between two to one chat
    max_text_length: int = Field(2000, ge=10)
    rate_limit: int = Field(30, ge=1)  # messages per user per rate window
    rate_window: float = Field(60.0, gt=0)
    # The same message (text or button, at one step) more than this many times in a
    # rate window, counted once the resident has sent more than this many messages in
    # it: the next copy hears the slow-down notice, later ones get no answer.
    repeat_limit: int = Field(5, ge=1)
    quiet_period: float = Field(600.0, gt=0)  # silence after repeated insults or nonsense
    state_ttl: float = Field(3 * 86_400.0, gt=0)
    # The day before a booking, at this local hour (Asia/Shanghai), its reminder is due.
    appointment_reminder_hour: int = Field(16, ge=0, le=23)
    # Human handoff: when staff answer (ISO weekdays and sessions; 错时服务 on Saturday
    # mornings), holidays from the service calendar, and how long a resident may wait
    # in those hours before the on-duty member is alarmed (off hours: the promised time).
    handoff_hours: str = DEFAULT_HOURS
    handoff_sla: float = Field(300.0, gt=0)
    push_poll_interval: float = Field(1.0, gt=0)
    push_timeout: float = Field(30.0, gt=0, lt=60)  # one push's send; then it is retried
    # A claimed push is this process's this long: a process killed mid-send leaves its
    # pushes to be claimed again (and sent at least once) when the lease ends.
    push_lease: float = Field(60.0, gt=0)
    # SIGTERM: stop accepting, finish the messages and pushes in hand, close idle web
    # chat sockets (1001), and exit within this many seconds (docs/operations.md).
    shutdown_timeout: float = Field(10.0, gt=0)
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    # Security (README: Security). Empty: a random key kept in <data_dir>/secret.key.
    secret_key: str = ""
    allowed_origins: str = ""  # comma-separated origins allowed beside the page's own
    trusted_proxies: str = ""  # comma-separated addresses/CIDRs whose X-Forwarded-* we believe
    header_timeout: float = Field(15.0, gt=0)  # seconds to receive a request's headers
    webchat_send_timeout: float = Field(5.0, gt=0)  # a page not reading by then is dropped
    webchat_connection_limit: int = Field(30, ge=1)  # messages per socket per rate window
    webchat_address_limit: int = Field(120, ge=1)  # messages per address per rate window
    webchat_address_sockets: int = Field(20, ge=1)  # open sockets per address (per process)
    webchat_history: int = Field(100, ge=0)  # lines a page gets when it connects
    upload_daily_count: int = Field(30, ge=1)  # photos per visitor per 24 h
    upload_daily_bytes: int = Field(60 * 1024 * 1024, ge=1024)
    upload_address_limit: int = Field(30, ge=1)  # uploads per address per 10 minutes
    upload_concurrency: int = Field(4, ge=1)  # uploads received at once (per process)
    upload_ttl: float = Field(86_400.0, gt=0)  # an upload no message used is deleted after
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    nlu_inline_chars: int = Field(200, ge=1)  # longer messages are parsed off the event loop
    nlu_max_chars: int = Field(1000, ge=10)  # the NLU reads at most this much of a message
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for collectors

    @field_validator("service_catalogue", "model_cache", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """An empty path (YIMEN_SERVICE_CATALOGUE=) means its default, not the working directory."""
        return None if value == "" else value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'yimen.db'}"

    @property
    def model_dir(self) -> Path:
        """Where trained NLU models are cached: shared by all data directories."""
        return self.model_cache or default_model_cache()

    @property
    def model_dirs(self) -> tuple[Path, ...]:
        """Where a trained model is looked for: the data directory's own, then the cache."""
        return (self.data_dir / "models", self.model_dir)

    @property
    def origins(self) -> tuple[str, ...]:
        """The extra origins allowed to open chat sockets and upload."""
        return tuple(o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip())

    @property
    def proxies(self) -> tuple[str, ...]:
        """The reverse proxies whose X-Forwarded-For and -Proto are believed."""
        return tuple(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def media_dir(self) -> Path:
        """Where photos uploaded through the web chat are kept."""
        return self.data_dir / "media"
