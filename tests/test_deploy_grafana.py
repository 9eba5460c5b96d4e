"""The provisioned Grafana dashboards (deploy/grafana/) against a real Prometheus.

A real collector process is fed over a real Mosquitto (two sites, cameras and switches,
incidents at levels 1-3, an SLA deadline missed, a failed notification, a rejected message);
the Debian package's Prometheus scrapes it every second; then every query of every panel runs
through Prometheus's HTTP API and must return data. Grafana itself is not needed for that: its
part is substituting variables, which the test does the way Grafana would.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from sqlalchemy import update

from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, encode_status, result_to_wire
from collector.store.db import Store
from collector.store.schema import incidents
from fieldmon.allinone import free_port
from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.procs import Proc, http_get, http_json, wait_for

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
JOB = "fieldmon-collector"
#: What Grafana would put in for the variables and its own macros on a short time range.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "5s",
    "$__range": "5m",
    "$site": "s1",
    "$agent": "a1",
}

# (site, agent, target, class, reachability status)
DEVICES = [
    ("s1", "a1", "cam-01", "camera", Status.OK),
    ("s1", "a1", "cam-02", "camera", Status.OK),
    ("s1", "a1", "cam-03", "camera", Status.CRIT),  # level 3 incident
    ("s1", "a1", "cam-04", "camera", Status.WARN),
    ("s1", "a1", "sw-01", "switch", Status.OK),
    ("s2", "a2", "sw-21", "switch", Status.CRIT),  # level 1 incident
    ("s2", "a2", "cam-21", "camera", Status.OK),
]


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", GRAFANA / "build_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _provisioned_datasource() -> dict[str, Any]:
    conf = yaml.safe_load((GRAFANA / "provisioning/datasources/fieldmon.yaml").read_text())
    (source,) = conf["datasources"]
    assert isinstance(source, dict)
    return source


def _substitute(expr: str) -> str:
    # Longest first: $__rate_interval before $__range, $site never inside another name.
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def _queries() -> list[Query]:
    found: list[Query] = []
    for path in DASHBOARDS:
        board = _load(path)
        for p in board["panels"]:
            for t in p.get("targets", []):
                found.append(Query(path.stem, p["title"], t["refId"], t["expr"]))
    return found


QUERIES = _queries()


# ------------------------------------------------------------------------ files on their own


def test_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} == {"wall.json", "site.json", "agents.json"}
    assert len(QUERIES) >= 30


def test_dashboards_are_the_generators_output() -> None:
    rendered: dict[str, str] = _builder().render()
    assert set(rendered) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert path.read_text(encoding="utf-8") == rendered[path.name], (
            f"{path.name} differs from build_dashboards.py: edit the script and rerun it"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_structure(path: Path) -> None:
    uid = _provisioned_datasource()["uid"]
    board = _load(path)
    assert board["title"] and board["panels"]
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for p in board["panels"]:
        where = f"{path.name}: {p['title']}"
        grid = p["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), where
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{where} overlaps another panel"
        occupied |= cells
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert p["targets"], where
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid, where
            assert t["expr"].strip(), where
    for var in board["templating"]["list"]:
        assert var["datasource"]["uid"] == uid
        assert var["name"] in {"site", "agent"}  # what the query test substitutes


def test_dashboard_uids_are_unique() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert all(len(u) <= 40 for u in uids)  # Grafana's limit
    # The wall display's tiles link to the site dashboard by uid.
    assert "fieldmon-site" in uids
    assert "/d/fieldmon-site/" in (GRAFANA / "dashboards" / "wall.json").read_text()


def test_provisioning() -> None:
    source = _provisioned_datasource()
    assert source["type"] == "prometheus" and source["uid"] == "fieldmon-prometheus"
    assert source["url"].startswith("http://")
    conf = yaml.safe_load((GRAFANA / "provisioning/dashboards/fieldmon.yaml").read_text())
    (provider,) = conf["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_only_exposed_metric_names(stack: Stack) -> None:
    """Every fieldmon_* name a panel uses is in a real scrape of the collector."""
    text = http_get(f"{stack.collector}/metrics").decode()
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    used: set[str] = set()
    for q in QUERIES:
        used |= {w for w in _words(q.expr) if w.startswith("fieldmon_")}
    for path in DASHBOARDS:
        for var in _load(path)["templating"]["list"]:
            used |= {w for w in _words(var["definition"]) if w.startswith("fieldmon_")}
    assert used, "no fieldmon metric in the dashboards?"
    assert not used - exposed, (
        f"dashboards use metrics the collector does not expose: {used - exposed}"
    )


def _words(expr: str) -> set[str]:
    return set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr))


# ------------------------------------------------------------- a real Prometheus and collector


@dataclass(frozen=True)
class Stack:
    collector: str
    prometheus: str


def _publish(broker: Broker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    subprocess.run(
        [
            *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-s"),
            *("-t", topic),
            *(["-r"] if retain else []),
        ],
        input=payload,
        check=True,
        timeout=10,
    )


def _feed(broker: Broker) -> None:
    for site, agent in sorted({(s, a) for s, a, *_ in DEVICES}):
        _publish(
            broker,
            f"fieldmon/v1/{site}/{agent}/status",
            encode_status(site, agent, "online", "test"),
            retain=True,
        )
        results = [
            Result(target=t, target_class=cls, check="snmp.reachable", status=st)
            for s, a, t, cls, st in DEVICES
            if (s, a) == (site, agent)
        ]
        payload = encode_batch(site, agent, [result_to_wire(r) for r in results])
        _publish(broker, f"fieldmon/v1/{site}/{agent}/results", payload)
    _publish(broker, "fieldmon/v1/s1/a1/results", b"{not json")  # one reject


def _prom_query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer: dict[str, Any] = json.loads(http_get(url))
    except urllib.error.HTTPError as err:  # 400/422: the query itself is wrong
        return {"status": "error", "error": err.read().decode(errors="replace")}
    return answer


def _samples(base: str, expr: str) -> float:
    answer = _prom_query(base, expr)
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus not found: install the Debian package 'prometheus'")
    tmp = tmp_path_factory.mktemp("grafana")
    broker = Broker()
    broker.start()
    procs: list[Proc] = []
    prom: subprocess.Popen[bytes] | None = None
    try:
        cfg, port = collector_toml(tmp, broker.port)
        procs.append(Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log"))
        collector = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_json(f"{collector}/healthz")["broker"], 30, what="collector")
        _feed(broker)
        wait_for(
            lambda: len(http_json(f"{collector}/api/v1/incidents")) >= 2,
            20,
            what="the camera's and the switch's incidents",
        )
        store = Store(f"sqlite:///{tmp}/collector.db")
        try:
            # Opened three hours ago: the respond deadline is missed. The manual level-2
            # incident opened now has deadlines due within the hour.
            with store.engine.begin() as conn:
                conn.execute(
                    update(incidents).values(opened_at=datetime.now(UTC) - timedelta(hours=3))
                )
            store.open_manual(
                site="s1",
                target="",
                level=2,
                title="customer calls: gate camera wall dark",
                description="",
                caller={},
                author="test",
                now=datetime.now(UTC),
            )
            numbers = [i["number"] for i in http_json(f"{collector}/api/v1/incidents")]
            store.record_notification(
                numbers, "dingtalk", False, "HTTP 500", 1, False, datetime.now(UTC)
            )
        finally:
            store.close()
        wait_for(
            lambda: "fieldmon_incidents_open{" in http_get(f"{collector}/metrics").decode(),
            10,
            what="metrics",
        )

        prom_port = free_port()
        (tmp / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": JOB,
                            "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                        }
                    ],
                }
            )
        )
        prom_log = (tmp / "prometheus.log").open("ab")
        prom = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=prom_log,
            stderr=prom_log,
        )
        base = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: http_get(f"{base}/-/ready"), 30, what="Prometheus ready")
        # Scraped at least twice (rates need two samples), and the scrapes succeeded.
        wait_for(
            lambda: (
                _samples(base, f'count_over_time(up{{job="{JOB}"}}[1m])') >= 3
                and _samples(base, f'min_over_time(up{{job="{JOB}"}}[1m])') == 1
            ),
            30,
            what="three successful scrapes",
        )
        yield Stack(collector=collector, prometheus=base)
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        for proc in procs:
            code = proc.stop()
            assert code == 0, proc.output()
        broker.cleanup()


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_panel_query_returns_data(stack: Stack, query: Query) -> None:
    expr = _substitute(query.expr)
    answer = _prom_query(stack.prometheus, expr)
    assert answer["status"] == "success", f"{query.id}: {expr}\n{answer}"
    assert not answer.get("warnings"), f"{query.id}: {answer['warnings']}"
    assert answer["data"]["result"], f"{query.id}: no data for {expr}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_variable_queries_return_values(stack: Stack, path: Path) -> None:
    """``label_values(metric{…}, label)`` as Grafana runs it: the label's values among the
    series matching the selector."""
    for var in _load(path)["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), *(\w+)\)", var["definition"])
        assert match, var["definition"]
        selector, label = _substitute(match.group(1)), match.group(2)
        url = f"{stack.prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": selector}
        )
        answer = json.loads(http_get(url))
        assert answer["status"] == "success", answer
        assert SUBSTITUTIONS[f"${var['name']}"] in answer["data"], (var["name"], answer)


def test_wall_display_values(stack: Stack) -> None:
    """The tiles show the right thing, not only something: s2 has a level-1 incident, s1's
    worst is level 2 (the phoned-in one beats the camera's level 3)."""
    board = _load(GRAFANA / "dashboards" / "wall.json")
    tiles = next(p for p in board["panels"] if p["title"].startswith("Sites"))
    answer = _prom_query(stack.prometheus, tiles["targets"][0]["expr"])
    worst = {r["metric"]["site"]: float(r["value"][1]) for r in answer["data"]["result"]}
    assert worst == {"s1": 3.0, "s2": 4.0}  # 4 = L1, 3 = L2 (WORST_MAPPINGS)
    ratio = _prom_query(stack.prometheus, "max by (site) (fieldmon_cameras_online_ratio)")
    got = {r["metric"]["site"]: float(r["value"][1]) for r in ratio["data"]["result"]}
    assert got == {"s1": pytest.approx(0.5), "s2": pytest.approx(1.0)}
