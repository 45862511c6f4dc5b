"""The settings groups: one per dependency, and a general group for what several share.

Each group reads its own flat ``GATEWAY_<FIELD>`` names; secrets are ``SecretStr`` so that
``repr`` and logs never show them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from gateway.settings.base import config
from gateway.store.keys import Keys

_WINDOW = r"^\d{2}:\d{2}-\d{2}:\d{2}$"


class GeneralSettings(BaseSettings):
    """Values several dependencies share: where the gateway runs, and its local time."""

    model_config = config()
    # production refuses the shipped default secrets at start-up; local is the local stack.
    env: Literal["local", "production"] = "local"
    # Quiet hours and send windows are local times in this zone.
    timezone: str = "Asia/Shanghai"
    # Local time range with no calls (SMS instead); empty turns quiet hours off.
    quiet_hours: str = Field("22:00-07:00", pattern=r"^$|" + _WINDOW)
    # Reminder jobs send only inside this local time window, by default.
    job_send_window: str = Field("08:00-21:00", pattern=_WINDOW)


class RedisSettings(BaseSettings):
    model_config = config()
    # One Redis; with redis_sentinels set only its database, username and password are used.
    # redis+cluster://[user:password@]host:port,host:port,... is Redis Cluster mode: the
    # nodes named are where the client first asks for the cluster's slot map.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "gw"
    # Lanes the shared queues, outbox, sets and streams are kept in (docs/redis-cluster.md):
    # every reader walks them all. Fixed for a deployment's data.
    redis_lanes: int = Field(1, ge=1, le=64)
    # Sentinel mode: host:port of each sentinel, comma-separated; the primary of
    # redis_service is asked of them, and asked again after a failover.
    redis_sentinels: str = Field(
        "", pattern=r"^$|^[A-Za-z0-9_.\[\]:-]+:\d{1,5}(,[A-Za-z0-9_.\[\]:-]+:\d{1,5})*$"
    )
    redis_service: str = Field("gateway", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    redis_sentinel_password: SecretStr = SecretStr("")
    # Replicas that must have a write an acknowledgement depends on (a 202 for a new notice
    # or job, a receipt answered to the SMSC) before it is given; 0: not waited for. Unset:
    # 1 in Sentinel and Cluster mode (a failover then loses nothing acknowledged), else 0.
    redis_wait_replicas: int | None = Field(None, ge=0, le=16)
    redis_wait_timeout_ms: int = Field(500, ge=1, le=60000)

    @model_validator(mode="after")
    def _one_mode(self) -> RedisSettings:
        if self.cluster_nodes() and self.redis_sentinels:
            raise ValueError("redis_url names a cluster: redis_sentinels must be empty")
        return self

    def keys(self) -> Keys:
        """The key names of this Redis's data: its prefix, its lanes."""
        return Keys(self.redis_prefix, self.redis_lanes)

    def replicas_to_wait(self) -> int:
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinels or self.cluster_nodes() else 0

    def cluster_nodes(self) -> list[tuple[str, int]]:
        """The nodes of a ``redis+cluster://`` URL as (host, port); empty for one Redis."""
        scheme, sep, rest = self.redis_url.partition("://")
        if scheme != "redis+cluster" or not sep:
            return []
        nodes = rest.rpartition("@")[2].split("/")[0]
        out = []
        for item in nodes.split(","):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"redis_url: {item!r} is not host:port")
            out.append((host.strip("[]"), int(port)))
        return out

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port); empty when Redis is one server."""
        out = []
        for item in filter(None, self.redis_sentinels.split(",")):
            host, _, port = item.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out


class HttpSettings(BaseSettings):
    model_config = config()
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # Request budget: bodies above this are refused with 413 before parsing.
    http_max_body: int = Field(64 * 1024, ge=1024)
    # Slow clients: a request's line and headers must arrive within this of its first byte,
    # a JSON body within http_body_timeout; an idle keep-alive connection is closed after
    # http_keepalive_timeout (aiohttp's own default is an hour).
    http_header_timeout: float = Field(10.0, gt=0)
    http_body_timeout: float = Field(30.0, gt=0)
    http_keepalive_timeout: float = Field(75.0, gt=0)


class AmiSettings(BaseSettings):
    model_config = config()
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_username: str = Field("gateway", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ami_secret: SecretStr = Field(SecretStr("gateway-ami"), min_length=1)
    # Which addresses the AMI user may log in from (Asterisk permit syntax).
    ami_permit: str = "127.0.0.1/255.0.0.0"


class AgiSettings(BaseSettings):
    model_config = config()
    # Where the FastAGI server listens and where the dialplan's AGI() points.
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
    agi_session_timeout: float = Field(120.0, gt=0)
    # host:port at which Asterisk reaches THIS process's FastAGI server. Every call carries
    # it, so the flow's result comes back to the worker that placed the call, however many
    # workers share one Asterisk. Empty: agi_host:agi_port, or this host's name when agi_host
    # is a wildcard address.
    agi_advertise: str = Field("", pattern=r"^$|^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$")
    # Who may open a FastAGI session: addresses or networks, comma-separated. Empty: the
    # AMI host (where Asterisk runs) and loopback.
    agi_allow: str = ""
    # The token the dialplan hands to inbound flows (the binding line), rendered into
    # extensions.conf; outbound calls carry a token of their own per attempt.
    agi_secret: SecretStr = SecretStr("local-agi-secret")

    @field_validator("agi_secret")
    @classmethod
    def _dialplan_safe(cls, value: SecretStr) -> SecretStr:
        # It is written into extensions.conf: no character the dialplan would read as syntax.
        if not re.fullmatch(r"[A-Za-z0-9_.~+/=-]{1,128}", value.get_secret_value()):
            raise ValueError("1-128 characters of A-Z a-z 0-9 _ . ~ + / = -")
        return value


class SipSettings(BaseSettings):
    model_config = config()
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
    model_config = config()
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
    reminder_window_days: int = Field(365, ge=1, le=3650)
    # Parking notices (calls, or SMS in quiet hours) to one plate's owner per hour at most,
    # however many officers report the car; 0: no limit.
    plate_calls_per_hour: int = Field(3, ge=0, le=1000)


class BindingSettings(BaseSettings):
    model_config = config()
    # How long a binding request's SMS code is valid, and how many wrong codes end it.
    binding_code_ttl: int = Field(600, ge=30, le=86400)
    binding_max_attempts: int = Field(3, ge=1, le=10)
    # Binding requests per phone per day (UTC): bounds the SMS a seat can send to one phone.
    binding_daily_limit: int = Field(5, ge=1, le=100)


class JobSettings(BaseSettings):
    model_config = config()
    job_default_rate: float = Field(1000.0, gt=0)  # messages/s per job unless the job says
    job_max_rows: int = Field(2_000_000, ge=1)
    # A reminder-job upload (CSV or JSON) is refused with 413 past this many bytes, and with
    # 408 when it has not all arrived after job_upload_timeout seconds.
    job_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    job_upload_timeout: float = Field(600.0, gt=0)
    # Bulk entries waiting in the queues at most: bounds how far a cancel lags, and memory.
    job_backlog: int = Field(5000, ge=100)
    reminder_daily_cap: int = Field(3, ge=0)  # reminders per recipient per day; 0: no cap
    reminder_dedup_hours: float = Field(24.0, ge=0)  # same template, same person; 0: off


class FollowUpSettings(BaseSettings):
    """What comes after a notice: replies to accident alerts, and the audit trail's life."""

    model_config = config()
    # A reporter's SMS this long after their latest accident alert is taken as a reply to it.
    accident_reply_hours: float = Field(2.0, gt=0, le=72)
    # Audit entries (who notified whom) older than this are trimmed.
    audit_retention_days: int = Field(365, ge=1, le=3650)
    # How often a worker counts missing follow-ups and trims the audit trail.
    housekeeping_seconds: float = Field(60.0, gt=0)


class SmtpSettings(BaseSettings):
    model_config = config()
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
    model_config = config()
    # What a worker process serves: "priority" (accident alerts, parking notices, binding
    # codes, webhooks, MO, voice), "bulk" (reminder jobs: their SMS bind, email, the
    # dispatcher), or both. Bulk workers may run at a lower CPU priority: nice, or Linux's
    # SCHED_IDLE policy (the CPU only when nothing else wants it; anything else that wakes up
    # takes it over at once, so an accident alert never waits for a bulk worker's time slice).
    worker_lanes: str = Field("priority,bulk", pattern=r"^(priority|bulk)(,(priority|bulk))?$")
    worker_nice: int = Field(0, ge=0, le=19)
    worker_sched_idle: bool = False
    # A consumer whose heartbeat is older than this is dead; its pending entries are reclaimed.
    consumer_dead_after: float = Field(10.0, gt=0)
    heartbeat_seconds: float = Field(3.0, gt=0)
    # Queue entries read at once. Reading 200 took Redis about 1 ms under a bulk job on a slow
    # host, time an accident alert's commands wait; 100 keep it near half that.
    stream_batch: int = Field(100, ge=1)


class WebhookSettings(BaseSettings):
    model_config = config()
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_concurrency: int = Field(256, ge=1)
    # POSTs in flight to one callback host (host:port) at most: a dead host cannot take the
    # shared slots from the others.
    webhook_host_concurrency: int = Field(64, ge=1)
    # A host that times out (or cannot be reached) this many times in a row is parked this
    # long: its webhooks are not tried, and go on along their retry schedule.
    webhook_breaker_failures: int = Field(5, ge=1)
    webhook_breaker_seconds: float = Field(60.0, gt=0)
    webhook_first_retry: float = Field(5.0, gt=0)
    webhook_max_retry_interval: float = Field(1800.0, gt=0)
    # Retries go on for this long before the callback moves to the dead-letter list.
    webhook_give_up_after: float = Field(8 * 3600.0, gt=0)


class ApiSettings(BaseSettings):
    model_config = config()
    # Default per-key rate limit (requests per second and burst) for keys made without one.
    default_rate: float = Field(50.0, gt=0)
    default_burst: int = Field(100, ge=1)
    idempotency_ttl_hours: float = Field(24.0, gt=0)


class ConsoleSettings(BaseSettings):
    """The command-centre console (/console/) and the event stream it reads."""

    model_config = config()
    # A console session ends after this many minutes without a request the operator made.
    console_session_minutes: float = Field(30.0, gt=0, le=24 * 60)
    # Set the cookie's Secure flag from X-Forwarded-Proto: only behind a TLS proxy that sets it.
    console_trust_forwarded_proto: bool = False
    # A comment line on every idle event stream this often, so proxies keep it open.
    events_heartbeat_seconds: float = Field(15.0, gt=0, le=300)


class SimulatorSettings(BaseSettings):
    model_config = config()
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(2775, ge=0, le=65535)
    sim_receipt_delay: float = Field(0.2, ge=0)


class SmppThrottleSettings(BaseSettings):
    """How a link slows when its SMSC throttles (ESME_RTHROTTLED, ESME_RMSGQFUL): the link's
    shared rate is cut (AIMD) and the throttled part alone waits its back-off
    (GATEWAY_SMPP_THROTTLE_BACKOFF); every other part keeps going."""

    model_config = config()
    # The rate is multiplied by this on throttling, at most once per hold.
    smpp_throttle_decrease: float = Field(0.5, gt=0, lt=1)
    smpp_throttle_hold: float = Field(1.0, ge=0)
    # Share of the link's tps the rate regains each second, and the share it never goes below.
    smpp_throttle_increase: float = Field(0.05, gt=0, le=10)
    smpp_throttle_floor: float = Field(0.1, gt=0, le=1)
