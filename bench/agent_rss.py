"""Agent memory: idle RSS of ``fieldmon agent run`` watching its own host, against node_exporter.

Why: the agent lives on a customer's NVR or server, bought to record video, not to run
monitoring; the agent issue's goal is an idle resident set of at most 40 MiB for an agent
that watches only its own host. Prometheus's ``node_exporter`` (Go, the usual "small agent"
on such hosts) is measured in the same run as the anchor.

What is measured, all three processes started by this script and running side by side:

* ``python -m fieldmon agent run --config X`` with one ``linux-server`` target (this host),
  no SNMP, publishing to a private Mosquitto started here like ``tests/support/broker.py``'s
  ``Broker`` (so the publisher is connected and delivering, as in production);
* the same agent with one ``snmp-device`` target more, polling a net-snmp ``snmpd`` started
  here on a free loopback UDP port (gufo-snmp loaded), for information;
* the own-host agent once more, from a byte-compiled copy of ``agent/``, ``checks/`` and
  ``fieldmon/`` (the ``.pyc`` files pip writes when it installs fieldmon), for information:
  from this checkout, with ``PYTHONDONTWRITEBYTECODE`` set, every start compiles fieldmon
  from source and keeps the compiler's freed memory (:class:`InstalledProc`);
* ``prometheus-node-exporter --web.listen-address=127.0.0.1:PORT`` with its default
  collectors, scraped once after start (so every collector has run once, as under a
  Prometheus) and then left idle.

After a settling time (the agents' first collection, which includes the inspection-only
items, and node_exporter's first scrape), each process's RSS (``psutil``, ``memory_info``)
is sampled once a second; the figure is the median of the samples (20 s in full mode). USS
(memory not shared with other processes) is printed too. The ratio is agent RSS ÷
node_exporter RSS; the goal is about the absolute figure (≤ 40 MiB), printed beside it. Without
``prometheus-node-exporter`` installed, the agents are measured and no ratio is given.

Run: ``.venv/bin/python -m bench.agent_rss [--quick]``.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench._common import Deadline, Row, emit, median, parse_args
from bench._services import NodeExporter, Snmpd
from tests.support.broker import Broker
from tests.support.procs import Proc

MIB = 1024 * 1024
GOAL_MIB = 40.0
ROOT = Path(__file__).resolve().parents[1]
#: What ``fieldmon agent run`` imports from this repository.
PACKAGES = ("agent", "checks", "fieldmon")


class InstalledProc(Proc):
    """``fieldmon agent run`` from a byte-compiled copy of the packages, as pip installs them.

    Why: run from this checkout with ``PYTHONDONTWRITEBYTECODE`` set (as the development
    machines do), Python compiles every fieldmon module from source at each start, and the
    compiler's freed memory stays in the process (about 1 MiB of RSS, measured). An installed
    agent loads the ``.pyc`` files pip wrote at install time. Same source, same interpreter and
    virtualenv; only where the bytecode comes from differs.
    """

    def __init__(self, args: list[str], log: Path, folder: Path) -> None:
        site = folder / "installed"
        for name in PACKAGES:
            shutil.copytree(ROOT / name, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        if not compileall.compile_dir(site, quiet=1):
            raise RuntimeError(f"could not byte-compile the copy in {site}")
        self.log_path = log
        self._log = log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # ``-m`` puts the working directory first on sys.path: the copy, not the checkout.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fieldmon", *args],
            stdout=self._log,
            stderr=self._log,
            env=env,
            cwd=site,
        )


@dataclass(slots=True)
class Memory:
    name: str
    pid: int
    rss: list[float] = field(default_factory=list)
    uss: list[float] = field(default_factory=list)

    def sample(self) -> None:
        proc = psutil.Process(self.pid)
        info = proc.memory_full_info()
        self.rss.append(info.rss / MIB)
        self.uss.append(info.uss / MIB)

    def row(self) -> str:
        return (
            f"{self.name:<44} RSS median {median(self.rss):6.1f} MiB "
            f"(min {min(self.rss):.1f}, max {max(self.rss):.1f})   USS {median(self.uss):6.1f} MiB"
        )


def agent_config(folder: Path, name: str, broker_port: int, snmpd: Snmpd | None) -> Path:
    path = folder / f"{name}.toml"
    text = (
        f'site = "bench"\nagent = "{name}"\nstate_dir = "{folder / name}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        '[[targets]]\nname = "this-host"\nclass = "linux-server"\n'
    )
    if snmpd is not None:
        text += (
            '[[targets]]\nname = "sw-1"\nclass = "snmp-device"\n'
            f'address = "{snmpd.host}"\n'
            f'[targets.snmp]\nversion = "2c"\nport = {snmpd.port}\ncommunity = "public"\n'
        )
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "agent_rss", argv)
    settle, sampling = (6.0, 3.0) if args.quick else (10.0, 20.0)
    deadline = Deadline(args.budget)
    folder = Path(tempfile.mkdtemp(prefix="fm-bench-rss-"))
    broker = Broker()
    snmpd = Snmpd()
    node: NodeExporter | None = NodeExporter()
    node_error = ""
    agents: list[Proc] = []
    try:
        broker.start()
        snmpd.start()
        assert node is not None
        try:
            node.start()
        except SystemExit as exc:  # not installed: measure the agents, print no ratio
            node_error = str(exc)
            node.close()
            node = None
        plain = Proc(
            ["agent", "run", "--config", str(agent_config(folder, "local", broker.port, None))],
            folder / "local.log",
        )
        agents.append(plain)
        with_snmp = Proc(
            ["agent", "run", "--config", str(agent_config(folder, "snmp", broker.port, snmpd))],
            folder / "snmp.log",
        )
        agents.append(with_snmp)
        installed = InstalledProc(
            ["agent", "run", "--config", str(agent_config(folder, "inst", broker.port, None))],
            folder / "inst.log",
            folder,
        )
        agents.append(installed)
        print(
            f"agent_rss: mosquitto :{broker.port}, snmpd udp :{snmpd.port}, node_exporter "
            f"{f':{node.port}' if node else 'NOT AVAILABLE: ' + node_error}; "
            f"settling {settle:g} s, then sampling {sampling:g} s once a second"
        )
        time.sleep(2.0)
        body = node.scrape() if node is not None else 0
        time.sleep(max(0.0, settle - 2.0))
        for p in agents:
            if p.proc.poll() is not None:
                raise RuntimeError(f"agent exited early:\n{p.output()[-2000:]}")
        mems = [
            Memory("fieldmon agent (own host only)", plain.proc.pid),
            Memory("fieldmon agent (own host + 1 SNMP device)", with_snmp.proc.pid),
            Memory("fieldmon agent (own host), .pyc as installed", installed.proc.pid),
        ]
        if node is not None:
            mems.append(Memory("prometheus-node-exporter (anchor)", node.pid))
        end = time.monotonic() + sampling
        while True:
            for m in mems:
                m.sample()
            if time.monotonic() >= end:
                break
            time.sleep(1.0)
        for p in agents:
            if p.proc.poll() is not None:
                raise RuntimeError(f"agent exited during sampling:\n{p.output()[-2000:]}")
        published = sum(1 for _ in (folder / "local").glob("outbox.sqlite"))
        assert published == 1, "the agent made no outbox"
    finally:
        codes = [p.stop() for p in agents]
        if node is not None:
            node.close()
        snmpd.close()
        broker.cleanup()
    logs = {p.log_path.name: p.output() for p in agents}
    shutil.rmtree(folder, ignore_errors=True)
    errors = [n for n, text in logs.items() if "Traceback" in text]
    if errors or any(c not in (0, None) for c in codes):
        print(f"agent exit codes {codes}; tracebacks in {errors}")
        for n in errors:
            print(logs[n][-2000:])
        return 1
    agent, snmp, inst = mems[:3]
    anchor = mems[3] if len(mems) > 3 else None
    ratio = median(agent.rss) / median(anchor.rss) if anchor is not None else float("nan")
    print(f"samples: {len(agent.rss)} per process; {deadline.elapsed():.1f} s in all")
    for m in mems:
        print(m.row())
    verdict = "meets" if median(agent.rss) <= GOAL_MIB else "misses"
    print(
        f"  RATIO agent RSS ÷ node_exporter RSS: {ratio:.2f}; agent {median(agent.rss):.1f} MiB "
        f"{verdict} the {GOAL_MIB:g} MiB goal; one SNMP target adds "
        f"{median(snmp.rss) - median(agent.rss):.1f} MiB (gufo-snmp loaded)"
    )
    print(
        f"  installed form (.pyc from pip, not compiled at start): {median(inst.rss):.1f} MiB "
        f"({median(inst.rss) - median(agent.rss):+.1f} MiB against this checkout's agent)"
    )
    if anchor is not None:
        print(f"  node_exporter's first scrape returned {body} bytes")
    else:
        print(f"  node_exporter not measured ({node_error}): no ratio, absolute figures only")
    emit(
        [
            Row(
                benchmark="agent_rss",
                what=(
                    "idle RSS of `fieldmon agent run`, one linux-server target (own host), "
                    "publishing to a private Mosquitto; median of samples after settling"
                ),
                anchor="prometheus-node-exporter (Debian), default collectors, same run",
                ratio=ratio,
                figures=(
                    f"{median(agent.rss):.1f} vs "
                    f"{f'{median(anchor.rss):.1f}' if anchor else 'n/a'} MiB RSS "
                    f"(goal ≤ {GOAL_MIB:g} MiB); with 1 SNMP target {median(snmp.rss):.1f} MiB; "
                    f"installed form (.pyc) {median(inst.rss):.1f} MiB"
                ),
                extra={
                    "agent_rss_mib": median(agent.rss),
                    "anchor_rss_mib": median(anchor.rss) if anchor else float("nan"),
                    "agent_snmp_rss_mib": median(snmp.rss),
                    "agent_uss_mib": median(agent.uss),
                    "agent_installed_rss_mib": median(inst.rss),
                    "anchor_uss_mib": median(anchor.uss) if anchor else float("nan"),
                },
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
