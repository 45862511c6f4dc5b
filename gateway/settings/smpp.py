"""SMPP settings: the session's timers, and the named links (see ``smpp_links``)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)

from gateway.settings.base import config
from gateway.settings.smpp_links import (
    LANES,
    BindPassword,
    Port,
    SmppLink,
    SourceAddr,
    SystemId,
    SystemType,
    Tps,
    Window,
    parse_links,
)

# Where the raw GATEWAY_SMPP_* variables travel from the sources to the link parser.
_RAW = "__smpp_env__"


class _SmppEnv(PydanticBaseSettingsSource):
    """Every ``GATEWAY_SMPP_*`` variable as given: link names are not fields of the model."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        raw: dict[str, str] = {}
        for source in self._sources:  # the file first, so the environment wins
            for name, value in source.env_vars.items():
                if value is not None and name.upper().startswith("GATEWAY_SMPP_"):
                    raw[name.upper()] = value
        return {_RAW: raw}


class SmppSettings(BaseSettings):
    model_config = config()
    # Link main's values (its GATEWAY_SMPP_MAIN_* names win over these).
    smpp_host: str = "127.0.0.1"
    smpp_port: Port = 2775
    smpp_system_id: SystemId = "gateway"
    smpp_password: BindPassword = SecretStr("secret")
    smpp_system_type: SystemType = ""
    smpp_source_addr: SourceAddr = "12122"
    smpp_tps: Tps = 500.0
    # Unacknowledged submit_sm on the link at once (SMPP window).
    smpp_window: Window = 64
    # Of the window, how many bulk (reminder) parts may be in flight: the rest is kept for
    # accident alerts and other priority notices, which then wait behind few bulk parts.
    smpp_bulk_window: Window = 16
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
    # The named links, e.g. "main,bulk"; empty means main (plus bulk when the older
    # GATEWAY_SMPP_BULK_* names are set).
    smpp_links: str = ""
    _links: tuple[SmppLink, ...] = PrivateAttr(())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = [s for s in (dotenv_settings, env_settings) if isinstance(s, EnvSettingsSource)]
        raw = _SmppEnv(settings_cls, *files)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, raw

    @model_validator(mode="wrap")
    @classmethod
    def _read_links(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        raw: dict[str, str] = {}
        if isinstance(data, dict):
            raw = data.get(_RAW, {})
            data = {k: v for k, v in data.items() if k != _RAW}
        self = handler(data)
        main = {
            "host": self.smpp_host,
            "port": self.smpp_port,
            "system_id": self.smpp_system_id,
            "password": self.smpp_password,
            "system_type": self.smpp_system_type,
            "source_addr": self.smpp_source_addr,
            "tps": self.smpp_tps,
            "window": self.smpp_window,
            "bulk_window": self.smpp_bulk_window,
        }
        flat = frozenset(f"GATEWAY_{name.upper()}" for name in type(self).model_fields)
        try:
            self._links = parse_links(self.smpp_links, main, raw, flat)
        except ValueError as exc:
            raise PydanticCustomError("smpp_links", "{problem}", {"problem": str(exc)}) from None
        return self

    def links(self) -> tuple[SmppLink, ...]:
        """The configured links, in GATEWAY_SMPP_LINKS order."""
        return self._links

    def links_for(self, lanes: frozenset[str]) -> dict[str, SmppLink]:
        """Lane -> the one link that carries it, for each of ``lanes``."""
        unknown = lanes - LANES
        if unknown:
            raise ValueError(f"unknown lanes {sorted(unknown)}; lanes are {sorted(LANES)}")
        return {lane: link for link in self._links for lane in link.lanes if lane in lanes}

    def link(self, bulk: bool) -> tuple[str, int, str, str, float]:
        """(host, port, system_id, password, tps) of the link carrying the bulk or priority lane."""
        lane = "bulk" if bulk else "priority"
        one = self.links_for(frozenset({lane}))[lane]
        return one.host, one.port, one.system_id, one.password.get_secret_value(), one.tps
