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
    # A short code or an alphanumeric sender id: printable ASCII, at most 20 octets (SMPP 3.4).
    smpp_source_addr: str = Field("12122", pattern=r"^[ -~]{1,20}$")
    # Submits per second on this link, shared by every worker process through Redis.
    smpp_tps: float = Field(500.0, gt=0)
    # Unacknowledged submit_sm on the link at once (SMPP window).
    smpp_window: int = Field(64, ge=1, le=1000)
    # Of the window, how many bulk (reminder) parts may be in flight: the rest is kept for
    # accident alerts and other priority notices, which then wait behind few bulk parts.
    smpp_bulk_window: int = Field(16, ge=1, le=1000)
    smpp_enquire_link_seconds: float = Field(30.0, gt=0)
    smpp_response_timeout: float = Field(30.0, gt=0)
    # How long a carrier id -> notice mapping waits for its receipt.
    smpp_receipt_ttl_hours: float = Field(72.0, gt=0)
    # Back-off for ESME_RTHROTTLED / ESME_RMSGQFUL, doubled per retry up to the cap.
    smpp_throttle_backoff: float = Field(0.5, gt=0)
    smpp_throttle_backoff_max: float = Field(30.0, gt=0)
    # deliver_sm (receipts, MO) read and not yet answered (they are answered once stored);
    # past this the socket is not read until answers go out, so the SMSC waits instead.
    smpp_unanswered_max: int = Field(5000, ge=1)
    # Wait before binding again after a lost session, doubled per failed bind up to the cap.
    smpp_reconnect_min: float = Field(0.5, gt=0)
    smpp_reconnect_max: float = Field(30.0, gt=0)
    # A separate link (carriers sell bulk/marketing SMS on its own account) for workers that
    # serve only the bulk lane; empty/0 means the same as the priority link.
    smpp_bulk_host: str = ""
    smpp_bulk_port: int = Field(0, ge=0, le=65535)
    smpp_bulk_system_id: str = Field("", max_length=15)
    smpp_bulk_password: SecretStr = Field(SecretStr(""), max_length=8)
    smpp_bulk_tps: float = Field(0.0, ge=0)

    def link(self, bulk: bool) -> tuple[str, int, str, str, float]:
        """(host, port, system_id, password, tps) of the priority or the bulk link."""
        main = (
            self.smpp_host,
            self.smpp_port,
            self.smpp_system_id,
            self.smpp_password.get_secret_value(),
            self.smpp_tps,
        )
        if not bulk:
            return main
        return (
            self.smpp_bulk_host or main[0],
            self.smpp_bulk_port or main[1],
            self.smpp_bulk_system_id or main[2],
            self.smpp_bulk_password.get_secret_value() or main[3],
            self.smpp_bulk_tps or main[4],
        )


class AmiSettings(BaseSettings):
    model_config = _config()
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_username: str = Field("gateway", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ami_secret: SecretStr = Field(SecretStr("gateway-ami"), min_length=1)
    # Which addresses the AMI user may log in from (Asterisk permit syntax).
    ami_permit: str = "127.0.0.1/255.0.0.0"


class AgiSettings(BaseSettings):
    model_config = _config()
    # Where the FastAGI server listens and where the dialplan's AGI() points.
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
    agi_session_timeout: float = Field(120.0, gt=0)


class SipSettings(BaseSettings):
    model_config = _config()
    # Asterisk's own SIP listener, and the carrier trunk it sends calls to.
    sip_bind_host: str = "127.0.0.1"
    sip_bind_port: int = Field(5060, ge=1, le=65535)
    sip_trunk_host: str = "127.0.0.1"
    sip_trunk_port: int = Field(5070, ge=1, le=65535)
    sip_trunk_username: str = ""
    sip_trunk_password: SecretStr = SecretStr("")
    # auto_info: RFC 4733 when the carrier offers it, SIP INFO otherwise.
    sip_dtmf_mode: str = Field("auto_info", pattern=r"^(rfc4733|inband|info|auto|auto_info)$")


class VoiceSettings(BaseSettings):
    model_config = _config()
    # Workers place calls only when this is on (an SMS-only gateway turns it off).
    voice_enabled: bool = True
    # Where calls go; {number} is the national number. Tests use Local/{number}@sink.
    voice_channel: str = "PJSIP/{number}@carrier"
    max_calls: int = Field(50, ge=1, le=5000)
    calls_per_second: float = Field(10.0, gt=0)
    ring_seconds: int = Field(30, ge=5, le=120)
    voice_attempts: int = Field(3, ge=1, le=10)
    voice_retry_seconds: float = Field(120.0, ge=0)
    tts_engine: str = Field("espeak", pattern=r"^(espeak|gtts)$")
    # gTTS's web endpoint (empty: Google's); for a proxy or a stand-in.
    gtts_url: str = ""
    audio_dir: str = "audio"
    timezone: str = "Asia/Shanghai"
    # Local time range with no calls (SMS instead); empty turns quiet hours off.
    quiet_hours: str = Field("22:00-07:00", pattern=r"^$|^\d{2}:\d{2}-\d{2}:\d{2}$")
    reminder_window_days: int = Field(365, ge=1, le=3650)


class BindingSettings(BaseSettings):
    model_config = _config()
    # How long a binding request's SMS code is valid, and how many wrong codes end it.
    binding_code_ttl: int = Field(600, ge=30, le=86400)
    binding_max_attempts: int = Field(3, ge=1, le=10)
    # Binding requests per phone per day (UTC): bounds the SMS a seat can send to one phone.
    binding_daily_limit: int = Field(5, ge=1, le=100)


class JobSettings(BaseSettings):
    model_config = _config()
    # Reminder jobs send only inside this local time window (GATEWAY_TIMEZONE), by default.
    job_send_window: str = Field("08:00-21:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    job_default_rate: float = Field(1000.0, gt=0)  # messages/s per job unless the job says
    job_max_rows: int = Field(2_000_000, ge=1)
    # Bulk entries waiting in the queues at most: bounds how far a cancel lags, and memory.
    job_backlog: int = Field(5000, ge=100)
    reminder_daily_cap: int = Field(3, ge=0)  # reminders per recipient per day; 0: no cap
    reminder_dedup_hours: float = Field(24.0, ge=0)  # same template, same person; 0: off


class SmtpSettings(BaseSettings):
    model_config = _config()
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "notices@traffic-police.invalid"
    # Implicit TLS (port 465) or STARTTLS after connecting; both off for a local relay.
    smtp_tls: bool = False
    smtp_starttls: bool = False
    smtp_timeout: float = Field(30.0, gt=0)
    smtp_concurrency: int = Field(8, ge=1, le=256)
    smtp_attempts: int = Field(5, ge=1, le=50)


class WorkerSettings(BaseSettings):
    model_config = _config()
    # What a worker process serves: "priority" (accident alerts, parking notices, binding
    # codes, webhooks, MO, voice), "bulk" (reminder jobs: their SMS bind, email, the
    # dispatcher), or both. Bulk workers may run at a lower CPU priority: nice, or Linux's
    # SCHED_IDLE policy (the CPU only when nothing else wants it; anything else that wakes up
    # takes it over at once, so an accident alert never waits for a bulk worker's time slice).
    worker_lanes: str = Field("priority,bulk", pattern=r"^(priority|bulk)(,(priority|bulk))?$")
    worker_nice: int = Field(0, ge=0, le=19)
    worker_sched_idle: bool = False
    # A consumer whose heartbeat is older than this is dead; its pending entries are reclaimed.
    consumer_dead_after: float = Field(15.0, gt=0)
    heartbeat_seconds: float = Field(3.0, gt=0)
    # Queue entries read at once. Reading 200 took Redis about 1 ms under a bulk job on a slow
    # host, time an accident alert's commands wait; 100 keep it near half that.
    stream_batch: int = Field(100, ge=1)


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
        self.ami = AmiSettings(**kw)  # type: ignore[arg-type]
        self.agi = AgiSettings(**kw)  # type: ignore[arg-type]
        self.sip = SipSettings(**kw)  # type: ignore[arg-type]
        self.voice = VoiceSettings(**kw)  # type: ignore[arg-type]
        self.binding = BindingSettings(**kw)  # type: ignore[arg-type]
        self.jobs = JobSettings(**kw)  # type: ignore[arg-type]
        self.smtp = SmtpSettings(**kw)  # type: ignore[arg-type]
