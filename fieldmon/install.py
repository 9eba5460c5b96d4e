"""``fieldmon agent install``: the agent as a hardened systemd service on this host.

Layout (the same on every install, so that support knows where to look)::

    /etc/fieldmon/agent.toml             0640 root:<user>  state_dir forced to /var/lib/fieldmon
    /etc/fieldmon/<secret>               0640 root:<user>  every file an ``*_file`` key names
    /var/lib/fieldmon/                   0750 <user>       outbox and probe state; never touched
                                                           once it exists (upgrades keep it)
    /etc/systemd/system/fieldmon-agent.service             deploy/systemd/…, ExecStart = this
                                                           interpreter's ``fieldmon``
    /usr/lib/sysusers.d/<user>.conf                        the system user, declaratively

The new configuration is validated completely (the agent's own loader, secrets read) before
anything is written; a bad one exits 2 and changes nothing. Files are replaced atomically.

``--root DIR`` stages the same tree under DIR for tests and packaging: no user is created, no
ownership is changed and systemctl is not called; those steps are listed as skipped so the
package's maintainer scripts can do them.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldmon.configfile import ConfigError, load_toml

ETC_DIR = Path("/etc/fieldmon")
STATE_DIR = Path("/var/lib/fieldmon")
UNIT_NAME = "fieldmon-agent.service"
UNIT_DIR = Path("/etc/systemd/system")
SYSUSERS_DIR = Path("/usr/lib/sysusers.d")
#: The unit and sysusers templates, shipped inside the package (wheel included) so an installed
#: ``fieldmon`` can install the agent without a source checkout. They are copies of
#: deploy/systemd/ (where systemd-analyze checks them); tests/test_agent_install.py keeps the
#: two identical.
TEMPLATES = Path(__file__).resolve().parent / "templates" / "systemd"
#: ExecStart in the shipped unit; replaced by the running interpreter's entry point.
TEMPLATE_EXEC = "/opt/fieldmon/venv/bin/fieldmon"
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: ``password_file = "…"``, also inside inline tables; the value a basic or literal string.
_FILE_KEY = re.compile(
    r"(?P<key>(?<![\w-])[A-Za-z0-9_-]+_file)(?P<eq>[ \t]*=[ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')"
)
_STATE_LINE = re.compile(r"[ \t]*state_dir[ \t]*=.*(?:\n|$)")
_TABLE_LINE = re.compile(r"^[ \t]*\[", re.MULTILINE)

Runner = Callable[[Sequence[str]], None]


class InstallError(Exception):
    """An install that cannot be carried out; ``str()`` is the operator message (exit 1)."""


@dataclass(frozen=True)
class InstallRequest:
    config: Path
    #: Staging root (packaging, tests): no user, no chown, no systemctl. None = this host.
    root: Path | None = None
    user: str = "fieldmon"
    start: bool = True
    #: The command the unit runs; default: ``fieldmon`` beside this interpreter.
    executable: Path | None = None
    templates: Path = TEMPLATES


@dataclass
class InstallReport:
    """What was done, for the operator (and the tests)."""

    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config_path: Path = ETC_DIR / "agent.toml"
    unit_path: Path = UNIT_DIR / UNIT_NAME
    state_dir: Path = STATE_DIR

    def text(self) -> str:
        lines = [f"  {c}" for c in self.changes] or ["  nothing changed"]
        lines += [f"  skipped: {s}" for s in self.skipped]
        lines += [f"  note: {n}" for n in self.notes]
        return "fieldmon agent install:\n" + "\n".join(lines)


@dataclass(frozen=True)
class _Planned:
    """Everything computed (and validated) before the first write."""

    config_text: str
    secrets: dict[Path, Path]  # installed name (runtime path) -> source file
    unit_text: str
    sysusers_text: str
    notes: list[str]


def _run(cmd: Sequence[str]) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise InstallError(f"{' '.join(cmd)} failed (exit {done.returncode}): {detail}")


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


def _parse_literal(literal: str) -> str:
    value = tomllib.loads(f"v = {literal}")["v"]
    assert isinstance(value, str)
    return value


def _map_files(data: Any, mapping: dict[str, str]) -> Any:
    """``data`` with every ``*_file`` string value replaced through ``mapping``."""
    if isinstance(data, dict):
        return {
            k: mapping.get(v, v)
            if k.endswith("_file") and isinstance(v, str)
            else _map_files(v, mapping)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_map_files(v, mapping) for v in data]
    return data


def _file_values(data: Any) -> list[str]:
    """Every ``*_file`` string value anywhere in ``data``."""
    if isinstance(data, dict):
        out: list[str] = []
        for k, v in data.items():
            out += [v] if k.endswith("_file") and isinstance(v, str) else _file_values(v)
        return out
    if isinstance(data, list):
        return [x for v in data for x in _file_values(v)]
    return []


def rewrite_config(text: str, secret_dir: Path, state_dir: Path) -> tuple[str, dict[Path, Path]]:
    """The config as installed: ``state_dir`` forced and ``*_file`` paths moved to
    ``secret_dir``. Returns the new text and {installed path: source path}.

    The text is edited, not re-serialised, so the operator's comments and layout survive; the
    result is parsed back and must equal the intended data, or the install stops.
    """
    original = tomllib.loads(text)
    sources: dict[Path, Path] = {}
    by_value: dict[str, str] = {}

    def repl(m: re.Match[str]) -> str:
        value = _parse_literal(m["val"])
        src = Path(value).expanduser()
        src = src if src.is_absolute() else Path.cwd() / src
        dest = secret_dir / src.name
        if src.name == "agent.toml" or (dest in sources and sources[dest] != src):
            raise InstallError(
                f"{m['key']} = {value!r}: {secret_dir} gets another file named {src.name!r};"
                " rename one of them"
            )
        sources[dest] = src
        by_value[value] = str(dest)
        return f"{m['key']}{m['eq']}{_toml_string(str(dest))}"

    body = _FILE_KEY.sub(repl, text)
    first_table = _TABLE_LINE.search(body)
    head_end = first_table.start() if first_table else len(body)
    head = _STATE_LINE.sub("", body[:head_end])
    forced = f"state_dir = {_toml_string(str(state_dir))}  # set by fieldmon agent install\n"
    new_text = forced + head + body[head_end:]

    missed = sorted(set(_file_values(original)) - set(by_value))
    if missed:
        raise InstallError(
            f"could not rewrite the configuration safely: *_file value(s) {', '.join(missed)}"
            ' not in the plain `key = "value"` form'
        )
    expected = _map_files(original, by_value)
    expected["state_dir"] = str(state_dir)
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"could not rewrite the configuration safely: {exc}") from None
    if got != expected:
        raise InstallError(
            "could not rewrite the configuration safely (state_dir or an *_file key in an"
            ' unusual form); write them as plain `key = "value"` lines'
        )
    return new_text, sources


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def config_changes(old: str, new: str) -> list[str]:
    """Keys added, removed or changed between two configs (names only: values may be secret)."""
    try:
        a, b = _flatten(tomllib.loads(old)), _flatten(tomllib.loads(new))
    except tomllib.TOMLDecodeError:
        return ["(the previous file was not valid TOML)"]
    out = [f"+{k}" for k in b if k not in a]
    out += [f"-{k}" for k in a if k not in b]
    out += [f"~{k}" for k in a if k in b and a[k] != b[k]]
    return sorted(out, key=lambda s: s[1:])


def _entry_point(req: InstallRequest) -> str:
    if req.executable is not None:
        return str(req.executable)
    script = Path(sys.executable).parent / "fieldmon"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    return f"{sys.executable} -m fieldmon"


def render_unit(template: str, exec_start: str, user: str) -> str:
    if TEMPLATE_EXEC not in template:
        raise InstallError(f"the unit template has no ExecStart={TEMPLATE_EXEC} to replace")
    text = template.replace(TEMPLATE_EXEC, exec_start)
    text = re.sub(r"(?m)^User=.*$", f"User={user}", text)
    return re.sub(r"(?m)^Group=.*$", f"Group={user}", text)


def plan(req: InstallRequest) -> _Planned:
    """Validate the request and the configuration and compute every file; write nothing."""
    from agent.config import load_agent_config

    if not _USER_RE.fullmatch(req.user):
        raise InstallError(f"--user {req.user!r} is not a valid system user name")
    load_agent_config(req.config)  # ConfigError: names the file, key and problem (exit 2)
    text = req.config.read_text(encoding="utf-8")
    new_text, secrets = rewrite_config(text, ETC_DIR, STATE_DIR)
    notes: list[str] = []
    data = load_toml(req.config)
    relative = [str(p) for p in data.get("catalogue_dirs", []) if not Path(str(p)).is_absolute()]
    if relative:
        notes.append(
            f"catalogue_dirs {', '.join(relative)} are relative: the service starts in /,"
            " give absolute paths"
        )
    try:
        unit = (req.templates / UNIT_NAME).read_text(encoding="utf-8")
        sysusers = (req.templates / "fieldmon.sysusers.conf").read_text(encoding="utf-8")
    except OSError as exc:
        raise InstallError(
            f"{exc.filename}: {exc.strerror} (the unit templates ship in the fieldmon package,"
            " fieldmon/templates/systemd/; reinstall fieldmon)"
        ) from None
    sysusers = re.sub(r"(?m)^u fieldmon ", f"u {req.user} ", sysusers)
    return _Planned(
        new_text, secrets, render_unit(unit, _entry_point(req), req.user), sysusers, notes
    )


class _Host:
    """Where and how files land: under a staging root (no chown), or on this host."""

    def __init__(self, root: Path, staging: bool, user: str) -> None:
        self.root, self.staging, self.user = root, staging, user
        self.uid = self.gid = -1

    def path(self, runtime: Path) -> Path:
        return self.root / runtime.relative_to("/")

    def own(self, path: Path, uid: int, gid: int) -> None:
        if not self.staging:
            os.chown(path, uid, gid)

    def write(self, runtime: Path, data: bytes, mode: int, gid: int = 0) -> str | None:
        """Atomically write ``data``; return "created"/"updated", or None when unchanged."""
        dest = self.path(runtime)
        old = dest.read_bytes() if dest.exists() else None
        if old == data:
            os.chmod(dest, mode)
            self.own(dest, 0, gid)
            return None
        tmp = dest.with_name(f".{dest.name}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        self.own(tmp, 0, gid)
        os.replace(tmp, dest)
        return "created" if old is None else "updated"


def _ensure_user(host: _Host, planned: _Planned, run: Runner, report: InstallReport) -> None:
    sysusers = SYSUSERS_DIR / f"{host.user}.conf"
    host.path(SYSUSERS_DIR).mkdir(parents=True, exist_ok=True)
    if (done := host.write(sysusers, planned.sysusers_text.encode(), 0o644)) is not None:
        report.changes.append(f"{sysusers}: {done}")
    if host.staging:
        report.skipped.append(
            f"create system user {host.user!r} (staging root; the package runs systemd-sysusers"
            f" {sysusers})"
        )
        report.skipped.append(f"ownership root:{host.user} / {host.user} (staging root)")
        return
    try:
        pw = pwd.getpwnam(host.user)
    except KeyError:
        if shutil.which("systemd-sysusers"):
            run(["systemd-sysusers", str(sysusers)])
        else:
            run(
                [
                    "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--home-dir", str(STATE_DIR), "--user-group", "--comment", "fieldmon agent",
                    host.user,
                ]
            )  # fmt: skip
        pw = pwd.getpwnam(host.user)
        report.changes.append(f"system user {host.user!r}: created")
    host.uid, host.gid = pw.pw_uid, pw.pw_gid
    try:
        grp.getgrgid(host.gid)
    except KeyError:
        raise InstallError(f"user {host.user!r} has no group {host.gid}") from None


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install(
    req: InstallRequest,
    *,
    run: Runner = _run,
    systemd_running: Callable[[], bool] = _systemd_running,
    host_root: Path = Path("/"),
) -> InstallReport:
    """Install or upgrade the agent service. ConfigError: bad config (nothing written).

    ``run``, ``systemd_running`` and ``host_root`` are for tests of the on-host path."""
    staging = req.root is not None
    if not staging and os.geteuid() != 0:
        raise InstallError("installing on this host needs root (or use --root DIR to stage)")
    planned = plan(req)  # everything validated before the first write
    host = _Host(req.root or host_root, staging, req.user)
    report = InstallReport(
        notes=list(planned.notes),
        config_path=host.path(ETC_DIR / "agent.toml"),
        unit_path=host.path(UNIT_DIR / UNIT_NAME),
        state_dir=host.path(STATE_DIR),
    )
    # Read the secrets now: a file that vanished since validation stops us before any write.
    secret_bytes: dict[Path, bytes] = {}
    for dest, src in planned.secrets.items():
        try:
            secret_bytes[dest] = src.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{src}: cannot read: {exc.strerror}") from None
    _ensure_user(host, planned, run, report)

    etc = host.path(ETC_DIR)
    if not etc.is_dir():
        etc.mkdir(parents=True, mode=0o750)
        report.changes.append(f"{ETC_DIR}/: created")
    os.chmod(etc, 0o750)
    host.own(etc, 0, host.gid)
    for dest, data in secret_bytes.items():
        if (done := host.write(dest, data, 0o640, host.gid)) is not None:
            report.changes.append(f"{dest}: {done}")
    conf = ETC_DIR / "agent.toml"
    old = host.path(conf).read_text(encoding="utf-8") if host.path(conf).exists() else None
    done = host.write(conf, planned.config_text.encode(), 0o640, host.gid)
    if done == "updated" and old is not None:
        keys = config_changes(old, planned.config_text)
        report.changes.append(f"{conf}: updated ({', '.join(keys) or 'comments/layout only'})")
    elif done is not None:
        report.changes.append(f"{conf}: {done}")

    state = host.path(STATE_DIR)
    if state.exists():
        report.notes.append(f"{STATE_DIR} kept as it is (outbox and probe state)")
    else:
        state.mkdir(parents=True, mode=0o750)
        os.chmod(state, 0o750)
        host.own(state, host.uid, host.gid)
        report.changes.append(f"{STATE_DIR}/: created")

    unit = UNIT_DIR / UNIT_NAME
    host.path(UNIT_DIR).mkdir(parents=True, exist_ok=True)
    unit_done = host.write(unit, planned.unit_text.encode(), 0o644)
    if unit_done is not None:
        report.changes.append(f"{unit}: {unit_done}")

    start = ["systemctl", "enable", "--now", UNIT_NAME.removesuffix(".service")]
    if staging:
        report.skipped.append("systemctl daemon-reload, " + " ".join(start) + " (staging root)")
    elif not req.start:
        report.skipped.append(" ".join(start) + " (--no-start)")
        if systemd_running():
            run(["systemctl", "daemon-reload"])
    elif not systemd_running():
        report.skipped.append(
            "systemctl: systemd is not running on this host; the service was not started"
        )
    else:
        run(["systemctl", "daemon-reload"])
        run(start)
        if old is not None and (done is not None or unit_done is not None):
            run(["systemctl", "try-restart", UNIT_NAME])
            report.changes.append(f"{UNIT_NAME}: restarted with the new files")
        else:
            report.changes.append(f"{UNIT_NAME}: enabled and started")
    return report
