"""What every settings group shares: the ``GATEWAY_`` prefix, and deprecation notices."""

from __future__ import annotations

import logging

from pydantic_settings import SettingsConfigDict

log = logging.getLogger(__name__)

# Names already warned about in this process: a deprecation is logged once, not per load.
_warned: set[str] = set()


def config() -> SettingsConfigDict:
    """Flat ``GATEWAY_<FIELD>`` names, unknown variables ignored, values frozen once read."""
    # Errors never echo the input: it may be a password.
    return SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", frozen=True, hide_input_in_errors=True
    )


def deprecated(names: str, instead: str) -> None:
    """Log once per process that ``names`` still work but ``instead`` is the current form."""
    if names in _warned:
        return
    _warned.add(names)
    log.warning("deprecated setting %s: still accepted, but %s", names, instead)
