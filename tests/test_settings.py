"""Settings groups: every documented name still lands where callers read it; production mode
refuses the secrets this repository ships."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.settings import GeneralSettings, Settings, UnsafeSettings

SAFE = {
    "GATEWAY_SMPP_PASSWORD": "Pr0d-pw",
    "GATEWAY_AMI_SECRET": "a-long-ami-secret",
    "GATEWAY_AGI_SECRET": "a-long-agi-token-for-tests",
    "GATEWAY_SECRET_KEY": "a-long-sealing-passphrase-for-tests",
    "GATEWAY_CODE_PEPPER": "a-long-code-pepper-for-tests",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_time_zone_quiet_hours_and_send_window_sit_in_the_general_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _settings(
        monkeypatch,
        GATEWAY_TIMEZONE="Asia/Urumqi",
        GATEWAY_QUIET_HOURS="23:00-06:00",
        GATEWAY_JOB_SEND_WINDOW="09:00-20:00",
    )
    assert (s.general.timezone, s.general.quiet_hours, s.general.job_send_window) == (
        "Asia/Urumqi",
        "23:00-06:00",
        "09:00-20:00",
    )
    assert s.general.env == "local"


def test_moved_names_keep_their_validation() -> None:
    with pytest.raises(ValidationError, match="quiet_hours"):
        GeneralSettings(quiet_hours="late")
    assert GeneralSettings(quiet_hours="").quiet_hours == ""  # still turns quiet hours off


def test_every_group_field_has_one_name_and_one_group() -> None:
    s = Settings()
    seen: dict[str, str] = {}
    for group, part in s.groups().items():
        for field in type(part).model_fields:
            assert field not in seen, f"{field} in {seen.get(field)} and {group}"
            seen[field] = group
    assert {"general", "redis", "smpp", "ami", "voice", "jobs"} <= set(s.groups())


def test_a_config_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "gateway.env"
    conf.write_text("GATEWAY_TIMEZONE=Asia/Urumqi\nGATEWAY_HTTP_PORT=9000\n")
    monkeypatch.setenv("GATEWAY_HTTP_PORT", "9100")
    s = Settings(conf)
    assert (s.general.timezone, s.http.http_port) == ("Asia/Urumqi", 9100)


def test_local_accepts_the_shipped_secrets() -> None:
    s = Settings()
    assert s.smpp.smpp_password.get_secret_value() == "secret"
    assert s.ami.ami_secret.get_secret_value() == "gateway-ami"


def test_production_refuses_each_shipped_secret_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsafeSettings) as caught:
        _settings(monkeypatch, GATEWAY_ENV="production")
    problems = caught.value.problems
    assert problems == [
        "GATEWAY_SMPP_PASSWORD (link main) is the shipped default",
        "GATEWAY_AMI_SECRET is the shipped default",
        "GATEWAY_AGI_SECRET is the shipped default or empty",
        "GATEWAY_SECRET_KEY is the shipped default or empty",
        "GATEWAY_CODE_PEPPER is the shipped default or empty",
    ]
    assert "secret" not in str(caught.value).replace("shipped default", "")


def test_production_starts_once_the_secrets_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(monkeypatch, GATEWAY_ENV="production", **SAFE)
    assert s.general.env == "production"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_SMPP_PASSWORD": ""}, "GATEWAY_SMPP_PASSWORD (link main) is empty"),
        (
            {"GATEWAY_SIP_TRUNK_USERNAME": "trunk"},
            "GATEWAY_SIP_TRUNK_PASSWORD is empty while GATEWAY_SIP_TRUNK_USERNAME is set",
        ),
        (
            {"GATEWAY_SMTP_USERNAME": "mailer"},
            "GATEWAY_SMTP_PASSWORD is empty while GATEWAY_SMTP_USERNAME is set",
        ),
        (
            {"GATEWAY_SMPP_LINKS": "main,bulk", "GATEWAY_SMPP_BULK_PASSWORD": "secret"},
            "GATEWAY_SMPP_BULK_PASSWORD (link bulk) is the shipped default",
        ),
    ],
    ids=["empty smpp password", "sip user without password", "smtp user", "bulk link default"],
)
def test_production_refuses_empty_passwords_and_defaults_on_other_links(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    with pytest.raises(UnsafeSettings) as caught:
        _settings(monkeypatch, GATEWAY_ENV="production", **{**SAFE, **env})
    assert caught.value.problems == [named]


def test_production_allows_a_trunk_and_relay_without_login(monkeypatch: pytest.MonkeyPatch) -> None:
    # Carriers authenticate trunks by address, and a local relay may need no login.
    s = _settings(monkeypatch, GATEWAY_ENV="production", **SAFE)
    assert not s.sip.sip_trunk_password.get_secret_value()
    assert not s.smtp.smtp_password.get_secret_value()


def test_unknown_env_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="env"):
        _settings(monkeypatch, GATEWAY_ENV="prod")


def test_the_cli_names_each_refused_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_ENV", "production")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "refused in production: GATEWAY_SMPP_PASSWORD (link main)" in err
    assert "refused in production: GATEWAY_AMI_SECRET" in err


def test_the_cli_names_a_bad_link_variable_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_SMPP_LINKS", "main,bulk")
    monkeypatch.setenv("GATEWAY_SMPP_BULK_PASSWORD", "TooLongPw1")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "gateway: bad setting GATEWAY_SMPP_BULK_PASSWORD: " in err
    assert "TooLongPw1" not in err
