"""SSH probe: configuration backup with change detection, reachability and host key trust.

One collection is one SSH session: log in, turn paging off, print the configuration, hang up.
The configuration is stored unmasked on disk (the contracts' "restore from a configuration
backup"), compared with the previous backup in its normal form (volatile timestamp lines
dropped, see agent/config_backup.py), and reported with secrets masked:

* ``config.backup`` — value: sha256 of the normal form; facts: hash, lines, vendor, file;
* ``config.changed`` — ``changed`` (WARN by the catalogue threshold) with a bounded, masked
  unified diff, ``unchanged``, or ``baseline`` for the very first backup;
* ``ssh.reachable`` — ``up``, ``down`` or ``auth failed``;
* ``ssh.host_key`` (security) — ``trusted``, ``recorded`` (trust on first use), ``unknown``
  (WARN: not on file, session refused) or ``changed`` (CRIT: possible interception). It is
  reported whenever the key was not simply trusted, even when not due, because a refused key
  is a finding in itself, not only the reason other checks are UNKNOWN.

How each vendor is talked to is data (:data:`VENDORS`), taken from what the recorded sessions
in shared/fixtures/ssh show: IOS, Comware, VRP and Cumulus in an interactive shell with a PTY
and prompt detection; Junos, RouterOS and plain Linux with one exec request per command.

paramiko blocks, so each session runs in this probe's own small thread pool with a deadline;
the event loop only awaits it. A session past its budget is hung up from the loop's side.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
from collections.abc import Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from agent.config import SshConfig, TargetConfig
from agent.config_backup import (
    COMMON_VOLATILE,
    BackupStore,
    Dialect,
    StoredBackup,
    bounded,
    config_hash,
    masked_diff,
    normalise,
)
from agent.probes.base import Observation, unknown
from agent.ssh_client import (
    HostKeyRefused,
    HostKeyVerdict,
    SshAuthFailed,
    SshEndpoint,
    SshError,
    SshSession,
)
from checks.status import Status

REACHABLE = "ssh.reachable"
HOST_KEY = "ssh.host_key"
BACKUP = "config.backup"
CHANGED = "config.changed"
#: The catalogue ids (checks/catalogue/snmp-device.toml) this probe measures.
SUPPORTED = frozenset({REACHABLE, HOST_KEY, BACKUP, CHANGED})
CONFIG_CHECKS = frozenset({BACKUP, CHANGED})

#: Result facts are limited to 4096 characters on the wire; the diff stays well inside.
MAX_DIFF_CHARS = 3500
#: How many changed lines the summary quotes, and how much of each.
SUMMARY_CHANGES = 3
SUMMARY_LINE_CHARS = 120
#: The agent's own known_hosts file (trust-on-first-use writes here) under ``state_dir``.
KNOWN_HOSTS_FILE = "ssh_known_hosts"
BACKUP_DIR = "config_backups"


def _re(*lines: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(line) for line in lines)


@dataclass(frozen=True, slots=True)
class Vendor:
    """How to get the configuration out of one kind of device."""

    name: str
    mode: Literal["shell", "exec"]
    #: Commands whose output is the configuration, in order.
    commands: tuple[str, ...]
    #: Shell mode: sent first, output ignored (paging off), and the farewell.
    setup: tuple[str, ...] = ()
    farewell: str | None = None
    #: Shell mode: what the device's prompt looks like (matched on the stripped last line).
    prompt: re.Pattern[str] | None = None
    #: A reply whose first lines match this is the device refusing the command.
    refusal: re.Pattern[str] | None = None
    dialect: Dialect = field(default_factory=Dialect)
    #: linux/cumulus: files read (``cat``) after the commands unless the target lists its own.
    files: tuple[str, ...] = ()


_LINUX_PROMPT = re.compile(r"[\w.-]+@[\w.:~/-]+[#$]")
_VRP_STYLE_PROMPT = re.compile(r"<[~*]?[^<>\s]+>|\[[~*]?[^\[\]\s]+\]")

VENDORS: dict[str, Vendor] = {
    "ios": Vendor(
        "ios",
        "shell",
        ("show running-config",),
        setup=("terminal length 0", "terminal width 0"),
        farewell="exit",
        prompt=re.compile(r"[\w.\-/:()@]+[#>]"),
        refusal=re.compile(r"^\s*(?:% |\^\s*$)"),
        dialect=Dialect(
            volatile=COMMON_VOLATILE
            + _re(
                r"^! Last configuration change at ",
                r"^! NVRAM config last updated at ",
                r"^! No configuration change since last restart",
                r"^Current configuration : \d+ bytes",
                r"^Building configuration\.\.\.",
                r"^ntp clock-period ",
            )
        ),
    ),
    "comware": Vendor(
        "comware",
        "shell",
        ("display current-configuration",),
        setup=("screen-length disable",),
        farewell="quit",
        prompt=_VRP_STYLE_PROMPT,
        refusal=re.compile(
            r"^\s*(?:% (?:Unrecognized|Wrong|Incomplete|Too many|Ambiguous)|\^\s*$)"
        ),
    ),
    "vrp": Vendor(
        "vrp",
        "shell",
        ("display current-configuration",),
        setup=("screen-length 0 temporary",),
        farewell="quit",
        prompt=_VRP_STYLE_PROMPT,
        refusal=re.compile(r"^\s*(?:Error:|\^\s*$)"),
        dialect=Dialect(
            volatile=COMMON_VOLATILE
            + _re(
                # Some VRP versions print the time before every display command's output.
                r"^\d{4}-\d{2}-\d{2}\s+\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?:\s*[+-]\d{2}:\d{2})?"
                r"(?:\s+DST)?\s*$",
                r"^!\s*Last configuration was (?:updated|saved) at ",
            )
        ),
    ),
    "junos": Vendor(
        "junos",
        "exec",
        ("show configuration | display omit",),
        refusal=re.compile(r"^\s*#?\s*(?:error:|syntax error|unknown command)"),
        dialect=Dialect(volatile=COMMON_VOLATILE + _re(r"^## Last (?:commit|changed): ")),
    ),
    "routeros": Vendor(
        "routeros",
        "exec",
        # show-sensitive: the backup must be restorable, so it includes the secrets (kept on
        # disk only, masked everywhere else). RouterOS 6 exports them without the flag and
        # rejects it ("expected end of command").
        ("/export show-sensitive",),
        refusal=re.compile(
            r"^\s*(?:bad command name|expected end of command|syntax error|failure:|input does)"
        ),
        dialect=Dialect(
            volatile=COMMON_VOLATILE
            + _re(
                r"^# \S+ \d{1,2}:\d{2}:\d{2} by RouterOS ",
                r"^\s*# (?:poe-out status: |Interface not active$|.* not running$)",
            ),
            section_header=re.compile(r"^/"),
        ),
    ),
    "cumulus": Vendor(
        "cumulus",
        "shell",
        ("nv config show --color off",),
        farewell="exit",
        prompt=_LINUX_PROMPT,
        refusal=re.compile(r"^\s*(?:-?bash: |Error: |nv: )"),
    ),
    "linux": Vendor(
        "linux",
        "exec",
        (),
        files=(
            "/etc/hostname",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/fstab",
            "/etc/network/interfaces",
            "/etc/ssh/sshd_config",
            "/etc/passwd",
            "/etc/group",
            "/etc/crontab",
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class _Part:
    """One command's contribution to the configuration text."""

    label: str
    command: str


def config_parts(vendor: Vendor, ssh: SshConfig) -> list[_Part]:
    """What to run for the configuration: the vendor's commands, then ``cat`` of each file."""
    files = tuple(ssh.files) if ssh.files is not None else vendor.files
    return [_Part(c, c) for c in vendor.commands] + [
        _Part(path, f"cat {shlex.quote(path)}") for path in files
    ]


def _refused(vendor: Vendor, text: str) -> str | None:
    """The device's error line when ``text`` is a refusal rather than a configuration."""
    if vendor.refusal is None:
        return None
    for line in [ln for ln in text.split("\n") if ln.strip()][:3]:
        if vendor.refusal.search(line):
            return line.strip()[:200]
    return None


class ConfigUnavailable(SshError):
    """The session worked but did not produce a configuration (refused, empty)."""


def read_configuration(session: SshSession, vendor: Vendor, ssh: SshConfig) -> str:
    """The configuration text as the device printed it, several parts headed ``### label``."""
    parts = config_parts(vendor, ssh)
    if not parts:
        raise ConfigUnavailable("nothing to read: the target lists no files")
    outputs: list[tuple[_Part, str]] = []
    if vendor.mode == "shell":
        assert vendor.prompt is not None
        session.open_shell(vendor.prompt)
        for command in vendor.setup:
            session.shell_command(command)
        for part in parts:
            text = session.shell_command(part.command)
            if part.command in vendor.commands and (error := _refused(vendor, text)):
                raise ConfigUnavailable(f"device refused {part.command!r}: {error}")
            outputs.append((part, text))
    else:
        for part in parts:
            result = session.exec(part.command)
            if part.command in vendor.commands:
                error = _refused(vendor, result.stdout)
                if error is None and result.status:
                    first = result.stderr.strip().split("\n")[0][:200]
                    error = first or f"exit status {result.status}"
                if error:
                    raise ConfigUnavailable(f"device refused {part.command!r}: {error}")
                outputs.append((part, result.stdout))
            elif result.status:
                reason = result.stderr.strip().split("\n")[-1][:200] or f"exit {result.status}"
                outputs.append((part, f"# not readable: {reason}\n"))
            else:
                outputs.append((part, result.stdout))
    if len(outputs) == 1:
        return outputs[0][1]
    sections = []
    for part, text in outputs:
        body = text if not text or text.endswith("\n") else text + "\n"
        sections.append(f"### {part.label}\n{body}")
    return "".join(sections)


def endpoint_for(target: TargetConfig, state_dir: Path, lock: threading.Lock) -> SshEndpoint:
    """Connection data for ``target``; known_hosts per the config reference (SshConfig)."""
    ssh = target.ssh
    assert ssh is not None and target.address
    trusted: tuple[Path, ...] = ()
    if ssh.known_hosts is not None:
        known = ssh.known_hosts.expanduser()
    else:
        known = state_dir / KNOWN_HOSTS_FILE
        trusted = (Path("~/.ssh/known_hosts").expanduser(),)
    return SshEndpoint(
        host=target.address,
        port=ssh.port,
        username=ssh.username,
        password=ssh.password.get_secret_value() if ssh.password is not None else None,
        key_file=ssh.key_file.expanduser() if ssh.key_file is not None else None,
        timeout=ssh.timeout,
        known_hosts=known,
        trusted_files=trusted,
        accept_new=ssh.accept_new_host_key,
        record_lock=lock,
    )


def _host_key_observation(verdict: HostKeyVerdict) -> Observation:
    facts = {
        "fingerprint": verdict.fingerprint,
        "key_type": verdict.key_type,
        "known_hosts": str(verdict.known_hosts),
        "host": verdict.host,
    }
    key = f"{verdict.key_type} {verdict.fingerprint}"
    if verdict.state == "trusted":
        summary = f"host key {key} matches {verdict.known_hosts}"
        return Observation(HOST_KEY, "trusted", summary=summary, facts=facts)
    if verdict.state == "recorded":
        summary = (
            f"first contact: host key {key} recorded in {verdict.known_hosts}"
            " (trust on first use); later changes will be refused"
        )
        return Observation(HOST_KEY, "recorded", summary=summary, facts=facts)
    if verdict.state == "unknown":
        summary = (
            f"session refused: host key {key} of {verdict.host} is not in"
            f" {verdict.known_hosts}; compare the fingerprint with the device's console and"
            " add it (ssh-keyscan), or set accept_new_host_key = true for this target"
        )
        # Not yet a sign of intrusion, but nothing is backed up until someone acts: WARN.
        return Observation(HOST_KEY, "unknown", summary=summary, facts=facts, status=Status.WARN)
    facts["expected_fingerprint"] = verdict.expected
    summary = (
        f"session refused: host key of {verdict.host} CHANGED to {key}, {verdict.known_hosts}"
        f" has {verdict.expected}; possible interception, or the device was replaced or"
        " reinstalled: verify before updating known_hosts"
    )
    return Observation(HOST_KEY, "changed", summary=summary, facts=facts)


class _Collection:
    """One target's collection, run synchronously in a worker thread."""

    def __init__(
        self,
        target: TargetConfig,
        wanted: set[str],
        store: BackupStore,
        endpoint: SshEndpoint,
        budget: float,
    ) -> None:
        assert target.ssh is not None
        self.target = target
        self.ssh: SshConfig = target.ssh
        self.vendor = VENDORS[target.ssh.vendor]
        self.wanted = wanted
        self.store = store
        self.budget = budget
        self.session = SshSession(endpoint, time.monotonic() + budget)

    def abort(self) -> None:
        self.session.abort()

    def run(self) -> list[Observation]:
        started = time.monotonic()
        try:
            self.session.connect()
        except HostKeyRefused as exc:
            self.session.close()
            return self._refused(exc)
        except SshError as exc:
            self.session.close()
            return self._no_session(exc)
        try:
            out = self._session_up(time.monotonic() - started)
            if self.wanted & CONFIG_CHECKS:
                out += self._configuration()
            return out
        finally:
            self.session.close(self.vendor.farewell)

    def timed_out(self) -> list[Observation]:
        reason = f"SSH session did not finish within {self.budget:g}s"
        return [unknown(c, reason) for c in sorted(self.wanted)]

    def _host_key_wanted(self, verdict: HostKeyVerdict | None) -> bool:
        if verdict is None or HOST_KEY in self.target.disabled:
            return False
        return HOST_KEY in self.wanted or verdict.state != "trusted"

    def _session_up(self, elapsed: float) -> list[Observation]:
        out: list[Observation] = []
        verdict = self.session.host_key
        if REACHABLE in self.wanted:
            facts = {"server_version": self.session.server_version[:200]}
            summary = (
                f"logged in as {self.ssh.username!r} in {elapsed * 1000:.0f} ms"
                f" ({self.session.server_version or 'SSH'})"
            )
            out.append(Observation(REACHABLE, "up", summary=summary[:500], facts=facts))
        if self._host_key_wanted(verdict):
            assert verdict is not None
            out.append(_host_key_observation(verdict))
        return out

    def _refused(self, exc: HostKeyRefused) -> list[Observation]:
        verdict = exc.verdict
        reason = f"no SSH session: {exc}; see {HOST_KEY}"
        out = [unknown(c, reason[:1000]) for c in sorted(self.wanted - {HOST_KEY})]
        if self._host_key_wanted(verdict):
            out.append(_host_key_observation(verdict))
        return out

    def _no_session(self, exc: SshError) -> list[Observation]:
        out: list[Observation] = []
        if REACHABLE in self.wanted:
            value = "auth failed" if isinstance(exc, SshAuthFailed) else "down"
            out.append(Observation(REACHABLE, value, summary=str(exc)[:1000]))
        verdict = self.session.host_key  # known when the login itself failed
        if self._host_key_wanted(verdict):
            assert verdict is not None
            out.append(_host_key_observation(verdict))
        elif HOST_KEY in self.wanted:
            out.append(unknown(HOST_KEY, f"not checked: {exc}"[:1000]))
        reason = f"no SSH session: {exc}"[:1000]
        out += [unknown(c, reason) for c in sorted(self.wanted & CONFIG_CHECKS)]
        return out

    def _configuration(self) -> list[Observation]:
        checks = sorted(self.wanted & CONFIG_CHECKS)
        try:
            text = read_configuration(self.session, self.vendor, self.ssh)
        except SshError as exc:
            return [unknown(c, f"configuration not read: {exc}"[:1000]) for c in checks]
        dialect = self.vendor.dialect
        current = normalise(text, dialect)
        if not current:
            return [unknown(c, "the device printed an empty configuration") for c in checks]
        digest = config_hash(current)
        name = self.target.name
        try:
            previous = self.store.latest(name)
            before = normalise(previous.text, dialect) if previous is not None else None
            is_new = before is None or config_hash(before) != digest
            if is_new or previous is None:
                path = self.store.save(name, text, datetime.now(UTC))
            else:
                path = previous.path
        except OSError as exc:
            reason = f"cannot keep the backup under {self.store.folder(name)}: {exc}"
            return [unknown(c, reason[:1000]) for c in checks]
        out: list[Observation] = []
        if BACKUP in self.wanted:
            out.append(self._backup(current, digest, path, is_new))
        if CHANGED in self.wanted:
            out.append(self._changed(previous, before, current, digest, path))
        return out

    def _backup(self, current: str, digest: str, path: Path, is_new: bool) -> Observation:
        lines = current.count("\n")
        facts = {
            "config_hash": digest,
            "config_lines": str(lines),
            "vendor": self.vendor.name,
            "backup_path": str(path),
        }
        state = "new version stored" if is_new else "unchanged, kept"
        summary = f"{lines} lines, sha256 {digest[:12]}…, {state}: {path}"
        return Observation(BACKUP, digest, summary=summary[:1000], facts=facts)

    def _changed(
        self,
        previous: StoredBackup | None,
        before: str | None,
        current: str,
        digest: str,
        path: Path,
    ) -> Observation:
        facts = {"config_hash": digest, "backup_path": str(path)}
        if previous is None or before is None:
            summary = "first backup of this device: the baseline later backups are compared with"
            return Observation(CHANGED, "baseline", summary=summary, facts=facts)
        facts["previous_backup"] = str(previous.path)
        facts["previous_hash"] = config_hash(before)
        if facts["previous_hash"] == digest:
            summary = f"same configuration as the backup {previous.path.name}"
            return Observation(CHANGED, "unchanged", summary=summary, facts=facts)
        diff = masked_diff(before, current, self.vendor.dialect, previous.path.name, path.name)
        text, cut = bounded(diff.text, MAX_DIFF_CHARS)
        facts.update(
            diff=text,
            diff_truncated=str(cut).lower(),
            lines_added=str(diff.added),
            lines_removed=str(diff.removed),
        )
        quoted = "; ".join(c[:SUMMARY_LINE_CHARS] for c in diff.changes[:SUMMARY_CHANGES])
        more = len(diff.changes) - SUMMARY_CHANGES
        summary = (
            f"configuration changed since {previous.path.name}: +{diff.added} -{diff.removed}"
            f" lines: {quoted}{f' (+{more} more)' if more > 0 else ''}"
        )
        return Observation(CHANGED, "changed", summary=summary[:900], facts=facts)


class SshProbe:
    """The Probe for ``method = "ssh"`` items; backups live under ``state_dir``.

    Sessions run in this probe's own pool so a hung device never occupies the event loop's
    default executor (which the local probe needs); ``max_sessions`` bounds how many devices
    are talked to at once.
    """

    def __init__(self, state_dir: Path, *, max_sessions: int = 4) -> None:
        self.state_dir = state_dir
        self.store = BackupStore(state_dir / BACKUP_DIR)
        self._max_sessions = max_sessions
        self._pool: ThreadPoolExecutor | None = None
        self._record_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_sessions, thread_name_prefix="fieldmon-ssh")
        return self._pool

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        wanted = set(checks)
        out = [unknown(c, "not measured by the SSH probe") for c in sorted(wanted - SUPPORTED)]
        wanted &= SUPPORTED
        if not wanted:
            return out
        if target.ssh is None or not target.address:
            return out + [unknown(c, "target has no [ssh] settings") for c in sorted(wanted)]
        endpoint = endpoint_for(target, self.state_dir, self._record_lock)
        job = _Collection(target, wanted, self.store, endpoint, target.ssh.session_budget)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor(), job.run)
        try:
            # The session keeps its own deadline; this one only catches a stuck worker.
            return out + await asyncio.wait_for(future, target.ssh.session_budget + 2)
        except TimeoutError:
            job.abort()
            return out + job.timed_out()
        except asyncio.CancelledError:
            job.abort()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
