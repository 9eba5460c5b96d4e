"""``fieldmon`` command line: parse arguments, load configuration, call one function.

Exit codes: 0 success; 1 a runtime failure (or, for ``agent check``, something is CRIT);
2 bad configuration or usage, reported before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fieldmon import __version__

DEFAULT_COLLECTOR_CONFIG = Path("/etc/fieldmon/collector.toml")

#: glibc malloc settings for ``fieldmon agent run`` (documented in deploy/README.md, also set
#: in the systemd unit). Why: the agent is a small, mostly idle process on a customer's
#: machine. At most two malloc arenas instead of one per thread that ever allocated (the
#: worker threads of the host probe), and free memory at the top of the heap given back
#: above 128 KiB instead of a threshold that glibc raises as the process runs. Values an
#: operator sets in the environment are kept.
AGENT_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("mqtt").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fieldmon", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fieldmon {__version__}")
    sub = p.add_subparsers(dest="area", required=True)

    run = sub.add_parser(
        "up",
        aliases=["run"],
        help="all-in-one: broker, collector and an agent on this host (--demo: a simulated site)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var"),
        help="where configs, database and outbox go (default ./var)",
    )
    run.add_argument("--broker", help="host:port of an existing MQTT broker (default: start one)")
    run.add_argument("--http-port", type=int, default=8470)
    run.add_argument("--site", help="site name (default 'local', with --demo 'demo')")
    run.add_argument(
        "--demo",
        action="store_true",
        help="also run a simulated customer site (54 SNMP devices) with faults injected",
    )
    run.add_argument(
        "--demo-speed",
        type=float,
        default=1.0,
        help="run the demo's fault schedule and polling this many times faster (default 1)",
    )

    agent = sub.add_parser("agent", help="the agent").add_subparsers(dest="cmd", required=True)
    a_run = agent.add_parser("run", help="check on schedule and publish")
    a_run.add_argument("--config", type=Path, required=True)
    a_chk = agent.add_parser("check", help="run every check once and print the results")
    a_chk.add_argument("--config", type=Path, required=True)
    a_chk.add_argument("--json", action="store_true")
    a_insp = agent.add_parser(
        "inspect", help="inspect every item now and publish the results as the inspection record"
    )
    a_insp.add_argument("--config", type=Path, required=True)
    a_insp.add_argument("--target", action="append", help="only this target (repeatable)")
    a_insp.add_argument("--json", action="store_true")
    a_disc = agent.add_parser(
        "discover", help="identify an SNMP device; print its [[targets]] block for agent.toml"
    )
    a_disc.add_argument("--snmp", required=True, metavar="HOST[:PORT]")
    a_disc.add_argument("--version", dest="snmp_version", choices=["1", "2c", "3"], default="2c")
    a_disc.add_argument("--community", default="public")
    a_disc.add_argument("--user")
    a_disc.add_argument(
        "--auth-protocol", choices=["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
    )
    a_disc.add_argument("--auth-key")
    a_disc.add_argument("--priv-protocol", choices=["des", "aes", "aes192", "aes256"])
    a_disc.add_argument("--priv-key")
    a_disc.add_argument("--timeout", type=float, default=2.0)
    a_disc.add_argument("--retries", type=int, default=1)
    a_disc.add_argument(
        "--no-trial", action="store_true", help="do not poll the items to find unexposed ones"
    )
    a_inst = agent.add_parser(
        "install", help="install or upgrade the agent as a hardened systemd service"
    )
    a_inst.add_argument("--config", type=Path, required=True)
    a_inst.add_argument("--root", type=Path, help="stage under this directory (packaging)")
    a_inst.add_argument("--no-start", action="store_true", help="do not enable/start it")
    a_inst.add_argument("--user", default="fieldmon", help="service user (default fieldmon)")

    coll = sub.add_parser("collector", help="the collector").add_subparsers(
        dest="cmd", required=True
    )
    c_run = coll.add_parser("run", help="ingest, incidents, HTTP")
    c_run.add_argument("--config", type=Path, required=True)

    insp = sub.add_parser("inspection", help="inspection runs on agents").add_subparsers(
        dest="cmd", required=True
    )
    n_req = insp.add_parser(
        "request", help="ask agents to run the inspection now (kept for offline agents)"
    )
    n_req.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    n_req.add_argument("--site", required=True)
    n_req.add_argument("--agent", action="append", help="only this agent (repeatable)")
    n_req.add_argument("--target", action="append", default=[], help="only this target")
    n_req.add_argument("--author", default=os.environ.get("USER") or "cli")

    inc = sub.add_parser("incidents", help="incidents").add_subparsers(dest="cmd", required=True)
    i_list = inc.add_parser("list")
    i_list.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    i_list.add_argument("--site")
    i_list.add_argument("--state", choices=["open", "resolved"])
    i_list.add_argument("--json", action="store_true")
    i_show = inc.add_parser("show")
    i_show.add_argument("number")
    i_show.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    i_show.add_argument("--json", action="store_true")
    for extra in ("--level", "--vendor", "--class", "--check", "--target", "--since", "--until"):
        i_list.add_argument(extra, dest=extra[2:].replace("class", "device_class"))
    i_open = inc.add_parser("open", help="open an incident by hand (a phone call, a finding)")
    i_open.add_argument("--site", required=True)
    i_open.add_argument("--target", default="")
    i_open.add_argument("--level", type=int, required=True, choices=[1, 2, 3, 4])
    i_open.add_argument("--title", required=True)
    i_open.add_argument("--description", default="")
    for field in ("name", "company", "phone", "email", "address"):
        i_open.add_argument(f"--caller-{field}", default="")
    i_ver = inc.add_parser("verify", help="check every incident's timeline hash chain")
    i_ver.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    i_ver.add_argument("--json", action="store_true")
    actions = {
        "ack": [],
        "assign": ["--to"],
        "note": ["--text"],
        "activity": ["--kind", "--text"],
        "level": ["--level", "--reason"],
        "pause": ["--reason"],
        "resume": [],
        "onsite": [],
        "restore": [],
        "resolve": ["--text"],
        "close": ["--score", "--comment"],
        "analysis": ["--symptoms", "--handling", "--result", "--prevention"],
    }
    for name, options in actions.items():
        a = inc.add_parser(name, help=f"{name} an incident (recorded on its timeline)")
        a.add_argument("number")
        for option in options:
            a.add_argument(option, dest=f"opt_{option[2:]}")
    for name in ("open", *actions):
        a = inc.choices[name]
        a.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
        a.add_argument("--author", default=os.environ.get("USER") or "cli")
        a.add_argument("--json", action="store_true")

    rep = sub.add_parser("report", help="reports").add_subparsers(dest="cmd", required=True)
    r_mon = rep.add_parser("monthly", help="monthly inspection report")
    r_mon.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    r_mon.add_argument("--site", required=True)
    r_mon.add_argument("--month", required=True, help="YYYY-MM")
    r_mon.add_argument("--lang", default="zh-CN", choices=["zh-CN", "en"])
    r_mon.add_argument("--format", default="html,json", help="comma-separated: html,json,pdf,xlsx")
    r_mon.add_argument("--out", type=Path, default=Path("."))
    r_mon.add_argument(
        "--template-dir",
        type=Path,
        default=None,
        help="folder with style.json (company, logo, colours) and/or restyled templates",
    )
    r_mon.add_argument(
        "--pdf-tags", action="store_true", help="tagged (accessible) PDF, about 8x larger"
    )

    _report_parsers(rep)

    chk = sub.add_parser("checklist", help="inspection checklists").add_subparsers(
        dest="cmd", required=True
    )
    k_show = chk.add_parser("show", help="print a device class's checklist")
    k_show.add_argument("--class", dest="device_class", required=True)
    k_show.add_argument("--lang", default="zh-CN", choices=["zh-CN", "en"])
    k_show.add_argument(
        "--dir", type=Path, action="append", default=[], help="extra checklist folder"
    )
    k_val = chk.add_parser("validate", help="validate checklist TOML files")
    k_val.add_argument("files", type=Path, nargs="+")
    _deploy_parser(sub)
    return p


def _report_parsers(rep: Any) -> None:
    """``fieldmon report fault|quarterly|review``: the reports beside the monthly one."""
    r_flt = rep.add_parser("fault", help="fault analysis report (故障分析说明) of one incident")
    r_flt.add_argument("--number", "--incident", dest="number", required=True, help="FM-…")
    r_qtr = rep.add_parser("quarterly", help="quarterly maintenance report")
    r_qtr.add_argument("--site", required=True)
    r_qtr.add_argument("--quarter", required=True, help="YYYYQn, e.g. 2026Q4")
    r_dev = rep.add_parser("device", help="per-device maintenance file (设备维护档案)")
    r_dev.add_argument("--site", required=True)
    r_dev.add_argument("--target", required=True)
    r_dev.add_argument("--from", dest="first", default=None, help="YYYY-MM (first seen)")
    r_dev.add_argument("--to", dest="last", default=None, help="YYYY-MM (this month)")
    for r in (r_flt, r_qtr, r_dev):
        r.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
        r.add_argument("--lang", default="zh-CN", choices=["zh-CN", "en"])
        r.add_argument("--format", default="html,json", help="comma-separated: html,json,pdf")
        r.add_argument("--out", type=Path, default=Path("."))
        r.add_argument(
            "--template-dir",
            type=Path,
            default=None,
            help="folder with style.json and/or restyled templates",
        )
    r_mail = rep.add_parser("mail", help="mail an approved monthly report to the site's contacts")
    r_mail.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    r_mail.add_argument("--site", required=True)
    r_mail.add_argument("--month", required=True, help="YYYY-MM")
    r_mail.add_argument("--lang", default="zh-CN", choices=["zh-CN", "en"])
    r_mail.add_argument("--out", type=Path, default=Path("."))
    r_rev = rep.add_parser("review", help="add remarks to a monthly report and approve it")
    r_rev.add_argument("--config", type=Path, default=DEFAULT_COLLECTOR_CONFIG)
    r_rev.add_argument("--site", required=True)
    r_rev.add_argument("--month", required=True, help="YYYY-MM")
    r_rev.add_argument("--lang", default="zh-CN", choices=["zh-CN", "en"])
    r_rev.add_argument(
        "--remark",
        action="append",
        default=[],
        help="'device:check=text' (repeatable; empty text removes the remark)",
    )
    r_rev.add_argument("--approve", action="store_true")
    r_rev.add_argument("--reviewer", default=os.environ.get("USER") or "cli")


def _deploy_parser(sub: Any) -> None:
    """``fieldmon deploy …``: files an operator installs (see fieldmon/deploy.py)."""
    dep = sub.add_parser("deploy", help="deployment files").add_subparsers(
        dest="cmd", required=True
    )
    d_b = dep.add_parser("broker", help="Mosquitto with TLS, one password per agent and an ACL")
    d_b.add_argument("--site", required=True)
    d_b.add_argument("--agents", required=True, help="comma-separated agent names")
    d_b.add_argument("--out", type=Path, required=True)
    d_b.add_argument("--ca-cert", type=Path)
    d_b.add_argument("--ca-key", type=Path)
    d_b.add_argument("--port", type=int, default=8883)
    d_b.add_argument("--bind", default="", help="listen address (default: all)")
    d_b.add_argument(
        "--hostname", action="append", default=[], help="name or IP agents dial (repeatable)"
    )
    d_b.add_argument("--data-dir", type=Path, default=Path("/var/lib/mosquitto"))


def _deploy(args: argparse.Namespace) -> int:
    from fieldmon.deploy import BrokerRequest, DeployError, describe, write_broker

    req = BrokerRequest(
        site=args.site,
        agents=tuple(a.strip() for a in args.agents.split(",") if a.strip()),
        out=args.out,
        port=args.port,
        bind=args.bind,
        hostnames=tuple(args.hostname),
        data_dir=args.data_dir,
        ca_cert=args.ca_cert,
        ca_key=args.ca_key,
    )
    try:
        files = write_broker(req)
    except (DeployError, ValueError) as exc:
        print(f"fieldmon: {exc}", file=sys.stderr)
        return 2
    print(describe(files, req))
    return 0


def _agent_malloc_env(argv: Sequence[str] | None) -> None:
    """Restart this process once with :data:`AGENT_MALLOC_ENV` if it is ``fieldmon agent run``
    started without it.

    glibc reads these settings only when the process starts, so an agent started by hand or
    by a service manager without the unit's ``Environment=`` lines re-executes itself (same
    PID, same arguments) before it has loaded anything big. Only for the process's own
    command line (``argv`` None), never for an in-process ``main([...])`` call, and only on
    glibc systems.
    """
    if argv is not None or sys.argv[1:3] != ["agent", "run"]:
        return
    missing = {k: v for k, v in AGENT_MALLOC_ENV.items() if k not in os.environ}
    if not missing or not sys.platform.startswith("linux"):
        return
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = None
    if not glibc:
        return
    os.environ.update(missing)
    os.execv(sys.executable, sys.orig_argv)


def main(argv: Sequence[str] | None = None) -> int:
    _agent_malloc_env(argv)
    # Imported after the re-execution above, which would only repeat the work.
    from fieldmon.configfile import ConfigError

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"fieldmon: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    area, cmd = args.area, str(getattr(args, "cmd", ""))
    if area in ("up", "run"):
        from fieldmon.allinone import run_all

        site = args.site or ("demo" if args.demo else "local")
        return run_all(
            args.state_dir,
            args.broker,
            args.http_port,
            site,
            demo=args.demo,
            demo_speed=args.demo_speed,
        )
    if area == "agent":
        return _agent(cmd, args)
    if area == "collector":
        from collector.config import load_collector_config
        from collector.runner import run_collector

        cfg = load_collector_config(args.config)
        _logging(cfg.log_level)
        asyncio.run(run_collector(cfg))
        return 0
    if area == "incidents":
        return _incidents(cmd, args)
    if area == "inspection":
        return _inspection_request(args)
    if area == "report":
        return _report(args)
    if area == "deploy":
        return _deploy(args)
    return _checklist(cmd, args)


def _agent(cmd: str, args: argparse.Namespace) -> int:
    if cmd == "discover":
        return _discover(args)
    if cmd == "install":
        return _agent_install(args)
    from agent.config import load_agent_config

    cfg = load_agent_config(args.config)
    _logging(cfg.log_level)
    if cmd == "run":
        from agent.runner import run_agent

        asyncio.run(run_agent(cfg))
        return 0
    from agent.runner import check_all
    from checks.status import Status
    from checks.wire import result_to_wire

    failure = None
    if cmd == "inspect":
        from agent.inspection import run_inspection

        results, failure = run_inspection(cfg, args.target)
    else:
        results = asyncio.run(check_all(cfg))
    if args.json:
        print(
            orjson.dumps([result_to_wire(r) for r in results], option=orjson.OPT_INDENT_2).decode()
        )
    else:
        rows = [("TARGET", "CHECK", "STATUS", "VALUE", "SUMMARY")]
        for r in results:
            value = "" if r.value is None else f"{r.value}{r.unit}"
            rows.append((r.target, r.key, r.status.name, value, r.summary))
        widths = [min(40, max(len(row[i]) for row in rows)) for i in range(4)]
        for row in rows:
            cells = [row[i][:40].ljust(widths[i]) for i in range(4)]
            print("  ".join([*cells, row[4]]))
    if failure:
        print(f"fieldmon: {failure}", file=sys.stderr)
        return 1
    return 1 if any(r.status == Status.CRIT for r in results) else 0


def _agent_install(args: argparse.Namespace) -> int:
    from fieldmon.install import InstallError, InstallRequest, install

    req = InstallRequest(
        config=args.config, root=args.root, user=args.user, start=not args.no_start
    )
    try:
        report = install(req)
    except InstallError as exc:
        print(f"fieldmon: {exc}", file=sys.stderr)
        return 1
    print(report.text())
    return 0


def _discover(args: argparse.Namespace) -> int:
    from agent.discover import command

    fields = {
        "version": args.snmp_version,
        "community": args.community,
        "user": args.user,
        "auth_protocol": args.auth_protocol,
        "auth_key": args.auth_key,
        "priv_protocol": args.priv_protocol,
        "priv_key": args.priv_key,
        "timeout": args.timeout,
        "retries": args.retries,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    return command(args.snmp, fields, trial=not args.no_trial)


def _store(config: Path) -> Any:
    from collector.config import load_collector_config
    from collector.store.db import Store

    cfg = load_collector_config(config)
    return cfg, Store(cfg.database.url, cfg.tz)


def _inspection_request(args: argparse.Namespace) -> int:
    """``fieldmon inspection request``: retained requests to the site's agents."""
    import aiomqtt

    from collector.inspections import known_agents, manual_request, publish_requests

    cfg, store = _store(args.config)
    agents = known_agents(store, [args.site])
    if args.agent:
        unknown = sorted(set(args.agent) - {a for _, a in agents})
        if unknown:
            # Not yet seen is allowed (a new agent): the retained request waits for it.
            print(f"fieldmon: note: agent(s) {', '.join(unknown)} not seen yet at {args.site}")
        agents = [(args.site, a) for a in args.agent]
    if not agents:
        print(f"fieldmon: no agent has connected for site {args.site!r}", file=sys.stderr)
        return 1
    req = manual_request(args.target, args.author)
    try:
        asyncio.run(publish_requests(cfg.mqtt, agents, req))
    except (aiomqtt.MqttError, OSError) as exc:
        print(f"fieldmon: broker {cfg.mqtt.host}:{cfg.mqtt.port}: {exc}", file=sys.stderr)
        return 1
    print(f"inspection {req.request_id} requested from {', '.join(a for _, a in agents)}")
    return 0


def _incidents(cmd: str, args: argparse.Namespace) -> int:
    from collector.http.app import event_json, incident_json
    from collector.store.db import ActionError

    _, store = _store(args.config)
    if cmd == "verify":
        broken = store.verify_all()
        if args.json:
            print(orjson.dumps({"intact": not broken, "broken": broken}).decode())
        for number, entry in broken:
            print(f"{number}: timeline entry {entry} does not match its hash (altered)")
        if not broken:
            print("all incident timelines intact")
        return 1 if broken else 0
    if cmd not in ("list", "show"):
        try:
            number = _incident_action(cmd, args, store)
        except ActionError as exc:
            print(f"fieldmon: {exc}", file=sys.stderr)
            return 2
        found = store.incident(number)
        assert found is not None
        out = incident_json(found[0])
        print(
            orjson.dumps(out).decode()
            if args.json
            else f"{number}: {out['state']}, "
            f"level {out['level']}, tier {out['tier']}, assignee {out['assignee'] or '-'}"
        )
        return 0
    if cmd == "list":
        filters = {
            k: getattr(args, k)
            for k in ("vendor", "device_class", "check", "target")
            if getattr(args, k)
        }
        rows = [
            incident_json(r)
            for r in store.incidents(
                site=args.site,
                state=args.state,
                limit=10_000,
                level=int(args.level) if args.level else None,
                since=_when(args.since),
                until=_when(args.until),
                **filters,
            )
        ]
        if args.json:
            print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
            return 0
        print(f"{'NUMBER':20} {'LVL':3} {'STATE':8} {'OPENED':21} {'RESOLVED':21} TITLE")
        for i in rows:
            print(
                f"{i['number']:20} {i['level']:<3} {i['state']:8} {i['opened_at']:21} "
                f"{i['resolved_at'] or '-':21} {i['title']}"
            )
        return 0
    found = store.incident(args.number)
    if found is None:
        print(f"fieldmon: no incident {args.number}", file=sys.stderr)
        return 1
    row, events = found
    out = incident_json(row)
    out["timeline"] = [event_json(e) for e in events]
    out["timeline_intact"] = store.verify_timeline(int(row["id"]))
    if args.json:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return 0
    for key in ("number", "title", "level", "state", "opened_at", "resolved_at", "summary"):
        print(f"{key:12} {out[key]}")
    print("timeline:" + ("" if out["timeline_intact"] else "  (HASH CHAIN BROKEN)"))
    for ev in out["timeline"]:
        print(f"  {ev['at']}  {ev['kind']:10} {ev['author']:10} {ev['text']}")
    return 0


def _when(text: str | None) -> datetime | None:
    from fieldmon.configfile import ConfigError

    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _incident_action(cmd: str, args: argparse.Namespace, store: Any) -> str:
    now = datetime.now(UTC)
    if cmd == "open":
        caller = {
            f: getattr(args, f"caller_{f}")
            for f in ("name", "company", "phone", "email", "address")
            if getattr(args, f"caller_{f}")
        }
        number, _ = store.open_manual(
            site=args.site,
            target=args.target,
            level=args.level,
            title=args.title,
            description=args.description,
            caller=caller,
            author=args.author,
            now=now,
        )
        return str(number)
    opts = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    if ("reason" in opts and cmd == "level") or "reason" in opts:
        opts["text"] = opts.pop("reason")
    store.act(args.number, cmd, args.author, now, **opts)
    return str(args.number)


def _report(args: argparse.Namespace) -> int:
    from checks.catalogue import load_catalogue
    from collector.reports.monthly import ReportError, build_monthly, render

    if args.cmd in ("fault", "quarterly", "review", "device", "mail"):
        from collector.reports.commands import report_command

        return report_command(args)
    cfg, store = _store(args.config)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    try:
        data = build_monthly(
            store, cfg, load_catalogue(cfg.catalogue_dirs), args.site, args.month, args.lang
        )
        from collector.reports.review import settle

        settle(store, data, "monthly", args.month, datetime.now(UTC), cfg.tz, warn=_warn)
        paths = render(
            data, formats, args.out, template_dir=args.template_dir, pdf_tags=args.pdf_tags
        )
    except ReportError as exc:
        print(f"fieldmon: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


def _warn(message: str) -> None:
    print(f"fieldmon: {message}", file=sys.stderr)


def _checklist(cmd: str, args: argparse.Namespace) -> int:
    from checks.catalogue import CatalogueError, load_catalogue, load_file

    if cmd == "validate":
        failed = 0
        for path in args.files:
            try:
                dc = load_file(path)
                print(f"{path}: OK, class {dc.name!r}, {len(dc.items)} items")
            except CatalogueError as exc:
                print(f"fieldmon: {exc}", file=sys.stderr)
                failed += 1
        return 2 if failed else 0
    try:
        classes = load_catalogue(args.dir)
    except CatalogueError as exc:
        print(f"fieldmon: {exc}", file=sys.stderr)
        return 2
    found = classes.get(args.device_class)
    if found is None:
        print(
            f"fieldmon: unknown class {args.device_class!r} (known: {', '.join(sorted(classes))})",
            file=sys.stderr,
        )
        return 2
    dc = found
    lang = args.lang
    print(f"{dc.title_in(lang)} ({dc.name})")
    for it in dc.items:
        thr = it.threshold.describe() if it.threshold else "-"
        per = f" /{it.per}" if it.per else ""
        print(
            f"  [{it.category_in(lang)}] {it.title_in(lang)}  id={it.id}{per}  "
            f"level={it.level}  method={it.method}  every={it.interval_text}  "
            f"threshold={thr}{(' ' + it.unit) if it.unit and it.threshold else ''}"
        )
    return 0
