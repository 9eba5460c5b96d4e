"""Run the real snmpsim responder on loopback so SNMP tests talk to recorded devices, not mocks.

Each recording is served under its file name without ``.snmprec`` as the SNMPv1/v2c community
(``vrp_5720-32x-ei``). SNMPv3 requests carry no context name with gufo-snmp, so one chosen
recording is also served as ``self.snmprec``: snmpsim answers context-less SNMPv3 requests from
that file (see ``snmpsim.datafile.probe_context``).

Known behaviour worth remembering in tests: snmpsim sends *no answer* (the client times out)
for an unknown community, and for records whose OID it cannot encode; see SOURCES.md beside the
recordings.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from agent.config import TargetConfig
from fieldmon.processes import stop_process

HOST = "127.0.0.1"
#: snmpsim answers SNMPv3 requests with an empty context name from this data file.
V3_DEFAULT_FILE = "self.snmprec"
#: A record line "OID|tag|value" whose OID is not purely numeric (e.g. anonymised "10.xx.xx");
#: snmpsim 1.2.2 cannot encode those and stops answering, so served copies leave them out.
_NUMERIC_OID = re.compile(r"[0-9.]+")


def recordings_dir() -> Path:
    """The shared recordings folder: ``../shared/fixtures/snmprec`` beside the repository."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "snmprec"
    if not path.is_dir():
        raise FileNotFoundError(
            f"SNMP recordings not found at {path}; the tests expect the shared fixtures "
            "folder (shared/fixtures/snmprec) next to the repository checkout"
        )
    return path


def all_recordings() -> list[Path]:
    """Every ``*.snmprec`` file of the shared folder, sorted by name."""
    files = sorted(recordings_dir().glob("*.snmprec"))
    if not files:
        raise FileNotFoundError(f"no *.snmprec files in {recordings_dir()}")
    return files


def free_udp_port(host: str = HOST) -> int:
    """A UDP port nothing is bound to right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def filtered_copy(src: Path, dst: Path) -> int:
    """Copy a recording, leaving out records whose OID is not numeric; returns how many."""
    dropped = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        for line in fin:
            oid, sep, _ = line.partition(b"|")
            if sep and not _NUMERIC_OID.fullmatch(oid.decode("ascii", "replace").strip()):
                dropped += 1
                continue
            fout.write(line)
    return dropped


@dataclass(frozen=True, slots=True)
class SimV3User:
    """An SNMPv3 USM user for the responder; protocol names as snmpsim spells them
    (``MD5``/``SHA``/``SHA256``…, ``DES``/``AES``/``AES192``…). Keys must be over 8 chars."""

    name: str
    auth_key: str | None = None
    auth_proto: str = "SHA"
    priv_key: str | None = None
    priv_proto: str = "AES"

    def args(self) -> list[str]:
        out = [f"--v3-user={self.name}"]
        if self.auth_key:
            out += [f"--v3-auth-key={self.auth_key}", f"--v3-auth-proto={self.auth_proto}"]
        else:
            out += ["--v3-auth-proto=NONE"]
        if self.priv_key:
            out += [f"--v3-priv-key={self.priv_key}", f"--v3-priv-proto={self.priv_proto}"]
        else:
            out += ["--v3-priv-proto=NONE"]
        return out


#: The SNMPv3 user of the shared fixture: authPriv with SHA-1 and AES-128.
TEST_V3_USER = SimV3User(
    "fieldmon", auth_key="fieldmon-auth-1", auth_proto="SHA", priv_key="fieldmon-priv-1"
)


class SnmpSim:
    """One snmpsim-command-responder process on ``127.0.0.1:<port>`` serving ``recordings``.

    ``start()`` blocks until the responder answers a real SNMP GET (the first start builds the
    file indexes; later starts reuse the cache dir and take about a second). ``stop()`` ends the
    process by its PID. Stop and start again to simulate a device going away and coming back:
    the port stays the same. From async tests call them via ``asyncio.to_thread``.
    """

    host = HOST

    def __init__(
        self,
        recordings: Sequence[Path],
        *,
        v3_user: SimV3User | None = None,
        v3_recording: str | None = None,
        port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        if not recordings:
            raise ValueError("SnmpSim needs at least one recording")
        self.recordings = [Path(p) for p in recordings]
        self.communities = [p.name.removesuffix(".snmprec") for p in self.recordings]
        self.v3_user = v3_user
        self.v3_recording = v3_recording or (self.communities[0] if v3_user else None)
        if self.v3_recording is not None and self.v3_recording not in self.communities:
            raise ValueError(f"v3_recording {self.v3_recording!r} is not among the recordings")
        self._port = port
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="fieldmon-snmpsim-"))
        self.data_dir = self.workdir / "data"
        self.cache_dir = self.workdir / "cache"
        self.log_path = self.workdir / "responder.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The UDP port; picked on first use and kept across restarts."""
        if self._port is None:
            self._port = free_udp_port(self.host)
        return self._port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the responder (no-op if running) and wait until it answers SNMP."""
        if self.running:
            return
        self._prepare()
        responder = Path(sys.executable).parent / "snmpsim-command-responder"
        cmd = [
            str(responder),
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.cache_dir}",
            f"--agent-udpv4-endpoint={self.host}:{self.port}",
        ]
        if self.v3_user is not None:
            cmd += self.v3_user.args()
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")  # stay root: no drop to "nobody"
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        try:
            self._wait_ready(log_offset)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the responder by its PID and wait for it to exit."""
        proc, self._proc = self._proc, None
        stop_process(proc)

    def close(self) -> None:
        """Stop, and remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SnmpSim:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------- helpers

    def target(
        self,
        community: str,
        *,
        name: str | None = None,
        device_class: str = "snmp-device",
        **snmp: Any,
    ) -> TargetConfig:
        """A validated agent target pointing at one served recording (SNMPv2c by default).

        ``snmp`` overrides SnmpConfig fields; short timeouts keep failing tests quick.
        """
        settings: dict[str, Any] = {
            "port": self.port,
            "community": community,
            "timeout": 1.0,
            "retries": 1,
        }
        settings.update(snmp)
        if settings.get("version") == "3":
            settings.pop("community", None)
        return TargetConfig.from_dict(
            {
                "name": name or re.sub(r"[^A-Za-z0-9_.-]", "_", community),
                "class": device_class,
                "address": self.host,
                "snmp": settings,
            }
        )

    def log_tail(self, since: int = 0, limit: int = 6000) -> str:
        """The responder's output (from byte ``since``), at most ``limit`` characters."""
        if not self.log_path.exists():
            return "<no log>"
        with self.log_path.open("rb") as fh:
            fh.seek(since)
            data = fh.read().decode("utf-8", "replace")
        return data[-limit:]

    def _prepare(self) -> None:
        """Copy the recordings into the data dir once; restarts reuse files and indexes."""
        if self._prepared:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for src, community in zip(self.recordings, self.communities, strict=True):
            filtered_copy(src, self.data_dir / f"{community}.snmprec")
        if self.v3_recording is not None:
            shutil.copyfile(
                self.data_dir / f"{self.v3_recording}.snmprec", self.data_dir / V3_DEFAULT_FILE
            )
        self._prepared = True

    def _wait_ready(self, log_offset: int) -> None:
        """Poll with a real SNMPv2c GET until the responder answers, or raise with its log."""
        from gufo.snmp.sync import SnmpSession

        deadline = time.monotonic() + self.start_timeout
        probe = SnmpSession(self.host, self.port, community=self.communities[0], timeout=0.5)
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc is not None else None
                raise RuntimeError(
                    f"snmpsim exited with code {code} before answering on "
                    f"{self.host}:{self.port}; log:\n{self.log_tail(log_offset)}"
                )
            try:
                probe.get_many(["1.3.6.1.2.1.1.3.0"])
                return  # any answer, even "no such instance", means it is serving
            except TimeoutError:
                last_error = "timeout"
                time.sleep(0.1)  # a refusal (not yet bound) returns at once
            except Exception:
                return  # an SNMP error (e.g. noSuchName on v1) is still an answer
        raise RuntimeError(
            f"snmpsim did not answer on {self.host}:{self.port} within {self.start_timeout:g}s "
            f"(last: {last_error}); log:\n{self.log_tail(log_offset)}"
        )


@pytest.fixture(scope="session")
def snmpsim() -> Iterator[SnmpSim]:
    """All shared recordings on one responder, plus :data:`TEST_V3_USER` for SNMPv3
    (context-less v3 requests are answered from ``dahua-nvr``)."""
    sim = SnmpSim(all_recordings(), v3_user=TEST_V3_USER, v3_recording="dahua-nvr")
    try:
        sim.start()
        yield sim
    finally:
        sim.close()
