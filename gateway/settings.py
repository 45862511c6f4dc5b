"""Typed settings, one object per dependency, read from ``GATEWAY_*`` variables.

Only the edges (CLI, app factory) build these; everything else receives them as arguments.
Secrets are ``SecretStr`` so that ``repr`` and logs never show them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _config(env_file: str | None = None) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix="GATEWAY_", env_file=env_file, extra="ignore", frozen=True)


class RedisSettings(BaseSettings):
    model_config = _config()
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "gw"


class HttpSettings(BaseSettings):
    model_config = _config()
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # Request budget: bodies above this are refused with 413 before parsing.
    http_max_body: int = Field(64 * 1024, ge=1024)


class SmppSettings(BaseSettings):
    model_config = _config()
    smpp_host: str = "127.0.0.1"
    smpp_port: int = Field(2775, ge=1, le=65535)
    smpp_system_id: str = Field("gateway", max_length=15)
    # SMPP 3.4 limits the bind password to 8 octets.
    smpp_password: SecretStr = Field(SecretStr("secret"), max_length=8)
    smpp_system_type: str = Field("", max_length=12)
    smpp_source_addr: str = Field("12122", max_length=20)
    # Submits per second on this link, shared by every worker process through Redis.
    smpp_tps: float = Field(500.0, gt=0)
    # Unacknowledged submit_sm on the link at once (SMPP window).
    smpp_window: int = Field(64, ge=1, le=1000)
    smpp_enquire_link_seconds: float = Field(30.0, gt=0)
    smpp_response_timeout: float = Field(30.0, gt=0)
    # How long a carrier id -> notice mapping waits for its receipt.
    smpp_receipt_ttl_hours: float = Field(72.0, gt=0)
    # Back-off for ESME_RTHROTTLED / ESME_RMSGQFUL, doubled per retry up to the cap.
    smpp_throttle_backoff: float = Field(0.5, gt=0)
    smpp_throttle_backoff_max: float = Field(30.0, gt=0)


class WorkerSettings(BaseSettings):
    model_config = _config()
    # A consumer whose heartbeat is older than this is dead; its pending entries are reclaimed.
    consumer_dead_after: float = Field(15.0, gt=0)
    heartbeat_seconds: float = Field(3.0, gt=0)
    stream_batch: int = Field(200, ge=1)


class WebhookSettings(BaseSettings):
    model_config = _config()
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_concurrency: int = Field(256, ge=1)
    webhook_first_retry: float = Field(5.0, gt=0)
    webhook_max_retry_interval: float = Field(1800.0, gt=0)
    # Retries go on for this long before the callback moves to the dead-letter list.
    webhook_give_up_after: float = Field(8 * 3600.0, gt=0)


class ApiSettings(BaseSettings):
    model_config = _config()
    # Default per-key rate limit (requests per second and burst) for keys made without one.
    default_rate: float = Field(50.0, gt=0)
    default_burst: int = Field(100, ge=1)
    idempotency_ttl_hours: float = Field(24.0, gt=0)


class SimulatorSettings(BaseSettings):
    model_config = _config()
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(2775, ge=0, le=65535)
    sim_receipt_delay: float = Field(0.2, ge=0)


class Settings:
    """All settings of one process, each dependency's read separately."""

    def __init__(self, env_file: str | Path | None = None) -> None:
        kw: dict[str, object] = {"_env_file": str(env_file)} if env_file else {}
        self.redis = RedisSettings(**kw)  # type: ignore[arg-type]
        self.http = HttpSettings(**kw)  # type: ignore[arg-type]
        self.smpp = SmppSettings(**kw)  # type: ignore[arg-type]
        self.worker = WorkerSettings(**kw)  # type: ignore[arg-type]
        self.webhook = WebhookSettings(**kw)  # type: ignore[arg-type]
        self.api = ApiSettings(**kw)  # type: ignore[arg-type]
        self.simulator = SimulatorSettings(**kw)  # type: ignore[arg-type]
