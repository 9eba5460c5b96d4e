"""External programs the benchmarks start on loopback: net-snmp ``snmpd``, Prometheus's
``node_exporter`` and ``snmp_exporter`` (Debian packages), and a UDP "black hole".

Each is started on a free 127.0.0.1 port with its own files in a temporary folder, waited
for until it answers, and stopped (terminate, then kill) by :meth:`Service.close`; nothing
is left running after a benchmark, whatever happens.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from fieldmon.allinone import free_port, wait_port
from fieldmon.processes import stop_process

HOST = "127.0.0.1"
COMMUNITY = "public"
#: No MIB loading for net-snmp (numeric OIDs only): faster start, no warnings.
NO_MIBS = {"MIBS": "", "MIBDIRS": ""}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def need(program: str, package: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if path is None:
        raise SystemExit(f"{program} not found: apt-get install {package}")
    return path


class Service:
    """One child process with its output in ``<dir>/<name>.log``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"fm-bench-{name}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=log, env={**os.environ, **(env or {})}, cwd=self.dir
        )
        log.close()

    def log_tail(self, lines: int = 15) -> str:
        path = self.dir / f"{self.name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait(self, ready: bool) -> None:
        if not ready:
            tail = self.log_tail()
            self.close()
            raise RuntimeError(f"{self.name} did not start:\n{tail}")

    def close(self) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Snmpd(Service):
    """net-snmp's agent serving this host's own MIB-II (read-only, v1/v2c, ``public``)."""

    def __init__(self) -> None:
        super().__init__("snmpd")
        self.host = HOST
        self.port = free_udp_port()

    def start(self) -> Snmpd:
        exe = need("snmpd", "snmpd")
        conf = self.dir / "snmpd.conf"
        conf.write_text(
            f"agentaddress udp:{HOST}:{self.port}\n"
            f"rocommunity {COMMUNITY} {HOST}\n"
            "sysLocation fieldmon benchmark\nsysContact nobody\n",
            encoding="utf-8",
        )
        persist = self.dir / "persist"
        persist.mkdir()
        self._spawn(
            [exe, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(self.dir / "snmpd.pid")],
            env={**NO_MIBS, "SNMP_PERSISTENT_DIR": str(persist)},
        )
        self._wait(self._answers(time.monotonic() + 15))
        return self

    def _answers(self, deadline: float) -> bool:
        get = need("snmpget", "snmp")
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            done = subprocess.run(
                [
                    get,
                    "-v2c",
                    "-c",
                    COMMUNITY,
                    "-t",
                    "0.5",
                    "-r",
                    "0",
                    "-On",
                    f"{HOST}:{self.port}",
                    "1.3.6.1.2.1.1.3.0",
                ],
                capture_output=True,
                env={**os.environ, **NO_MIBS},
                check=False,
            )
            if done.returncode == 0:
                return True
            time.sleep(0.2)
        return False


class NodeExporter(Service):
    """``prometheus-node-exporter`` with its default collectors, on a free loopback port."""

    def __init__(self) -> None:
        super().__init__("node_exporter")
        self.port = free_port()

    def start(self) -> NodeExporter:
        exe = need("prometheus-node-exporter", "prometheus-node-exporter")
        self._spawn([exe, f"--web.listen-address={HOST}:{self.port}"])
        self._wait(wait_port(self.port, time.monotonic() + 15))
        return self

    def scrape(self) -> int:
        """One scrape of /metrics (what Prometheus would do); the body's size in bytes."""
        with urllib.request.urlopen(f"http://{HOST}:{self.port}/metrics", timeout=10) as r:
            return len(r.read())


class SnmpExporter(Service):
    """``prometheus-snmp-exporter`` (0.21, Debian 12) with one hand-written module."""

    def __init__(self, module_yaml: str) -> None:
        super().__init__("snmp_exporter")
        self.port = free_port()
        self.module_yaml = module_yaml

    def start(self) -> SnmpExporter:
        exe = need("prometheus-snmp-exporter", "prometheus-snmp-exporter")
        conf = self.dir / "snmp.yml"
        conf.write_text(self.module_yaml, encoding="utf-8")
        check = subprocess.run(
            [exe, f"--config.file={conf}", "--dry-run"], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"snmp_exporter rejects the module: {check.stderr.strip()}")
        self._spawn(
            [
                exe,
                f"--config.file={conf}",
                f"--web.listen-address={HOST}:{self.port}",
                "--log.level=warn",
            ]
        )
        self._wait(wait_port(self.port, time.monotonic() + 15))
        return self


class BlackHole:
    """A UDP socket that reads and drops every packet: a device that does not answer (a
    closed loopback port would answer ICMP port-unreachable at once, which is not the same)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.dropped = 0

    def readable(self) -> None:
        """Drain the socket (registered with the event loop's ``add_reader``)."""
        while True:
            try:
                self.sock.recv(65536)
            except BlockingIOError:
                return
            self.dropped += 1

    def close(self) -> None:
        self.sock.close()
