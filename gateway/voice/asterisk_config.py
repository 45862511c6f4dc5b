"""Render ``dialplan/`` with the gateway's settings into a private Asterisk config tree."""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path

from gateway.settings import Settings

FILES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "manager.conf",
    "pjsip.conf",
    "extensions.conf",
)
_WRITABLE = ("var/lib", "var/spool", "var/run", "var/log", "agi-bin")


def _template_dir() -> Path:
    """``dialplan/`` beside the package (a source checkout) or inside it (an installed wheel)."""
    here = Path(__file__).resolve().parent.parent.parent / "dialplan"
    if here.is_dir():
        return here
    return Path(str(resources.files("gateway").joinpath("dialplan")))


def values(settings: Settings, directory: Path) -> dict[str, str]:
    sip = settings.sip
    auth_line = auth_section = ""
    if sip.sip_trunk_username:
        auth_line = "outbound_auth = carrier-auth"
        auth_section = (
            "\n[carrier-auth]\ntype = auth\nauth_type = userpass\n"
            f"username = {sip.sip_trunk_username}\n"
            f"password = {sip.sip_trunk_password.get_secret_value()}\n"
        )
    return {
        "DIR": str(directory),
        "MAX_CALLS_HARD": str(settings.voice.max_calls * 2 + 50),
        "AMI_HOST": settings.ami.ami_host,
        "AMI_PORT": str(settings.ami.ami_port),
        "AMI_USERNAME": settings.ami.ami_username,
        "AMI_SECRET": settings.ami.ami_secret.get_secret_value(),
        "AMI_PERMIT": settings.ami.ami_permit,
        "AGI_HOST": settings.agi.agi_host,
        "AGI_PORT": str(settings.agi.agi_port),
        "AGI_SECRET": settings.agi.agi_secret.get_secret_value(),
        "SIP_BIND_HOST": sip.sip_bind_host,
        "SIP_BIND_PORT": str(sip.sip_bind_port),
        "SIP_TRUNK_HOST": sip.sip_trunk_host,
        "SIP_TRUNK_PORT": str(sip.sip_trunk_port),
        "SIP_DTMF_MODE": sip.sip_dtmf_mode,
        "SIP_OUTBOUND_AUTH_LINE": auth_line,
        "SIP_AUTH_SECTION": auth_section,
    }


def render(settings: Settings, directory: str | Path) -> Path:
    """Write the config tree; returns the path of its asterisk.conf."""
    target = Path(directory).resolve()
    target.mkdir(parents=True, exist_ok=True)
    for sub in _WRITABLE:
        (target / sub).mkdir(parents=True, exist_ok=True)
    mapping = values(settings, target)
    src = _template_dir()
    for name in FILES:
        text = (src / name).read_text(encoding="utf-8")
        out = target / name
        out.write_text(string.Template(text).safe_substitute(mapping), encoding="utf-8")
        if name in ("manager.conf", "pjsip.conf", "extensions.conf"):
            out.chmod(0o600)  # they hold secrets
    return target / "asterisk.conf"
