"""Typed settings, one group per dependency plus a general group, from ``GATEWAY_*`` names.

Only the edges (CLI, app factory) build these; everything else receives a group as argument.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from gateway.settings.groups import (
    AgiSettings,
    AmiSettings,
    ApiSettings,
    BindingSettings,
    ConsoleSettings,
    FollowUpSettings,
    GeneralSettings,
    HttpSettings,
    JobSettings,
    RedisSettings,
    SimulatorSettings,
    SipSettings,
    SmppThrottleSettings,
    SmtpSettings,
    VoiceSettings,
    WebhookSettings,
    WorkerSettings,
)
from gateway.settings.production import UnsafeSettings, unsafe_defaults
from gateway.settings.security import SecuritySettings
from gateway.settings.smpp import SmppSettings
from gateway.settings.smpp_links import LANES, LEGACY_BULK, SUFFIXES, SmppLink, link_var

__all__ = [
    "LANES",
    "SUFFIXES",
    "AgiSettings",
    "AmiSettings",
    "ApiSettings",
    "BindingSettings",
    "ConsoleSettings",
    "FollowUpSettings",
    "GeneralSettings",
    "HttpSettings",
    "JobSettings",
    "RedisSettings",
    "SecuritySettings",
    "Settings",
    "SimulatorSettings",
    "SipSettings",
    "SmppLink",
    "SmppSettings",
    "SmppThrottleSettings",
    "SmtpSettings",
    "UnsafeSettings",
    "VoiceSettings",
    "WebhookSettings",
    "WorkerSettings",
    "link_var",
]


class Settings:
    """All settings of one process, each group read separately from the same sources.

    With ``GATEWAY_ENV=production`` a shipped default secret raises ``UnsafeSettings``.
    """

    def __init__(self, env_file: str | Path | None = None) -> None:
        kw: dict[str, object] = {"_env_file": str(env_file)} if env_file else {}
        self.general = GeneralSettings(**kw)  # type: ignore[arg-type]
        self.redis = RedisSettings(**kw)  # type: ignore[arg-type]
        self.http = HttpSettings(**kw)  # type: ignore[arg-type]
        self.smpp = SmppSettings(**kw)  # type: ignore[arg-type]
        self.smpp_throttle = SmppThrottleSettings(**kw)  # type: ignore[arg-type]
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
        self.follow_up = FollowUpSettings(**kw)  # type: ignore[arg-type]
        self.security = SecuritySettings(**kw)  # type: ignore[arg-type]
        self.console = ConsoleSettings(**kw)  # type: ignore[arg-type]
        if self.general.env == "production":
            problems = unsafe_defaults(self)
            if problems:
                raise UnsafeSettings(problems)

    def groups(self) -> dict[str, BaseSettings]:
        """Group name -> group, e.g. ``"smpp"`` -> ``SmppSettings``."""
        return {k: v for k, v in vars(self).items() if isinstance(v, BaseSettings)}

    def env_names(self) -> set[str]:
        """Every fixed ``GATEWAY_*`` name read: the groups' fields, and the single-link bulk
        account's names (the other per-link SMPP names depend on GATEWAY_SMPP_LINKS)."""
        groups = self.groups().values()
        fields = {f"GATEWAY_{f.upper()}" for g in groups for f in type(g).model_fields}
        return fields | {link_var("bulk", suffix) for suffix in LEGACY_BULK}
