"""deploy/compose.yaml, checked without a container engine (this machine has none): it parses,
every file it mounts is in the repository, and the services' files agree with each other
(collector → broker and PostgreSQL by service name, Prometheus → collector, Grafana's
provisioning → the dashboards and Prometheus)."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from collector.config import load_collector_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SERVICES = {"broker", "postgres", "collector", "prometheus", "grafana"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _mounts(service: str) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts (named volumes left out)."""
    out: dict[str, Path] = {}
    for entry in _compose()["services"][service].get("volumes", []):
        assert isinstance(entry, str), f"{service}: use the short volume syntax"
        source, target, *_ = entry.split(":")
        if source.startswith((".", "/")):
            out[target] = (COMPOSE.parent / source).resolve()
    return out


def _mounted_file(service: str, container_path: str) -> Path:
    """The repository file the service sees at ``container_path`` (directly or in a mounted
    directory)."""
    for target, source in sorted(_mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{service}: nothing mounted at {container_path}")


def _collector_config_path() -> Path:
    command = _compose()["services"]["collector"]["command"]
    return _mounted_file("collector", command[command.index("--config") + 1])


def test_services_and_volumes() -> None:
    compose = _compose()
    assert set(compose["services"]) == SERVICES
    named = set(compose.get("volumes") or {})
    networks = set(compose.get("networks") or {})
    for name, service in compose["services"].items():
        assert "image" in service, name
        for entry in service.get("volumes", []):
            source = entry.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
        for net in service.get("networks", []):
            assert net in networks, f"{name}: network {net} is not declared"
        for dep in service.get("depends_on", []):
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
    # PostgreSQL trusts its network, so that network must not reach anything else.
    assert compose["networks"]["db"]["internal"] is True
    assert compose["services"]["postgres"]["networks"] == ["db"]
    assert "ports" not in compose["services"]["postgres"]


def test_published_ports() -> None:
    """Only Grafana faces the network; the rest is on the host's loopback."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            if name != "grafana":
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    grafana_env = _compose()["services"]["grafana"]["environment"]
    assert "${GRAFANA_ADMIN_PASSWORD:?" in grafana_env["GF_SECURITY_ADMIN_PASSWORD"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_file_exists(service: str) -> None:
    for target, source in _mounts(service).items():
        assert source.exists(), f"{service}: {source} (mounted at {target}) is not in the repo"
        assert DEPLOY in source.parents, f"{service}: {source} is outside deploy/"


def test_collector_build_copies_existing_paths() -> None:
    build = _compose()["services"]["collector"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    copied = re.findall(r"^COPY (.+) \S+$", build["dockerfile_inline"], re.MULTILINE)
    assert copied
    for line in copied:
        for name in line.split():
            assert (context / name).exists(), f"COPY {name}: not in {context}"


def test_collector_config() -> None:
    compose = _compose()
    path = _collector_config_path()
    config = load_collector_config(path)  # the collector's own validation
    url = urllib.parse.urlsplit(config.database.url)
    assert url.scheme.startswith("postgresql")
    assert url.hostname == "postgres"
    env = compose["services"]["postgres"]["environment"]
    assert url.username == env["POSTGRES_USER"]
    assert url.path.lstrip("/") == env["POSTGRES_DB"]

    assert config.mqtt.host == "broker"
    broker_conf = _mounted_file("broker", "/mosquitto/config/mosquitto.conf").read_text()
    listeners = re.findall(r"^listener (\d+)", broker_conf, re.MULTILINE)
    assert listeners == [str(config.mqtt.port)]
    # The broker's persistence lives in its named volume, not in the container layer.
    persist = re.search(r"^persistence_location (\S+)", broker_conf, re.MULTILINE)
    assert persist and persist.group(1).rstrip("/") == "/mosquitto/data"
    assert any(v.endswith(":/mosquitto/data") for v in compose["services"]["broker"]["volumes"])

    assert config.http.listen == "0.0.0.0"  # reachable from Prometheus's container
    published = compose["services"]["collector"]["ports"]
    assert f"127.0.0.1:{config.http.port}:{config.http.port}" in published


def _prometheus_config() -> tuple[dict[str, Any], Path]:
    command = _compose()["services"]["prometheus"]["command"]
    flag = next(c for c in command if c.startswith("--config.file="))
    path = _mounted_file("prometheus", flag.split("=", 1)[1])
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data, path


def test_prometheus_scrapes_the_collector_service() -> None:
    config, _ = _prometheus_config()
    port = load_collector_config(_collector_config_path()).http.port
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "fieldmon-collector"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"collector:{port}"]
    # The alert rules are the ones deploy/prometheus ships, beside the config in the container.
    for rule_file in config["rule_files"]:
        source = _mounted_file("prometheus", f"/etc/prometheus/{rule_file}")
        assert source == (DEPLOY / "prometheus" / "fieldmon.rules.yml").resolve()


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool on the files as the container sees them (config and rules side by side)."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus'")
    _, path = _prometheus_config()
    shutil.copy(path, tmp_path / "prometheus.yml")
    for target, source in _mounts("prometheus").items():
        if target.startswith("/etc/prometheus/") and source.is_file():
            shutil.copy(source, tmp_path / Path(target).name)
    done = subprocess.run(
        [exe, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisioning_paths() -> None:
    compose = _compose()
    datasources = _mounted_file("grafana", "/etc/grafana/provisioning/datasources")
    providers = _mounted_file("grafana", "/etc/grafana/provisioning/dashboards")
    assert datasources == (DEPLOY / "grafana/provisioning/datasources").resolve()
    assert providers == (DEPLOY / "grafana/provisioning/dashboards").resolve()

    (source,) = yaml.safe_load((datasources / "fieldmon.yaml").read_text())["datasources"]
    url = urllib.parse.urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert "prometheus" in compose["services"]
    assert set(compose["services"]["grafana"]["networks"]) & set(
        compose["services"]["prometheus"]["networks"]
    )

    (provider,) = yaml.safe_load((providers / "fieldmon.yaml").read_text())["providers"]
    dashboards = _mounted_file("grafana", provider["options"]["path"])
    assert dashboards == (DEPLOY / "grafana/dashboards").resolve()
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "agents.json",
        "site.json",
        "wall.json",
    ]
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert _mounted_file("grafana", home).is_file()
