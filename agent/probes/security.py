"""Signs of intrusion on the agent's own host, part of the monthly inspection's 安全 category.

The contracts plan for intrusion "found by watching the lines": nobody can say in advance
which ports, accounts or sudo rules a customer's server should have, but an attacker who gets
in almost always adds one of them. So the first run records what is there as the baseline and
later runs report what is *new* against it (WARN, with the new entries as evidence). The
baseline is never widened automatically: a port that comes back keeps warning until an
engineer accepts it (``allowed_ports``) or resets the baseline, because silently learning the
attacker's backdoor would defeat the check. Failed SSH logins are counted per interval from
the journal or ``/var/log/auth.log``.

Baselines live in a plain mutable mapping that the agent persists in its outbox database
(``agent.runner.Probes.save_state``), so an agent restart does not re-learn a compromised
state as normal.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from agent.config import TargetConfig
from agent.probes.base import Observation, unknown

#: The catalogue items this probe measures (all ``method = "local"``, category security).
SECURITY_CHECKS = frozenset({"sec.listen_ports", "sec.users", "sec.sudoers", "sec.ssh_failed"})

#: Values of the baseline items; the catalogue's ``match`` threshold turns "new" into WARN.
BASELINE = "baseline"
UNCHANGED = "unchanged"
CHANGED = "new"

#: Where systemd-journald keeps its files; the journal is used only if one of them has any.
JOURNAL_DIRS = (Path("/var/log/journal"), Path("/run/log/journal"))
AUTH_LOG = Path("/var/log/auth.log")
#: Both unit names: Debian calls OpenSSH's unit "ssh", Red Hat and Arch call it "sshd".
JOURNALCTL = ("journalctl", "-u", "ssh", "-u", "sshd", "-o", "cat", "--no-pager", "-q")

#: Shells that refuse interactive logins: accounts with them cannot be logged into.
NO_LOGIN_SHELLS = frozenset({"nologin", "false", "sync", "shutdown", "halt", ""})

#: A failed SSH attempt as OpenSSH logs it; rsyslog folds repeats into "message repeated".
_FAILED = re.compile(r"(?:message repeated (\d+) times: \[ )?(?:Failed password|Invalid user) ")
_FROM = re.compile(r" from (\S+) port ")
_ISO_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) ")
_BSD_STAMP = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) ")

#: Facts are limited to 4096 characters on the wire; evidence lists are clipped below that.
_FACT_MAX = 4000

State = MutableMapping[str, Any]
#: What each baseline source reads: the entries, and evidence to show beside new ones.
Entries = tuple[set[str], dict[str, str]]


@dataclass(slots=True)
class _Sample:
    """What one worker-thread run produced: observations, and baseline entries to store.

    State changes are handed back instead of written from the thread, because the agent
    serialises the same mapping from the event loop after every collection.
    """

    observations: list[Observation] = field(default_factory=list)
    updates: dict[str, list[str]] = field(default_factory=dict)


class SecurityProbe:
    """Listening ports, login accounts and sudo rules against a baseline; failed SSH logins.

    File locations are constructor arguments so that tests (and unusual hosts) can point the
    probe at copies; the defaults are the real system files. ``auth_log`` given explicitly
    means "count from this file only"; left unset, the journal is tried first and
    ``/var/log/auth.log`` second, and if neither exists the item is UNKNOWN with that reason.
    """

    def __init__(
        self,
        state: State | None = None,
        *,
        passwd: Path = Path("/etc/passwd"),
        sudoers: Path = Path("/etc/sudoers"),
        sudoers_dir: Path = Path("/etc/sudoers.d"),
        auth_log: Path | None = None,
        journal_dirs: Sequence[Path] = JOURNAL_DIRS,
        first_window: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self._state: State = state if state is not None else {}
        self._passwd = passwd
        self._sudoers = sudoers
        self._sudoers_dir = sudoers_dir
        self._auth_log = auth_log
        self._journal_dirs = tuple(journal_dirs)
        self._first_window = first_window
        self._timeout = timeout
        #: Per target: when failed logins were last counted (wall clock, for log timestamps).
        self._counted_until: dict[str, float] = {}
        #: Per target: (inode, offset) already read in the auth log, to read only what is new.
        self._log_pos: dict[str, tuple[int, int]] = {}

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        wanted = checks & SECURITY_CHECKS
        if not wanted:
            return []
        stored = {k: v for k, v in self._state.items() if k.startswith(f"{target.name}:")}
        try:
            sample = await asyncio.wait_for(
                asyncio.to_thread(self._sample, target, wanted, stored), timeout=self._timeout
            )
        except TimeoutError:
            reason = f"security checks did not finish within {self._timeout:g}s"
            return [unknown(c, reason) for c in sorted(wanted)]
        self._state.update(sample.updates)
        return sample.observations

    async def close(self) -> None:
        return None

    def _sample(self, target: TargetConfig, checks: Set[str], stored: dict[str, Any]) -> _Sample:
        out = _Sample()
        sources: dict[str, tuple[str, str, Callable[[], Entries]]] = {
            "sec.listen_ports": ("ports", "listening ports", partial(self._ports, target)),
            "sec.users": ("users", "login accounts", self._users),
            "sec.sudoers": ("sudoers", "sudo rules", self._sudo_rules),
        }
        for check, (key, what, read) in sources.items():
            if check not in checks:
                continue
            try:
                current, evidence = read()
            except OSError as exc:
                out.observations.append(unknown(check, f"cannot read {what}: {exc}"))
                continue
            full_key = f"{target.name}:{key}"
            obs, baseline = compare(check, what, current, stored.get(full_key), evidence)
            out.observations.append(obs)
            if baseline is not None:
                out.updates[full_key] = baseline
        if "sec.ssh_failed" in checks:
            out.observations.append(self._ssh_failed(target.name))
        return out

    def _ports(self, target: TargetConfig) -> Entries:
        """Listening sockets as "tcp 0.0.0.0:22", minus the ports the target accepts.

        UDP has no LISTEN state: an unconnected UDP socket is a server. Those bound inside the
        kernel's ephemeral range are left out, since they are clients (resolvers, NTP queries)
        whose ports change every run and would warn about nothing an engineer can act on.
        """
        allowed = set(target.allowed_ports)
        ephemeral = _ephemeral_ports()
        current: set[str] = set()
        pids: dict[str, int | None] = {}
        for conn in psutil.net_connections(kind="inet"):
            if not conn.laddr or conn.laddr.port in allowed:
                continue
            if conn.type == socket.SOCK_STREAM:
                if conn.status != psutil.CONN_LISTEN:
                    continue
                proto = "tcp"
            elif conn.type == socket.SOCK_DGRAM:
                if conn.raddr or conn.laddr.port in ephemeral:
                    continue
                proto = "udp"
            else:
                continue
            ip = conn.laddr.ip
            name = f"{proto} {f'[{ip}]' if ':' in ip else ip}:{conn.laddr.port}"
            current.add(name)
            pids[name] = conn.pid
        return current, {name: _owner(pid) for name, pid in pids.items()}

    def _users(self) -> Entries:
        """Accounts someone can log into: a real shell and UID 0 or a person's UID (≥ 1000).

        System accounts with a shell (UID 1-999) are left out: packages create them and
        they change with upgrades. An extra UID 0 account is the classic backdoor and shows
        as new because the UID is part of the entry.
        """
        current: set[str] = set()
        evidence: dict[str, str] = {}
        for line in self._passwd.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) < 7 or not parts[2].isdigit():
                continue
            name, uid, shell = parts[0], int(parts[2]), parts[6].strip()
            if os.path.basename(shell) in NO_LOGIN_SHELLS or not (uid == 0 or uid >= 1000):
                continue
            entry = f"{name}:{uid}"
            current.add(entry)
            evidence[entry] = shell
        return current, evidence

    def _sudo_rules(self) -> Entries:
        """Every directive in sudoers and the files sudo reads from sudoers.d, as "file: rule".

        Missing files are an empty rule set (sudo not installed), not an error: installing
        sudo later then shows its rules as new, which is exactly what should be looked at.
        """
        files = [self._sudoers] if self._sudoers.exists() else []
        if self._sudoers_dir.is_dir():
            # sudo itself skips names containing "." or ending in "~" (editor and package
            # leftovers); counting them would warn about rules that are not in force.
            files += sorted(
                p
                for p in self._sudoers_dir.iterdir()
                if p.is_file() and "." not in p.name and not p.name.endswith("~")
            )
        current: set[str] = set()
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            current.update(f"{path.name}: {rule}" for rule in sudoers_rules(text))
        return current, {}

    def _ssh_failed(self, target: str) -> Observation:
        now = time.time()
        since = self._counted_until.get(target, now - self._first_window)
        if self._auth_log is None and self._journal_usable():
            try:
                lines = self._journal_lines(since)
            except (OSError, subprocess.SubprocessError) as exc:
                return unknown("sec.ssh_failed", f"journalctl failed: {exc}")
            source = "journal (ssh/sshd units)"
        else:
            path = self._auth_log or AUTH_LOG
            if not path.exists():
                reason = (
                    f"{path} does not exist"
                    if self._auth_log is not None
                    else f"no systemd journal files and no {AUTH_LOG}: nothing to count from"
                )
                return unknown("sec.ssh_failed", reason)
            try:
                lines = [ln for ln in self._new_log_lines(target, path) if _stamp(ln, now) >= since]
            except OSError as exc:
                return unknown("sec.ssh_failed", f"cannot read {path}: {exc.strerror}")
            source = str(path)
        count, origins = count_failed_logins(lines)
        self._counted_until[target] = now
        facts = {"source": source, "window_s": str(round(now - since))}
        if origins:
            facts["top_sources"] = ", ".join(f"{ip} ({n})" for ip, n in origins.most_common(5))
        return Observation(
            "sec.ssh_failed",
            float(count),
            summary=f"{count} failed SSH logins in the last {round(now - since)}s ({source})",
            facts=facts,
        )

    def _journal_usable(self) -> bool:
        """journalctl answers "no entries" both when sshd logged nothing and when the journal
        has no files at all (containers, hosts with volatile logging off): only files tell."""
        if shutil.which("journalctl") is None:
            return False
        return any(next(d.rglob("*.journal"), None) for d in self._journal_dirs if d.is_dir())

    def _journal_lines(self, since: float) -> list[str]:
        done = subprocess.run(
            [*JOURNALCTL, "--since", f"@{int(since)}"],
            capture_output=True,
            text=True,
            timeout=self._timeout,
            check=True,
        )
        return done.stdout.splitlines()

    def _new_log_lines(self, target: str, path: Path) -> list[str]:
        """The complete lines appended since the last read; the whole file after rotation.

        Reading from the remembered offset keeps a busy auth.log (a brute-force storm) cheap;
        the timestamps still decide what falls in the window, so the first read is right too.
        """
        st = path.stat()
        inode, offset = self._log_pos.get(target, (st.st_ino, 0))
        if inode != st.st_ino or st.st_size < offset:
            offset = 0  # rotated or truncated: start over
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._log_pos[target] = (st.st_ino, offset + end)
        return data[:end].decode("utf-8", errors="replace").splitlines()


def compare(
    check: str,
    what: str,
    current: set[str],
    stored: Any,
    evidence: dict[str, str],
) -> tuple[Observation, list[str] | None]:
    """The observation for ``current`` against the stored baseline, and the baseline to store
    (only on the first run: later runs never change it)."""
    if not isinstance(stored, list):
        listing = ", ".join(sorted(current))
        obs = Observation(
            check,
            BASELINE,
            summary=f"baseline recorded: {len(current)} {what}",
            facts={"baseline": _clip(listing)},
        )
        return obs, sorted(current)
    new = sorted(current - set(stored))
    gone = sorted(set(stored) - current)
    facts = {"current": _clip(", ".join(sorted(current)))}
    if gone:
        facts["gone"] = _clip(", ".join(gone))
    if not new:
        summary = f"{len(current)} {what}, none new since the baseline"
        return Observation(check, UNCHANGED, summary=summary, facts=facts), None
    shown = [f"{n} ({evidence[n]})" if evidence.get(n) else n for n in new]
    facts["new"] = _clip(", ".join(new))
    summary = f"new {what} since the baseline: {', '.join(shown)}"
    return Observation(check, CHANGED, summary=summary[:900], facts=facts), None


def sudoers_rules(text: str) -> list[str]:
    """The directives of one sudoers file, continuation lines joined, whitespace normalised.

    ``#include``/``#includedir`` look like comments but are directives; they are kept, since
    an added include is as much a new rule as the rules it pulls in.
    """
    rules: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or (line.startswith("#") and not line.startswith("#include")):
            continue
        rules.append(" ".join(line.split()))
    return rules


def count_failed_logins(lines: Iterable[str]) -> tuple[int, Counter[str]]:
    """Failed attempts in OpenSSH log lines, and how many came from each address.

    A wrong password for an unknown user logs both "Invalid user" and "Failed password", so
    such an attempt counts twice; the thresholds are orders of magnitude (10, 100), which that
    does not change, and counting lines keeps the rule the same for every OpenSSH version.
    """
    count = 0
    origins: Counter[str] = Counter()
    for line in lines:
        m = _FAILED.search(line)
        if m is None:
            continue
        n = int(m.group(1) or 1)
        count += n
        src = _FROM.search(line, m.end())
        if src is not None:
            origins[src.group(1)] += n
    return count, origins


def _stamp(line: str, now: float) -> float:
    """Epoch seconds of a syslog line: RFC 3339 (rsyslog's high-precision format) or the
    traditional "Nov  3 10:12:01" in local time, whose missing year is the one that does not
    put the line in the future. Lines without a timestamp get -inf: they cannot be placed in
    the window, so they are not counted."""
    m = _ISO_STAMP.match(line)
    if m is not None:
        try:
            when = datetime.fromisoformat(m.group(1))
        except ValueError:
            return float("-inf")
        return when.timestamp()
    m = _BSD_STAMP.match(line)
    if m is None:
        return float("-inf")
    year = datetime.fromtimestamp(now).year
    for y in (year, year - 1):
        try:
            ts = datetime.strptime(f"{y} {m[1]} {m[2]} {m[3]}", "%Y %b %d %H:%M:%S").timestamp()
        except ValueError:
            return float("-inf")
        if ts <= now + 86400:
            return ts
    return float("-inf")


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # the Linux default


def _owner(pid: int | None) -> str:
    """The name and pid of the process holding a socket: the evidence an engineer starts from."""
    if pid is None:
        return ""
    try:
        return f"{psutil.Process(pid).name()}, pid {pid}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"


def _clip(text: str) -> str:
    return text if len(text) <= _FACT_MAX else text[: _FACT_MAX - 1] + "…"
