"""Run net-snmp's ``snmpd`` on loopback, so SNMPv3 is tested against the agent most Linux
servers, NAS and appliances actually run, not only against snmpsim.

snmpd serves this very machine (sysDescr from uname, the kernel's interfaces, HOST-RESOURCES
storage from the mounted file systems), so tests can compare what the probe reads with what
the machine says. Each :class:`Snmpd` gets a free 127.0.0.1 UDP port and its own folder with a
generated configuration: ``createUser`` lines for SNMPv3 users and ``rouser … priv`` so that
only authenticated and encrypted requests are served; ``communities`` optionally adds
``rocommunity`` lines restricted to 127.0.0.1 (a device that still answers v2c). ``trap_sink``
adds a ``trap2sink`` to a receiver on loopback with ``authtrapenable 1``, so snmpd sends an
SNMPv2c authenticationFailure trap for every request with a community it does not know, as a
field device set up to report intrusions does (and a coldStart trap when it starts).

snmpd runs in the foreground (``-f``), logs to its output file (``-Lo``), reads only the
generated file (``-C -c``), keeps its persistent state (where ``createUser`` turns into
localised keys) in the temporary folder (``SNMP_PERSISTENT_DIR``) instead of /var/lib/snmp, and
loads no MIB files (numeric OIDs only). It runs as whoever runs the tests (root in the test
container; no ``-u``): the port is unprivileged, it listens on 127.0.0.1 only, and its files
are created by the same user, so net-snmp finds them owned as it expects.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from agent.config import TargetConfig
from fieldmon.processes import stop_process
from tests.support.snmpsim import HOST, free_udp_port

AuthProto = Literal["sha", "sha224", "sha256", "sha384", "sha512", "md5"]
PrivProto = Literal["aes", "aes192", "aes256", "des"]

#: net-snmp's names in createUser for the agent configuration's protocol names.
_AUTH_NAMES = {
    "md5": "MD5",
    "sha": "SHA",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
}
_PRIV_NAMES = {"des": "DES", "aes": "AES", "aes192": "AES-192", "aes256": "AES-256"}
#: What createUser accepts as a user name or pass phrase without quoting trouble.
_SAFE = re.compile(r"[A-Za-z0-9_.@%+=-]{1,64}")


def snmpd_path() -> str:
    path = shutil.which("snmpd") or shutil.which("snmpd", path="/usr/sbin:/usr/bin")
    if path is None:
        raise FileNotFoundError("snmpd not found: apt-get install snmpd")
    return path


@dataclass(frozen=True, slots=True)
class SnmpdUser:
    """An SNMPv3 authPriv user, protocols named as in agent.toml (``sha``, ``aes``…).
    Pass phrases must be at least 8 characters (net-snmp refuses shorter ones)."""

    name: str
    auth_key: str
    priv_key: str
    auth_protocol: AuthProto = "sha"
    priv_protocol: PrivProto = "aes"

    def __post_init__(self) -> None:
        for field, value in (
            ("name", self.name),
            ("auth_key", self.auth_key),
            ("priv_key", self.priv_key),
        ):
            if not _SAFE.fullmatch(value):
                raise ValueError(f"SnmpdUser.{field} {value!r}: letters, digits and _.@%+=- only")
        for field, value in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if len(value) < 8:
                raise ValueError(f"SnmpdUser.{field}: net-snmp needs at least 8 characters")

    def conf_lines(self) -> str:
        auth, priv = _AUTH_NAMES[self.auth_protocol], _PRIV_NAMES[self.priv_protocol]
        return (
            f'createUser {self.name} {auth} "{self.auth_key}" {priv} "{self.priv_key}"\n'
            f"rouser {self.name} priv\n"
        )

    def snmp_settings(self) -> dict[str, Any]:
        """The ``[targets.snmp]`` keys an agent configuration gives for this user."""
        return {
            "version": "3",
            "user": self.name,
            "auth_protocol": self.auth_protocol,
            "auth_key": self.auth_key,
            "priv_protocol": self.priv_protocol,
            "priv_key": self.priv_key,
        }


class Snmpd:
    """One ``snmpd`` process on ``127.0.0.1:<port>``; ``start()`` returns once it answers a
    real SNMPv3 GET as the first user, ``stop()`` ends it by its PID."""

    host = HOST

    def __init__(
        self,
        users: list[SnmpdUser],
        *,
        communities: tuple[str, ...] = (),
        trap_sink: tuple[int, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        if not users:
            raise ValueError("Snmpd needs at least one SNMPv3 user")
        for community in communities:
            if not _SAFE.fullmatch(community):
                raise ValueError(f"community {community!r}: letters, digits and _.@%+=- only")
        self.users = users
        self.communities = communities
        if trap_sink is not None and not _SAFE.fullmatch(trap_sink[1]):
            raise ValueError("trap_sink community: letters, digits and _.@%+=- only")
        #: (UDP port on 127.0.0.1, community) that traps are sent to, if any.
        self.trap_sink = trap_sink
        self.start_timeout = start_timeout
        self.port = free_udp_port(self.host)
        self.workdir = Path(tempfile.mkdtemp(prefix="fieldmon-snmpd-"))
        self.conf_path = self.workdir / "snmpd.conf"
        self.log_path = self.workdir / "snmpd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config_text(self) -> str:
        lines = [
            f"agentaddress udp:{self.host}:{self.port}",
            "sysLocation fieldmon test bench, loopback",
            "sysContact nobody@example.invalid",
        ]
        lines += [f"rocommunity {c} {self.host}" for c in self.communities]
        if self.trap_sink is not None:
            port, community = self.trap_sink
            lines += ["authtrapenable 1", f"trap2sink {self.host}:{port} {community}"]
        return "\n".join(lines) + "\n" + "".join(u.conf_lines() for u in self.users)

    def start(self) -> None:
        if self.running:
            return
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        self.conf_path.chmod(0o600)  # it holds pass phrases
        persist = self.workdir / "persist"
        persist.mkdir(exist_ok=True)
        cmd = [
            snmpd_path(),
            "-f",
            "-Lo",
            "-C",
            "-c",
            str(self.conf_path),
            "-p",
            str(self.workdir / "snmpd.pid"),
        ]
        env = {**os.environ, "MIBS": "", "MIBDIRS": "", "SNMP_PERSISTENT_DIR": str(persist)}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Poll with an SNMPv3 authPriv GET (gufo-snmp, as the agent) until it answers."""
        from gufo.snmp import SnmpVersion
        from gufo.snmp.sync import SnmpSession

        from agent.config import SnmpConfig
        from agent.snmp_client import _make_user

        user = _make_user(SnmpConfig.from_dict(self.users[0].snmp_settings()))
        deadline = time.monotonic() + self.start_timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc is not None else None
                raise RuntimeError(f"snmpd exited with code {code}; log:\n{self.log_tail()}")
            try:
                session = SnmpSession(
                    self.host, self.port, version=SnmpVersion.v3, user=user, timeout=0.5
                )
                session.refresh()
                session.get_many(["1.3.6.1.2.1.1.3.0"])
                return
            except Exception as exc:  # not bound yet, or still starting
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
        raise RuntimeError(
            f"snmpd did not answer on {self.host}:{self.port} within {self.start_timeout:g}s"
            f" (last: {last}); log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Snmpd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, limit: int = 4000) -> str:
        if not self.log_path.exists():
            return "<no log>"
        return self.log_path.read_text(errors="replace")[-limit:]

    def target(
        self,
        account: SnmpdUser,
        *,
        name: str = "srv-1",
        device_class: str = "server-snmp",
        **snmp: Any,
    ) -> TargetConfig:
        """A validated agent target polling this snmpd as ``account``; ``snmp`` overrides
        keys (a wrong ``auth_key`` or ``user``, a shorter ``timeout``)."""
        settings: dict[str, Any] = {
            "port": self.port,
            "timeout": 2.0,
            "retries": 1,
            **account.snmp_settings(),
        }
        settings.update(snmp)
        return TargetConfig.from_dict(
            {"name": name, "class": device_class, "address": self.host, "snmp": settings}
        )
