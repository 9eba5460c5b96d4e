"""``fieldmon up`` (alias ``fieldmon run``): the whole product on one machine.

Starts a private Mosquitto on a free loopback port (unless a broker is given), a collector
with SQLite, and an agent watching this host, each as its own process exactly as they run in
production, and stops them together. With ``--demo`` a simulated customer site runs beside
them (:mod:`fieldmon.demo`): snmpsim serving generated recordings of 54 devices on loopback
addresses, polled by the same agent, with faults injected on a schedule, so a first-time user
sees incidents open and resolve within minutes.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from fieldmon.configfile import ConfigError
from fieldmon.processes import stop_process

if TYPE_CHECKING:
    from fieldmon.demo.run import DemoSite


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_conf(port: int, data_dir: Path) -> str:
    """A loopback-only broker that keeps queued QoS 1 messages for offline collectors."""
    return "\n".join(
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            # The default of 1000 silently drops results for a slow or stopped collector.
            "max_queued_messages 1000000",
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


def give_to_broker_user(folder: Path) -> None:
    """Mosquitto started as root drops to the ``mosquitto`` user: let it write its state."""
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(folder, pw.pw_uid, pw.pw_gid)


def wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_healthy(http_port: int, deadline: float) -> bool:
    url = f"http://127.0.0.1:{http_port}/healthz"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _password_hash(path: Path) -> str:
    """argon2 hash of the generated console password (the collector extra provides argon2)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(path.read_text().strip())


def _session_secret(state_dir: Path) -> Path:
    """The console's cookie-signing key, drawn once and kept in the state folder (0600): kept,
    so a restart does not sign everyone out; drawn here, so no start warns that it is
    missing. The file is created with its final mode, never readable by others even briefly."""
    path = state_dir / "session-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_all(
    state_dir: Path,
    broker: str | None,
    http_port: int,
    site: str,
    *,
    demo: bool = False,
    demo_speed: float = 1.0,
) -> int:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    # From the first child on, a stop (systemd, Ctrl-C) must reach the shutdown below rather
    # than kill this process and leave the broker and collector running as orphans.
    stopping = False

    def _term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    if broker:
        host, _, port_text = broker.rpartition(":")
        if not host or not port_text.isdigit():
            raise ConfigError(f"--broker {broker!r}: expected host:port")
        port = int(port_text)
    else:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ConfigError("mosquitto is not installed; install it or pass --broker host:port")
        host, port = "127.0.0.1", free_port()
        data = state_dir / "mosquitto"
        data.mkdir(exist_ok=True)
        give_to_broker_user(data)
        conf = state_dir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(port, data))
        procs.append(("broker", subprocess.Popen([exe, "-c", str(conf)])))
        if not wait_port(port, time.monotonic() + 10):
            _stop(procs)
            print("fieldmon: the broker did not start", file=sys.stderr)
            return 1
    demo_site: DemoSite | None = None
    if demo:
        from fieldmon.demo.run import DemoSite

        try:
            demo_site = DemoSite(state_dir / "demo", speed=demo_speed)
            demo_site.start()
        except (ValueError, RuntimeError) as exc:
            _stop(procs)
            print(f"fieldmon: demo site: {exc}", file=sys.stderr)
            return 1
    token_file = state_dir / "api-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24) + "\n")
        token_file.chmod(0o600)
    password_file = state_dir / "web-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12) + "\n")
        password_file.chmod(0o600)
    secret_file = _session_secret(state_dir)
    coll = state_dir / "collector.toml"
    coll.write_text(
        "# Written by `fieldmon run` (embedded defaults); edit and run the collector yourself\n"
        # the demo's own lines (faults injected, recovered) should not drown in routine logs
        + ('log_level = "WARNING"\n' if demo_site else "")
        + f"[mqtt]\nhost = {_toml_str(host)}\nport = {port}\n"
        f"[database]\nurl = {_toml_str('sqlite:///' + str(state_dir / 'collector.db'))}\n"
        f'[http]\nlisten = "127.0.0.1"\nport = {http_port}\n'
        f"session_secret_file = {_toml_str(str(secret_file))}\n"
        + (
            ""
            if demo_site
            else f'[[sites]]\nname = {_toml_str(site)}\ntitle = "{socket.gethostname()}"\n'
        )
        + f'[[tokens]]\nname = "admin"\nrole = "admin"\ntoken_file = {_toml_str(str(token_file))}\n'
        f'[[users]]\nname = "admin"\nrole = "admin"\n'
        f"password_hash = {_toml_str(_password_hash(password_file))}\n"
        + (demo_site.collector_toml(site) if demo_site else "")
    )
    agent = state_dir / "agent.toml"
    hostname = socket.gethostname().split(".")[0] or "localhost"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in hostname)[:64]
    agent.write_text(
        "# Written by `fieldmon run` (embedded defaults)\n"
        f"site = {_toml_str(site)}\nagent = {_toml_str(safe)}\n"
        + ('log_level = "WARNING"\n' if demo_site else "")
        + f"state_dir = {_toml_str(str(state_dir / 'agent'))}\n"
        f"[mqtt]\nhost = {_toml_str(host)}\nport = {port}\n"
        f'[[targets]]\nname = {_toml_str(safe)}\nclass = "linux-server"\n'
        + (demo_site.agent_targets_toml() if demo_site else "")
    )
    me = [sys.executable, "-m", "fieldmon"]
    procs.append(("collector", subprocess.Popen([*me, "collector", "run", "--config", str(coll)])))
    # The collector subscribes first: its persistent session then holds every result the
    # agent publishes, even the very first ones.
    if not wait_healthy(http_port, time.monotonic() + 30):
        _stop(procs)
        if demo_site:
            demo_site.stop()
        print("fieldmon: the collector did not become healthy", file=sys.stderr)
        return 1
    if stopping:  # asked to stop while starting: nothing more to start
        _stop(procs)
        if demo_site:
            demo_site.stop()
        return 0
    procs.append(("agent", subprocess.Popen([*me, "agent", "run", "--config", str(agent)])))
    print(
        f"\nfieldmon is running (site {site!r}, state in {state_dir}):\n"
        f"  broker      mqtt://{host}:{port}\n"
        f"  health      http://127.0.0.1:{http_port}/healthz\n"
        f"  metrics     http://127.0.0.1:{http_port}/metrics\n"
        f"  console     http://127.0.0.1:{http_port}/  (user admin, password in {password_file})\n"
        f"  API         http://127.0.0.1:{http_port}/api/v1/docs  (admin bearer token in "
        f"{token_file})\n"
        f'  incidents   curl -H "Authorization: Bearer $(cat {token_file})" '
        f"http://127.0.0.1:{http_port}/api/v1/incidents   or\n"
        f"              fieldmon incidents list --config {coll}\n"
        f"  report      fieldmon report monthly --config {coll} --site {site} "
        f"--month {time.strftime('%Y-%m')} --lang zh-CN --out {state_dir / 'reports'}\n"
        + (demo_site.summary() + "\n" if demo_site else "")
        + "Press Ctrl-C to stop.\n",
        flush=True,
    )
    rc = 0
    try:
        while not stopping:
            for name, p in procs:
                if p.poll() is not None:
                    print(f"fieldmon: {name} exited with {p.returncode}; stopping", file=sys.stderr)
                    stopping, rc = True, 1
            if demo_site:
                for line in demo_site.tick():
                    print(f"{time.strftime('%H:%M:%S')} demo {line}", flush=True)
            time.sleep(0.5)
    finally:
        _stop(procs)
        if demo_site:
            demo_site.stop()
    return rc


def _stop(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    # Agent and collector first, so the agent can say "offline" while the broker is up.
    for _, p in reversed(procs):
        stop_process(p)
