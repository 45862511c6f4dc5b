"""What ``GATEWAY_ENV=production`` refuses: the secrets the code ships, and empty passwords."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.settings.security import SHIPPED_CODE_PEPPER, SHIPPED_SECRET_KEY
from gateway.settings.smpp_links import link_var

if TYPE_CHECKING:
    from gateway.settings import Settings

# The defaults are public (this repository), so a process using one is open to anyone.
SHIPPED_SMPP_PASSWORD = "secret"  # noqa: S105
SHIPPED_AMI_SECRET = "gateway-ami"  # noqa: S105
SHIPPED_AGI_SECRET = "local-agi-secret"  # noqa: S105


class UnsafeSettings(ValueError):
    """Start-up refused: each entry of ``problems`` names a variable and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("GATEWAY_ENV=production refuses: " + "; ".join(problems))


def unsafe_defaults(settings: Settings) -> list[str]:
    """The variables that still hold a shipped default secret or an empty password."""
    problems: list[str] = []
    for link in settings.smpp.links():
        # A link without its own password has link main's, so either name fixes it.
        var = "GATEWAY_SMPP_PASSWORD" if link.name == "main" else link_var(link.name, "PASSWORD")
        password = link.password.get_secret_value()
        if password == SHIPPED_SMPP_PASSWORD:
            problems.append(f"{var} (link {link.name}) is the shipped default")
        elif not password:
            problems.append(f"{var} (link {link.name}) is empty")
    if settings.ami.ami_secret.get_secret_value() == SHIPPED_AMI_SECRET:
        problems.append("GATEWAY_AMI_SECRET is the shipped default")
    if settings.agi.agi_secret.get_secret_value() in ("", SHIPPED_AGI_SECRET):
        problems.append("GATEWAY_AGI_SECRET is the shipped default or empty")
    secret_keys = settings.security.secret_key.get_secret_value().split(",")
    if not any(k.strip() for k in secret_keys) or SHIPPED_SECRET_KEY in secret_keys:
        problems.append("GATEWAY_SECRET_KEY is the shipped default or empty")
    if settings.security.code_pepper.get_secret_value() in ("", SHIPPED_CODE_PEPPER):
        problems.append("GATEWAY_CODE_PEPPER is the shipped default or empty")
    # A login name with no password: the account is open, or the login fails at the first use.
    for user, secret, var in (
        (settings.sip.sip_trunk_username, settings.sip.sip_trunk_password, "GATEWAY_SIP_TRUNK"),
        (settings.smtp.smtp_username, settings.smtp.smtp_password, "GATEWAY_SMTP"),
    ):
        if user and not secret.get_secret_value():
            problems.append(f"{var}_PASSWORD is empty while {var}_USERNAME is set")
    return problems
