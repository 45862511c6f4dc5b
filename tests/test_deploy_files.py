"""docker-compose.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.cli import _parser
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _known_env() -> set[str]:
    s = Settings()
    names: set[str] = set()
    for part in vars(s).values():
        names |= {f"GATEWAY_{f.upper()}" for f in type(part).model_fields}
    return names


def test_compose_environment_names_are_real_settings() -> None:
    known = _known_env()
    for name, svc in _compose()["services"].items():
        for var in svc.get("environment", {}):
            assert var in known, f"{name}: {var} is not a gateway setting"


def test_compose_commands_parse_with_the_cli() -> None:
    parser = _parser()
    for name, svc in _compose()["services"].items():
        if svc.get("image", "").startswith("notice-gateway"):
            parser.parse_args(svc["command"])  # exits on an unknown command or option
            assert name


def test_mounted_files_exist_and_redis_config_persists() -> None:
    for svc in _compose()["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).is_file(), src
    conf = (ROOT / "deploy/redis.conf").read_text()
    assert "appendonly yes" in conf
    assert "maxmemory-policy noeviction" in conf


def test_dockerfile_installs_the_package_and_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in text
    assert 'ENTRYPOINT ["gateway"]' in text


def test_compose_wires_asterisk_to_the_rendered_config_and_the_workers() -> None:
    services = _compose()["services"]
    config_job, asterisk = services["asterisk-config"], services["asterisk"]
    out_dir = config_job["command"][-1]
    assert config_job["command"][0] == "asterisk-config"
    assert f"{out_dir}/asterisk.conf" in asterisk["command"]
    assert any(v.endswith(f":{out_dir}") for v in config_job["volumes"])
    assert any(v.startswith("asterisk-conf:") for v in asterisk["volumes"])
    assert config_job["environment"]["GATEWAY_AGI_HOST"] == "worker"
    assert "worker" in services
    assert services["worker"]["environment"]["GATEWAY_AGI_HOST"] == "0.0.0.0"  # noqa: S104
