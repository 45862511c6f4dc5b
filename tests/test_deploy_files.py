"""docker-compose.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway.cli import _parser
from gateway.settings import SUFFIXES, Settings, UnsafeSettings, link_var

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _known_env() -> set[str]:
    """The flat names, and the per-link SMPP names as the README writes them (<NAME>)."""
    return Settings().env_names() | {link_var("<name>", suffix) for suffix in SUFFIXES}


def _gateway_services() -> dict[str, dict]:  # type: ignore[type-arg]
    """The services that run the gateway itself (the simulator only plays the carrier)."""
    return {
        name: svc
        for name, svc in _compose()["services"].items()
        if svc.get("image", "").startswith("notice-gateway")
        and "sim" not in svc.get("profiles", [])
    }


def _interpolated(env: dict[str, str], required: str) -> dict[str, str]:
    """Compose's ${VAR:-default} and ${VAR:?message}, the latter filled with ``required``."""

    def one(m: re.Match[str]) -> str:
        return m.group(3) if m.group(2) == ":-" else required

    return {k: re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", one, str(v)) for k, v in env.items()}


def test_compose_environment_names_are_real_settings() -> None:
    known = _known_env()
    for name, svc in _compose()["services"].items():
        for var in svc.get("environment", {}):
            assert var in known, f"{name}: {var} is not a gateway setting"


def test_compose_runs_every_gateway_service_in_production() -> None:
    services = _gateway_services()
    assert {"api", "worker", "bulk-worker", "asterisk-config"} <= set(services)
    for name, svc in services.items():
        assert svc["environment"].get("GATEWAY_ENV") == "production", name


def test_compose_services_start_with_the_secrets_compose_demands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, svc in _gateway_services().items():
        with monkeypatch.context() as m:
            for var, value in _interpolated(svc["environment"], "Pr0d-pw").items():
                m.setenv(var, value)
            settings = Settings()  # raises UnsafeSettings on a shipped default
            assert settings.general.env == "production", name
            # Compose's empty bulk account means one link for both lanes, as before.
            assert [link.name for link in settings.smpp.links()] == ["main"], name


def test_compose_refuses_the_shipped_secrets_if_they_are_passed_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _interpolated(_gateway_services()["worker"]["environment"], "Pr0d-pw")
    for var, value in {**env, "GATEWAY_SMPP_PASSWORD": "secret"}.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(UnsafeSettings, match="GATEWAY_SMPP_PASSWORD"):
        Settings()


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


def _conf(path: str) -> dict[str, str]:
    """A Redis or Sentinel config as directive -> the rest of its line (the last one wins;
    ``sentinel`` lines keyed by their first two words)."""
    out: dict[str, str] = {}
    for line in (ROOT / path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        n = 2 if words[0] == "sentinel" else 1
        out[" ".join(words[:n])] = " ".join(words[n:])
    return out


def _mounted(svc: dict, target: str) -> str:  # type: ignore[type-arg]
    """The repository file a service mounts at ``target``."""
    (src,) = [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == target]
    return str(src).removeprefix("./")


def test_the_ha_profile_is_a_primary_a_replica_and_three_sentinels_the_gateway_can_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _compose()["services"]
    ha = {name for name, svc in services.items() if "ha" in svc.get("profiles", [])}
    assert ha == {"redis-primary", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    primary = _conf(_mounted(services["redis-primary"], "/etc/redis-ha/redis.conf"))
    replica = _conf(_mounted(services["redis-replica"], "/etc/redis-ha/redis.conf"))
    for conf in (primary, replica):  # either may be the primary after a failover
        assert conf["appendonly"] == "yes"
        assert conf["appendfsync"] == "always"  # a fast restart keeps what it acknowledged
        assert conf["maxmemory-policy"] == "noeviction"
        assert conf["dir"] == "/data"
    assert "replicaof" not in primary
    assert replica["replicaof"] == "redis-primary 6379"
    assert (primary["replica-announce-ip"], replica["replica-announce-ip"]) == (
        "redis-primary",
        "redis-replica",
    )
    # Each node and sentinel starts from a copy in its own volume (Sentinel rewrites it).
    for name in ha:
        svc = services[name]
        assert any(v.endswith(":/data") and not v.startswith("./") for v in svc["volumes"]), name
        assert "cp /etc/redis-ha/" in svc["command"][-1], name
    sentinel_files = {
        _mounted(services[f"sentinel-{i}"], "/etc/redis-ha/sentinel.conf") for i in (1, 2, 3)
    }
    (sentinel_file,) = sentinel_files
    sentinel = _conf(sentinel_file)
    assert sentinel["port"] == "26379"
    assert sentinel["sentinel resolve-hostnames"] == "yes"  # it monitors a service name
    name, host, port, quorum = sentinel["sentinel monitor"].split()
    assert (host, port, quorum) == ("redis-primary", "6379", "2")  # 2 of the 3 sentinels
    assert int(sentinel["sentinel down-after-milliseconds"].split()[1]) <= 10000

    # The gateway, pointed at the sentinels as the compose file's header says, asks for the
    # service they monitor.
    header = (ROOT / "docker-compose.yml").read_text()
    (listed,) = re.findall(r"GATEWAY_REDIS_SENTINELS=(\S+)", header)
    env = _interpolated(_gateway_services()["api"]["environment"], "Pr0d-pw")
    for var, value in {**env, "GATEWAY_REDIS_SENTINELS": listed}.items():
        monkeypatch.setenv(var, value)
    redis = Settings().redis
    assert redis.redis_service == name
    assert redis.sentinel_addresses() == [(f"sentinel-{i}", 26379) for i in (1, 2, 3)]
    assert redis.replicas_to_wait() == 1
