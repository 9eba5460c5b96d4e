"""Writes the provisioned Grafana dashboards (``dashboards/*.json``) from one description.

The JSON files are what Grafana loads and what ``tests/test_deploy_grafana.py`` checks (every
query runs against a real Prometheus scraping a real collector, and the files must equal this
script's output). Edit here, then run::

    .venv/bin/python deploy/grafana/build_dashboards.py

Queries use only the metrics ``collector/metrics.py`` exposes. Gauges computed from the
database are the same on every collector when several share one database (scale-out), so they
are taken with ``max by (...)`` over their own labels, never summed across instances; the
ingest counters are per process and are summed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
#: The uid of the provisioned data source (provisioning/datasources/fieldmon.yaml).
DATASOURCE_UID = "fieldmon-prometheus"
DS: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}
JOB = "fieldmon-collector"

Panel = dict[str, Any]

#: Worst open fault level per site as a score: 4 = a level-1 incident open … 1 = level 4 only,
#: 0 = nothing open. Level is a label, so each level's "any open" becomes a number first;
#: the level label is kept until the outer max so that `or` does not drop levels 2-4.
WORST_SCORE = """max by (site) (
    (max by (site, level) (fieldmon_incidents_open{level="1"{sel}}) > bool 0) * 4
  or (max by (site, level) (fieldmon_incidents_open{level="2"{sel}}) > bool 0) * 3
  or (max by (site, level) (fieldmon_incidents_open{level="3"{sel}}) > bool 0) * 2
  or (max by (site, level) (fieldmon_incidents_open{level="4"{sel}}) > bool 0) * 1
)"""

LEVEL_COLOURS = {"1": "dark-red", "2": "orange", "3": "yellow", "4": "blue"}
WORST_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "OK", "color": "green", "index": 0},
            "1": {"text": "L4", "color": LEVEL_COLOURS["4"], "index": 1},
            "2": {"text": "L3", "color": LEVEL_COLOURS["3"], "index": 2},
            "3": {"text": "L2", "color": LEVEL_COLOURS["2"], "index": 3},
            "4": {"text": "L1", "color": LEVEL_COLOURS["1"], "index": 4},
        },
    }
]
STATUS_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "OK", "color": "green", "index": 0},
            "1": {"text": "WARN", "color": "yellow", "index": 1},
            "2": {"text": "UNKNOWN", "color": "purple", "index": 2},
            "3": {"text": "CRIT", "color": "red", "index": 3},
        },
    }
]
UP_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    }
]


def worst(sel: str = "") -> str:
    return WORST_SCORE.replace("{sel}", sel)


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"value": value, "color": colour} for value, colour in steps],
    }


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "refId": ref, "expr": expr, "range": not instant}
    out["instant"] = instant
    if legend:
        out["legendFormat"] = legend
    if instant:
        out["format"] = "table"
    return out


def panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    *,
    description: str = "",
    unit: str = "",
    mappings: list[dict[str, Any]] | None = None,
    steps: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> Panel:
    x, y, w, h = grid
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if mappings:
        defaults["mappings"] = mappings
    defaults["thresholds"] = steps or thresholds((None, "green"))
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
    out: Panel = {
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
    }
    if description:
        out["description"] = description
    if transformations:
        out["transformations"] = transformations
    return out


def stat_options(colour: str = "background", text: str = "auto") -> dict[str, Any]:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": colour,
        "graphMode": "none",
        "justifyMode": "center",
        "textMode": text,
        "orientation": "auto",
        "wideLayout": True,
    }


def bar_options() -> dict[str, Any]:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
    }


def series_options() -> dict[str, Any]:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def table_options() -> dict[str, Any]:
    return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}


def hide_columns(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "organize",
            "options": {"excludeByName": dict.fromkeys(names, True), "renameByName": {}},
        }
    ]


def query_var(name: str, label: str, query: str, *, multi: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-var"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        **({"allValue": ".*"} if multi else {}),
        "current": {},
        "options": [],
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    *,
    variables: list[dict[str, Any]] | None = None,
    refresh: str = "30s",
    time_from: str = "now-6h",
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    for number, p in enumerate(panels, 1):
        p["id"] = number
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["fieldmon"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "timezone": "browser",
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables or []},
        "annotations": {"list": []},
        "links": links or [],
        "panels": panels,
    }


LINKS = [
    {
        "type": "dashboards",
        "tags": ["fieldmon"],
        "asDropdown": True,
        "includeVars": True,
        "keepTime": True,
        "title": "fieldmon",
    }
]


def wall() -> dict[str, Any]:
    """The large screen: readable from across the room, no variables, no legends to read."""
    panels = [
        _site_tiles(),
        panel(
            "bargauge",
            "Cameras online per site",
            (0, 7, 12, 9),
            [target("max by (site) (fieldmon_cameras_online_ratio)", "{{site}}")],
            description="Cameras whose reachability check is OK and not stale, of all cameras.",
            unit="percentunit",
            minimum=0,
            maximum=1,
            steps=thresholds((None, "red"), (0.9, "orange"), (0.98, "green")),
            options=bar_options(),
        ),
        panel(
            "stat",
            "Open incidents by level",
            (12, 7, 12, 9),
            [
                target(
                    f'sum(max by (site, level) (fieldmon_incidents_open{{level="{lv}"}}))',
                    f"L{lv}",
                    ref=chr(ord("A") + i),
                )
                for i, lv in enumerate("1234")
            ],
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "SLA deadlines breached",
            (0, 16, 6, 8),
            [target("sum(max by (site, deadline) (fieldmon_sla_deadlines_breached))", "breached")],
            description="Respond / on-site / restore / resolve deadlines of open incidents "
            "that passed without being met.",
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "SLA due within 1 h",
            (6, 16, 6, 8),
            [target("sum(max by (site, deadline) (fieldmon_sla_deadlines_due_soon))", "due")],
            steps=thresholds((None, "green"), (1, "orange")),
            options=stat_options(),
        ),
        panel(
            "bargauge",
            "SLA clocks by site: breached / due within 1 h",
            (12, 16, 12, 8),
            [
                target(
                    "sum by (site) (max by (site, deadline) (fieldmon_sla_deadlines_breached))",
                    "{{site}} breached",
                ),
                target(
                    "sum by (site) (max by (site, deadline) (fieldmon_sla_deadlines_due_soon))",
                    "{{site}} due soon",
                    ref="B",
                ),
            ],
            steps=thresholds((None, "green"), (1, "red")),
            options=bar_options(),
        ),
        panel(
            "timeseries",
            "Open incidents by level, all sites",
            (0, 24, 12, 8),
            [
                target(
                    "sum by (level) (max by (site, level) (fieldmon_incidents_open))", "L{{level}}"
                )
            ],
            options=series_options(),
            minimum=0,
        ),
        panel(
            "stat",
            "Devices down",
            (12, 24, 6, 8),
            [target('sum(max by (site, class) (fieldmon_devices_targets{state="down"}))', "down")],
            description="Devices whose reachability check is CRIT or that sent nothing in time.",
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "Agents online",
            (18, 24, 6, 8),
            [
                target("sum(max by (site, agent) (fieldmon_agent_up))", "online"),
                target(
                    "count(max by (site, agent) (fieldmon_agent_up))"
                    " - sum(max by (site, agent) (fieldmon_agent_up))",
                    "offline",
                    ref="B",
                ),
                target(f'max(up{{job="{JOB}"}})', "collector", ref="C"),
            ],
            mappings=None,
            steps=thresholds((None, "green")),
            options=stat_options(colour="value"),
        ),
    ]
    return dashboard(
        "fieldmon-wall",
        "fieldmon: wall display",
        "For the maintenance centre's large screen: every site at a glance.",
        panels,
        refresh="10s",
        time_from="now-3h",
        links=LINKS,
    )


def _site_tiles() -> Panel:
    tiles = panel(
        "stat",
        "Sites: worst open fault level",
        (0, 0, 24, 7),
        [target(worst(), "{{site}}")],
        description="One tile per site, coloured by its worst open incident level "
        "(L1 = system down). Green: nothing open. Click a tile for the site.",
        mappings=WORST_MAPPINGS,
        steps=thresholds(
            (None, "green"),
            (1, LEVEL_COLOURS["4"]),
            (2, LEVEL_COLOURS["3"]),
            (3, LEVEL_COLOURS["2"]),
            (4, LEVEL_COLOURS["1"]),
        ),
        options=stat_options(text="value_and_name"),
    )
    tiles["fieldConfig"]["defaults"]["links"] = [
        {
            "title": "Open ${__field.labels.site}",
            "url": "/d/fieldmon-site/?var-site=${__field.labels.site}&${__url_time_range}",
        }
    ]
    return tiles


def site() -> dict[str, Any]:
    s = 'site="$site"'
    panels = [
        panel(
            "stat",
            "Worst open level",
            (0, 0, 4, 6),
            [target(worst(f",{s}"), "{{site}}")],
            mappings=WORST_MAPPINGS,
            steps=thresholds(
                (None, "green"),
                (1, LEVEL_COLOURS["4"]),
                (2, LEVEL_COLOURS["3"]),
                (3, LEVEL_COLOURS["2"]),
                (4, LEVEL_COLOURS["1"]),
            ),
            options=stat_options(),
        ),
        panel(
            "gauge",
            "Cameras online",
            (4, 0, 4, 6),
            [target(f"max by (site) (fieldmon_cameras_online_ratio{{{s}}})", "{{site}}")],
            unit="percentunit",
            minimum=0,
            maximum=1,
            steps=thresholds((None, "red"), (0.9, "orange"), (0.98, "green")),
            options={
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showThresholdMarkers": True,
            },
        ),
        panel(
            "stat",
            "Open incidents by level",
            (8, 0, 8, 6),
            [target(f"max by (level) (fieldmon_incidents_open{{{s}}})", "L{{level}}")],
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "SLA deadlines",
            (16, 0, 8, 6),
            [
                target(
                    f"sum(max by (deadline) (fieldmon_sla_deadlines_breached{{{s}}}))", "breached"
                ),
                target(
                    f"sum(max by (deadline) (fieldmon_sla_deadlines_due_soon{{{s}}}))",
                    "due within 1 h",
                    ref="B",
                ),
            ],
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "bargauge",
            "Devices by class and state",
            (0, 6, 12, 8),
            [
                target(
                    f"max by (class, state) (fieldmon_devices_targets{{{s}}})",
                    "{{class}} {{state}}",
                )
            ],
            description="down includes devices that sent nothing in time (stale).",
            options=bar_options(),
        ),
        panel(
            "table",
            "Open incidents by level and escalation tier",
            (12, 6, 12, 8),
            [
                target(
                    f"max by (level, tier) (fieldmon_incidents_open_by_tier{{{s}}})",
                    instant=True,
                )
            ],
            options=table_options(),
            transformations=hide_columns("Time"),
        ),
        panel(
            "table",
            "Checks not OK",
            (0, 14, 12, 10),
            [
                target(
                    f"max by (target, check, item) (fieldmon_check_status{{{s}}}) > 0",
                    instant=True,
                )
            ],
            description="Current WARN, UNKNOWN and CRIT results of the site.",
            mappings=STATUS_MAPPINGS,
            steps=thresholds((None, "green"), (1, "yellow"), (2, "purple"), (3, "red")),
            options=table_options(),
            transformations=hide_columns("Time"),
        ),
        panel(
            "table",
            "Reachability per device",
            (12, 14, 12, 10),
            [
                target(
                    f"max by (target) (fieldmon_check_status{{{s},"
                    'check=~"snmp.reachable|host.reachable"})',
                    instant=True,
                )
            ],
            mappings=STATUS_MAPPINGS,
            steps=thresholds((None, "green"), (1, "yellow"), (2, "purple"), (3, "red")),
            options=table_options(),
            transformations=hide_columns("Time"),
        ),
        panel(
            "timeseries",
            "Checks by status",
            (0, 24, 12, 8),
            [
                target(
                    'count_values("status", '
                    f"max by (target, check, item) (fieldmon_check_status{{{s}}}))",
                    "status {{status}}",
                )
            ],
            description="status 0 OK, 1 WARN, 2 UNKNOWN, 3 CRIT.",
            options=series_options(),
            minimum=0,
        ),
        panel(
            "timeseries",
            "SLA deadlines by kind",
            (12, 24, 12, 8),
            [
                target(
                    f"max by (deadline) (fieldmon_sla_deadlines_breached{{{s}}})",
                    "{{deadline}} breached",
                ),
                target(
                    f"max by (deadline) (fieldmon_sla_deadlines_due_soon{{{s}}})",
                    "{{deadline}} due soon",
                    ref="B",
                ),
            ],
            options=series_options(),
            minimum=0,
        ),
        panel(
            "table",
            "Agents of the site",
            (0, 32, 24, 6),
            [
                target(f"max by (agent) (fieldmon_agent_up{{{s}}})", instant=True),
                target(
                    f"max by (agent) (fieldmon_agent_last_seen_age_seconds{{{s}}})",
                    instant=True,
                    ref="B",
                ),
            ],
            options=table_options(),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "up",
                            "Value #B": "last seen (s ago)",
                            "Value #C": "results dropped from outbox",
                        },
                    },
                },
            ],
        ),
    ]
    variables = [query_var("site", "Site", "label_values(fieldmon_incidents_open, site)")]
    return dashboard(
        "fieldmon-site",
        "fieldmon: site",
        "One customer site: incidents, SLA clocks, devices, checks and agents.",
        panels,
        variables=variables,
        links=LINKS,
    )


def agents() -> dict[str, Any]:
    sel = 'site=~"$site", agent=~"$agent"'
    panels = [
        panel(
            "stat",
            "Agents online",
            (0, 0, 6, 5),
            [target(f"sum(max by (site, agent) (fieldmon_agent_up{{{sel}}}))", "online")],
            steps=thresholds((None, "green")),
            options=stat_options(colour="value"),
        ),
        panel(
            "stat",
            "Agents offline",
            (6, 0, 6, 5),
            [
                target(
                    f"count(max by (site, agent) (fieldmon_agent_up{{{sel}}}))"
                    f" - sum(max by (site, agent) (fieldmon_agent_up{{{sel}}}))",
                    "offline",
                )
            ],
            description="Last will received (offline) or stopped in an orderly way.",
            steps=thresholds((None, "green"), (1, "red")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "Collectors answering /metrics",
            (12, 0, 6, 5),
            [target(f'sum(up{{job="{JOB}"}})', "up")],
            steps=thresholds((None, "red"), (1, "green")),
            options=stat_options(),
        ),
        panel(
            "stat",
            "Scrape duration",
            (18, 0, 6, 5),
            [target(f'max(scrape_duration_seconds{{job="{JOB}"}})', "seconds")],
            description="Time to compute /metrics from the database; keep it below the "
            "scrape timeout.",
            unit="s",
            steps=thresholds((None, "green"), (5, "orange"), (10, "red")),
            options=stat_options(colour="value"),
        ),
        panel(
            "table",
            "Agents",
            (0, 5, 24, 8),
            [
                target(f"max by (site, agent) (fieldmon_agent_up{{{sel}}})", instant=True),
                target(
                    f"max by (site, agent) (fieldmon_agent_last_seen_age_seconds{{{sel}}})",
                    instant=True,
                    ref="B",
                ),
                target(
                    f"max by (site, agent) (fieldmon_agent_dropped_results_total{{{sel}}})",
                    instant=True,
                    ref="C",
                ),
            ],
            options=table_options(),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "up",
                            "Value #B": "last seen (s ago)",
                            "Value #C": "results dropped from outbox",
                        },
                    },
                },
            ],
        ),
        panel(
            "timeseries",
            "Last seen age",
            (0, 13, 12, 8),
            [
                target(
                    f"max by (site, agent) (fieldmon_agent_last_seen_age_seconds{{{sel}}})",
                    "{{site}}/{{agent}}",
                )
            ],
            description="Seconds since the agent last sent anything (results or status).",
            unit="s",
            options=series_options(),
            minimum=0,
        ),
        panel(
            "timeseries",
            "Agents up",
            (12, 13, 12, 8),
            [target(f"max by (site, agent) (fieldmon_agent_up{{{sel}}})", "{{site}}/{{agent}}")],
            mappings=UP_MAPPINGS,
            options=series_options(),
            minimum=0,
            maximum=1,
        ),
        panel(
            "timeseries",
            "Ingest rate",
            (0, 21, 12, 8),
            [
                target(
                    "sum(rate(fieldmon_ingest_results_total[$__rate_interval]))", "results stored"
                ),
                target(
                    "sum(rate(fieldmon_ingest_duplicate_results_total[$__rate_interval]))",
                    "duplicates ignored",
                    ref="B",
                ),
                target(
                    "sum by (instance) (rate(fieldmon_ingest_results_total[$__rate_interval]))",
                    "stored by {{instance}}",
                    ref="C",
                ),
            ],
            description="All collectors together (not per agent: the collector counts ingest "
            "per process only).",
            unit="ops",
            options=series_options(),
            minimum=0,
        ),
        panel(
            "timeseries",
            "Rejected messages by reason",
            (12, 21, 12, 8),
            [
                target(
                    "sum by (reason) "
                    "(rate(fieldmon_ingest_rejected_messages_total[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            description="Oversized, malformed, other schema versions, invalid fields, "
            "site/agent differing from the topic.",
            unit="ops",
            options=series_options(),
            minimum=0,
        ),
        panel(
            "bargauge",
            "Rejected messages in the range, by reason",
            (0, 29, 12, 8),
            [
                target(
                    "sum by (reason) (increase(fieldmon_ingest_rejected_messages_total[$__range]))",
                    "{{reason}}",
                    instant=True,
                )
            ],
            steps=thresholds((None, "green"), (1, "orange")),
            options=bar_options(),
        ),
        panel(
            "timeseries",
            "Notification failures by channel",
            (12, 29, 12, 8),
            [
                target(
                    "max by (channel) (fieldmon_notify_failed_notices_total)",
                    "{{channel}}",
                )
            ],
            description="Failed sends recorded on incident timelines since the start "
            "(from the database, so the same on every collector).",
            options=series_options(),
            minimum=0,
        ),
    ]
    variables = [
        query_var("site", "Site", "label_values(fieldmon_agent_up, site)", multi=True),
        query_var(
            "agent",
            "Agent",
            'label_values(fieldmon_agent_up{site=~"$site"}, agent)',
            multi=True,
        ),
    ]
    return dashboard(
        "fieldmon-agents",
        "fieldmon: agents and ingest",
        "Are the agents talking, and is the collector storing what they send?",
        panels,
        variables=variables,
        refresh="30s",
        time_from="now-1h",
        links=LINKS,
    )


DASHBOARDS = {"wall.json": wall, "site.json": site, "agents.json": agents}


def render() -> dict[str, str]:
    """File name → JSON text, exactly as written."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(OUT / name)


if __name__ == "__main__":
    main()
