"""The simulated customer site next to ``fieldmon up --demo``: responders, configs, faults.

:class:`DemoSite` writes the recordings (:mod:`fieldmon.demo.recordings`), serves each
responder group with its own ``snmpsim-command-responder`` process on loopback addresses
(one address per device, one UDP port for all), and on every :meth:`DemoSite.tick` applies
the fault schedule of :mod:`fieldmon.demo.faults`: rewriting the files of devices whose
answers changed and stopping or starting the groups that go dark or come back. The core
switch also answers SSH (:mod:`fieldmon.demo.sshd`, its own process on the switch's address,
with a host key generated here and written into the demo's known_hosts), so the agent backs
up its configuration; the "config" fault rewrites one line of it. It also writes the agent
targets and the collector's site, contract and SLA for the demo, so the rest of the product
runs exactly as it would at a customer.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko

from fieldmon.demo import faults
from fieldmon.demo import site as s
from fieldmon.demo.recordings import VARIATION_DIR, RecordingWriter, site_addresses
from fieldmon.processes import stop_process

#: Seconds at speed 1 between two polls of the checks the faults show; other checks keep
#: their catalogue interval (inventory once a day, at the start).
DEMO_INTERVALS: dict[str, dict[str, int]] = {
    "*": {"snmp.reachable": 15, "if.oper_status": 30, "snmp.uptime": 60},
    "switch": {
        "cpu.usage": 60,
        "if.utilisation": 60,
        "if.errors": 60,
        "if.discards": 60,
        # only the core switch has [ssh]: its configuration backup, every 40 s at speed 1
        "config.backup": 40,
        "config.changed": 40,
    },
    "camera": {"clock.drift": 20, "cpu.usage": 60, "mem.usage": 60},
    "nvr": {"clock.drift": 60, "disk.usage": 120},
    "ups": {
        "ups.on_battery": 10,
        "ups.output_status": 15,
        "ups.battery_capacity": 15,
        "ups.runtime": 15,
        "ups.input_voltage": 15,
    },
    "server-snmp": {"disk.usage": 20, "cpu.usage": 30, "mem.usage": 30, "clock.drift": 60},
    "windows-server": {"disk.usage": 20, "cpu.usage": 30, "mem.usage": 30, "clock.drift": 60},
}
#: Items the simulated models do not expose (``fieldmon agent discover`` lists the same).
DISABLED = {"camera": ["disk.status"], "nvr": ["device.health"]}
#: 220 V mains (China): the catalogue leaves the input voltage threshold to the site.
THRESHOLDS = {"ups": {"ups.input_voltage": "{ lower = [198, 176] }"}}


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_udp_port_on(addresses: list[str], attempts: int = 60) -> int:
    """A UDP port free on every one of ``addresses`` (tried by binding each)."""
    rng = random.Random()
    for _ in range(attempts):
        port = rng.randrange(20_000, 60_000)
        socks: list[socket.socket] = []
        try:
            for address in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no UDP port free on all of {addresses[0]}…{addresses[-1]}")


class Responder:
    """One snmpsim process serving one group's data files on its devices' addresses."""

    def __init__(self, group: str, root: Path, endpoints: list[str]) -> None:
        self.group = group
        self.root = root / group
        self.endpoints = endpoints
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        exe = Path(sys.executable).parent / "snmpsim-command-responder"
        cmd = [
            str(exe),
            f"--data-dir={self.root / 'data'}",
            f"--cache-dir={self.root / 'cache'}",
            f"--variation-modules-dir={VARIATION_DIR}",
            # at "info" it logs every request: hundreds of MB an hour for a whole site
            "--log-level=error",
            *(f"--agent-udpv4-endpoint={e}" for e in self.endpoints),
        ]
        (self.root / "cache").mkdir(parents=True, exist_ok=True)
        # As root snmpsim would drop to "nobody", who cannot read the state directory.
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        with (self.root / "responder.log").open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


class SshServer:
    """The core switch's SSH server (:mod:`fieldmon.demo.sshd`) as a child process, with
    its host key, the agent's known_hosts entry, the login password and the configuration
    file it serves, all under ``root``."""

    def __init__(self, root: Path, dev: s.Device) -> None:
        self.root = root
        self.dev = dev
        self.port = free_tcp_port_on(dev.address)
        self.key_file = root / "ssh_host_rsa_key"
        self.known_hosts = root / "known_hosts"
        self.password_file = root / "password"
        self.config_file = root / "current-configuration.cfg"
        self.proc: subprocess.Popen[bytes] | None = None
        self._config = ""

    def prepare(self, state: s.SiteState) -> None:
        """A new host key and password for this run, the known_hosts line for them."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = paramiko.RSAKey.generate(2048)
        key.write_private_key_file(str(self.key_file))
        self.key_file.chmod(0o600)
        self.known_hosts.write_text(
            f"[{self.dev.address}]:{self.port} {key.get_name()} {key.get_base64()}\n",
            encoding="ascii",
        )
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(18) + "\n")
        self.write_config(state)

    def write_config(self, state: s.SiteState) -> bool:
        """Rewrite the served configuration if it changed (atomically); True if it did."""
        text = s.core_config(self.dev, state)
        if text == self._config:
            return False
        tmp = self.config_file.with_name(self.config_file.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.config_file)
        self._config = text
        return True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "fieldmon.demo.sshd",
            f"--listen={self.dev.address}",
            f"--port={self.port}",
            f"--host-key={self.key_file}",
            f"--config={self.config_file}",
            f"--hostname={self.dev.name}",
            f"--username={s.SSH_USER}",
            f"--password-file={self.password_file}",
        ]
        with (self.root / "sshd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def answers(self, deadline: float) -> bool:
        while time.monotonic() < deadline and self.running:
            try:
                with socket.create_connection((self.dev.address, self.port), timeout=1.0) as c:
                    c.settimeout(2.0)
                    return c.recv(64).startswith(b"SSH-")
            except OSError:
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def target_toml(self, timeout: float = 10.0) -> str:
        """The ``[targets.ssh]`` section of the core switch."""
        return (
            f'[targets.ssh]\nvendor = "vrp"\nport = {self.port}\n'
            f"username = {_toml_str(s.SSH_USER)}\n"
            f"password_file = {_toml_str(str(self.password_file))}\n"
            f"known_hosts = {_toml_str(str(self.known_hosts))}\ntimeout = {timeout:g}\n"
        )


def free_tcp_port_on(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class DemoSite:
    """The demo site's devices, responders and fault schedule.

    ``speed`` compresses the schedule and the polling intervals (1 = the pace a person
    watches; tests use 4-6). ``first_address`` is the first of the loopback addresses the
    devices get, one each.
    """

    def __init__(
        self,
        root: Path,
        *,
        speed: float = 1.0,
        first_address: str = "127.0.0.20",
        port: int | None = None,
    ) -> None:
        if speed <= 0 or speed > 60:
            raise ValueError(f"--demo-speed {speed}: expected a number above 0 and at most 60")
        self.root = root
        self.speed = speed
        self.devices = s.build_site(site_addresses(first_address, 54))
        self.port = port or free_udp_port_on([d.address for d in self.devices])
        self.started = time.time()
        self._t0 = time.monotonic()
        self.writer = RecordingWriter(root, self.devices, self.started)
        self.responders = {
            g: Responder(
                g, root, [f"{d.address}:{self.port}" for d in self.devices if d.group == g]
            )
            for g in self.writer.groups()
        }
        core = next(d for d in self.devices if d.name == s.CORE)
        self.ssh = SshServer(root / "ssh", core)
        self.active: frozenset[str] = frozenset()
        self.log: list[str] = []

    # ------------------------------------------------------------------------ lifecycle

    def start(self, wait: float = 60.0) -> None:
        """Write the healthy site, start every responder and wait until each answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        healthy = faults.moment(0.0, self.speed, self.started).state
        self.writer.write(healthy)
        self.ssh.prepare(healthy)
        self.ssh.start()
        for responder in self.responders.values():
            responder.start()
        deadline = time.monotonic() + wait
        if not self.ssh.answers(deadline):
            self.stop()
            raise RuntimeError(
                f"the demo's SSH server did not answer within {wait:g}s; "
                f"see {self.ssh.root / 'sshd.log'}"
            )
        for group in self.responders:
            first = next(d for d in self.devices if d.group == group)
            if not self._answers(first, deadline):
                self.stop()
                raise RuntimeError(
                    f"the demo's SNMP responder {group!r} did not answer within {wait:g}s; "
                    f"see {self.root / group / 'responder.log'}"
                )
        self._t0 = time.monotonic()

    def _answers(self, dev: s.Device, deadline: float) -> bool:
        from gufo.snmp.sync import SnmpSession

        session = SnmpSession(dev.address, self.port, community=dev.community, timeout=0.5)
        while time.monotonic() < deadline:
            try:
                session.get_many(["1.3.6.1.2.1.1.3.0"])
                return True
            except TimeoutError:
                time.sleep(0.2)
            except Exception:
                return True  # an SNMP error is an answer too
        return False

    def stop(self) -> None:
        for responder in self.responders.values():
            responder.stop()
        self.ssh.stop()

    def tick(self) -> list[str]:
        """Apply the schedule now; returns what changed, as lines for the operator."""
        now = time.monotonic()
        moment = faults.moment(now - self._t0, self.speed, self.started)
        self.writer.write(moment.state, now)
        self.ssh.write_config(moment.state)
        if not self.ssh.running:
            self.ssh.start()  # the switch's SSH side never goes dark in this schedule
        lines: list[str] = []
        for name in sorted(moment.active - self.active):
            title = next(f.title for f in faults.FAULTS if f.name == name)
            lines.append(f"fault: {title}")
        for name in sorted(self.active - moment.active):
            lines.append(f"recovered: {name}")
        self.active = moment.active
        for group, responder in self.responders.items():
            if group in moment.dark_groups:
                responder.stop()
            elif not responder.running:
                responder.start()
        self.log += lines
        return lines

    # -------------------------------------------------------------------------- configs

    def interval(self, base: int) -> int:
        return max(5, round(base / self.speed))

    def agent_targets_toml(self) -> str:
        """``[[targets]]`` blocks for the agent, one per simulated device."""
        out: list[str] = []
        for d in self.devices:
            intervals = {**DEMO_INTERVALS["*"], **DEMO_INTERVALS.get(d.device_class, {})}
            shown = ", ".join(f'"{k}" = {self.interval(v)}' for k, v in intervals.items())
            out.append(
                f"\n[[targets]]\nname = {_toml_str(d.name)}\nclass = {_toml_str(d.device_class)}\n"
                f"address = {_toml_str(d.address)}\nlocation = {_toml_str(d.location)}\n"
            )
            if d.parent:
                out.append(f"parent = {_toml_str(d.parent)}\n")
            out.append(f"intervals = {{ {shown} }}\n")
            if d.device_class in DISABLED:
                items = ", ".join(_toml_str(c) for c in DISABLED[d.device_class])
                out.append(f"disabled = [{items}]\n")
            if d.device_class in THRESHOLDS:
                pairs = ", ".join(f'"{k}" = {v}' for k, v in THRESHOLDS[d.device_class].items())
                out.append(f"thresholds = {{ {pairs} }}\n")
            out.append(
                f'[targets.snmp]\nversion = "2c"\nport = {self.port}\n'
                f"community = {_toml_str(d.community)}\ntimeout = 2.0\nretries = 1\n"
            )
            if d.name == self.ssh.dev.name:
                out.append(self.ssh.target_toml())
        return "".join(out)

    @staticmethod
    def collector_toml(site: str) -> str:
        """The demo customer: site cover, contract with its SLA clocks."""
        return (
            f"[[sites]]\nname = {_toml_str(site)}\n"
            'customer = "Riverside Logistics Park Co., Ltd. (demo)"\n'
            'contract = "DEMO-2026-017"\n'
            'title = "Riverside Logistics Park: video surveillance"\n'
            'maintainer = "Example Security Integration Co. (demo)"\n'
            f'[[contracts]]\nname = "DEMO-2026-017"\nsites = [{_toml_str(site)}]\n'
            '[contracts.sla]\ncalendar = "7x24"\n'
            '[contracts.sla.levels."1"]\nrespond_minutes = 5\nresolve_minutes = 120\n'
            '[contracts.sla.levels."2"]\nrespond_minutes = 10\nresolve_minutes = 240\n'
        )

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for d in self.devices:
            counts[d.device_class] = counts.get(d.device_class, 0) + 1
        kinds = ", ".join(f"{n} {c}" for c, n in counts.items())
        first, last = self.devices[0].address, self.devices[-1].address
        lines = [
            f"  demo site   {len(self.devices)} simulated devices ({kinds})",
            f"              SNMP on {first}…{last} port {self.port}, recordings in {self.root}",
            f"              SSH  on {self.ssh.dev.address} port {self.ssh.port} ({s.CORE},"
            f" configuration backup; host key in {self.ssh.known_hosts})",
            f"  faults      (speed {self.speed:g})",
        ]
        lines += [f"              {line}" for line in faults.timeline(self.speed)]
        return "\n".join(lines)
