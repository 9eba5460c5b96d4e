"""Configuration backups: normalise, mask secrets, keep on disk, compare with the last one.

The contracts plan for "configuration loss: restore from a configuration backup taken
beforehand", and watch for intrusion. Both need the same three things, kept apart here from
any network code so they can be tested on plain text:

* a **normal form** for comparison: lines that change without anyone changing the
  configuration (timestamps such as IOS ``! Last configuration change at …``, ``ntp
  clock-period``, uptime) are dropped before hashing, or every backup would look like a change;
* **masking** of secrets in everything that leaves the agent (results, diffs): passwords,
  ``secret 5 …``, SNMP communities, ``cipher …`` keys, RouterOS ``password=``. Masking works
  line by line and never adds or removes lines, so a diff can be computed on the real text and
  shown masked: a changed password then appears as ``-… <masked>`` / ``+… <masked>`` instead
  of vanishing from the diff or leaking;
* a **store**: the unmasked text as the device printed it (terminal escapes and carriage
  returns removed, nothing else), one file per distinct configuration, mode 0600, under the
  agent's state directory. That file is what an engineer restores from, so it is never masked
  or normalised.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MASK = "<masked>"
LATEST = "latest.cfg"
SUFFIX = ".cfg"

_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>])"
)


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One kind of secret in a configuration line.

    ``pattern`` has a group ``keep`` (the keyword, left visible so the diff still says *what*
    changed) followed by a group ``secret`` (replaced by :data:`MASK`). ``section`` limits the
    rule to lines under a section header matching it (RouterOS ``/snmp community``), ``after``
    to lines whose previous non-blank line matches it (NVUE keeps some keys as YAML keys on the
    line below their name).
    """

    pattern: re.Pattern[str]
    section: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None


def rule(
    keep: str,
    secret: str = r'"[^"]*"|\S+',
    *,
    section: str | None = None,
    after: str | None = None,
) -> SecretRule:
    """A :class:`SecretRule` from regex text; case-insensitive, never re-masks a mask."""
    pattern = re.compile(rf"(?P<keep>{keep})(?!{re.escape(MASK)})(?P<secret>{secret})", re.I)
    return SecretRule(
        pattern,
        re.compile(section, re.I) if section else None,
        re.compile(after, re.I) if after else None,
    )


#: A value that is not a single-digit encryption type ("secret 9 $9$…" is masked by the rule
#: for typed secrets, which must not be undone by taking "9" for the secret).
_UNTYPED = r'(?![0-9]\s)(?:"[^"]*"|\S+)'

#: Secrets of every vendor. Order matters: typed secrets (mask to the end of the line, since a
#: type-0 password may contain spaces) come before the one-word rules.
COMMON_SECRETS: tuple[SecretRule, ...] = (
    # IOS and friends: "enable secret 9 …", "username x secret 5 …", "key 7 …",
    # "password 0 TWO WORDS", "security wpa psk set-key ascii 0 …", "server-key 7 …".
    rule(r"(?<![\w=])(?:password|secret|key|key-string|set-key\s+(?:ascii|hex))\s+[0-9]\s+", ".+"),
    # One-word secrets after a keyword, with Comware/VRP cipher kinds and Junos quotes:
    # "password cipher $c$…", "password irreversible-cipher …", 'encrypted-password "…"'.
    rule(
        r"(?<![\w=])(?:password|secret|passphrase|passwd)(?:\s+level\s+\d+)?"
        r"(?:\s+role\s+\S+)?\s+(?:(?:cipher|simple|hash|irreversible-cipher|encrypted|plain)\s+)?",
        _UNTYPED,
    ),
    # SNMP communities: IOS "snmp-server community X", Comware/VRP "snmp-agent community read
    # simple X", Junos "community X", net-snmp "rocommunity X" (not BGP "set community").
    rule(
        r"(?<![\w=-])(?<!set\s)(?:community|rocommunity6?|rwcommunity6?)\s+"
        r"(?:(?:read|write|simple|cipher)\s+)*",
        _UNTYPED,
    ),
    rule(r"(?<![\w=-])com2sec6?\s+\S+\s+\S+\s+"),
    rule(r"(?<![\w=-])securityname\s+"),
    # "snmp-server host 10.0.0.1 [vrf X] [informs|traps] [version 1|2c] COMMUNITY …"
    rule(
        r"(?<![\w=-])snmp-server\s+host\s+\S+(?:\s+vrf\s+\S+)?(?:\s+(?:informs|traps))?"
        r"(?:\s+version\s+(?:1|2c))?\s+",
        r"(?!(?:version|informs|traps|vrf)\b)\S+",
    ),
    # Keys: "server-key X", Junos 'pre-shared-key ascii-text "…"', Comware "key cipher …".
    rule(
        r"(?<![\w=-])(?:server-key|key-string|authentication-key|auth-key|md5-key|pre-shared-key"
        r"|shared-secret)\s+(?:(?:ascii-text|ascii|hex|cipher|simple|encrypted)\s+)?",
        _UNTYPED,
    ),
    rule(
        r"(?<![\w=-])key\s+(?:(?:authentication|accounting|authorization)\s+)?(?:cipher|simple)\s+"
    ),
    # Credentials inside URLs: "ftp://user:PASSWORD@host/".
    rule(r"[a-z][a-z0-9+.-]*://[^\s/:@\"]+:", r"[^\s@/\"]+(?=@)"),
    # key=value (RouterOS "password=…", "wpa2-pre-shared-key=…", "trap-community=…").
    rule(
        r"(?<![\w=-])[\w-]*(?:password|passwd|secret|passphrase|psk|key|community)=",
        r'"(?:[^"\\]|\\.)*"|[^\s"]+',
    ),
    # "key: value" / "key = value" (NVUE YAML "hashed-password: '*'", INI files).
    rule(
        r"(?<![\w=-])[\w-]*(?:password|passwd|secret|passphrase|privatekey|private-key"
        r"|presharedkey|pre-shared-key|psk)\s*[=:]\s*",
        r"\S.*",
    ),
    # Junos marks secret lines itself: every quoted string on a "## SECRET-DATA" line.
    rule(r'(?<!\S)"', r'[^"]*(?=".*##\s*SECRET-DATA)'),
    # net-snmp "createUser name SHA authpass AES privpass"; crypt hashes in shadow-like files.
    rule(r"(?<![\w=-])createUser\s+(?:-e\s+\S+\s+)?\S+\s+", ".+"),
    rule(r"^[^:\s]+:", r"\$[^:]*"),
    # NVUE: SNMPv3 keys and communities are YAML keys on the line below their kind.
    rule(
        r"^\s+",
        r"[^\s:]+(?=:)",
        after=r"(?:auth-(?:md5|sha)|encrypt-(?:aes|des)|readonly-community|readwrite-community"
        r"|community-password)[\w-]*:\s*$",
    ),
    # RouterOS: the community's name *is* the secret.
    rule(r"(?<![\w=-])name=", r'"(?:[^"\\]|\\.)*"|[^\s"]+', section=r"^/snmp community\b"),
)

#: Lines that change without a configuration change, on every vendor.
COMMON_VOLATILE: tuple[re.Pattern[str], ...] = (re.compile(r"(?i)\buptime\b\s*(?:is\b|:)"),)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one vendor's configuration text is compared and masked."""

    volatile: tuple[re.Pattern[str], ...] = COMMON_VOLATILE
    secrets: tuple[SecretRule, ...] = COMMON_SECRETS
    #: Lines that open a section (RouterOS ``/ip address``), for section-scoped secret rules.
    section_header: re.Pattern[str] | None = None


def clean_terminal(text: str) -> str:
    """Text as a person would read it on the terminal: ANSI escapes removed, CRLF and stray CR
    dropped (PTYs send CRLF; bash's bracketed-paste mode sends ``ESC[?2004l\\r``)."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


def normalise(text: str, dialect: Dialect) -> str:
    """The comparable form: volatile lines dropped, trailing blanks trimmed."""
    lines = [
        line.rstrip()
        for line in clean_terminal(text).split("\n")
        if not any(p.search(line) for p in dialect.volatile)
    ]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + "\n" if lines else ""


def config_hash(normalised: str) -> str:
    """sha256 of the normal form: equal hashes mean no configuration change."""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def mask_lines(lines: Sequence[str], dialect: Dialect) -> list[str]:
    """Each line with its secrets replaced by :data:`MASK`; same number of lines."""
    out: list[str] = []
    section = ""
    previous = ""
    for line in lines:
        if dialect.section_header is not None and dialect.section_header.match(line):
            section = line
        masked = line
        for secret in dialect.secrets:
            if secret.section is not None and not secret.section.search(section):
                continue
            if secret.after is not None and not secret.after.search(previous):
                continue
            masked = secret.pattern.sub(_mask_match, masked)
        out.append(masked)
        if line.strip():
            previous = line
    return out


def _mask_match(match: re.Match[str]) -> str:
    return match.group("keep") + MASK


def mask(text: str, dialect: Dialect) -> str:
    return "\n".join(mask_lines(text.split("\n"), dialect))


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """A unified diff whose lines are masked; ``changes`` are its ``-``/``+`` lines only."""

    text: str
    added: int
    removed: int
    changes: tuple[str, ...]


def _hunk_range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def masked_diff(
    old: str, new: str, dialect: Dialect, old_label: str, new_label: str, context: int = 3
) -> ConfigDiff:
    """Unified diff of two normal forms, compared unmasked and shown masked (see module doc)."""
    a, b = old.splitlines(), new.splitlines()
    ma, mb = mask_lines(a, dialect), mask_lines(b, dialect)
    # autojunk off: "!" and "#" separator lines are frequent, not junk, in device configs.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    out = [f"--- {old_label}", f"+++ {new_label}"]
    changes: list[str] = []
    added = removed = 0
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [" " + line for line in mb[b1:b2]]
                continue
            if tag in ("replace", "delete"):
                lines = ["-" + line for line in ma[a1:a2]]
                out += lines
                changes += lines
                removed += a2 - a1
            if tag in ("replace", "insert"):
                lines = ["+" + line for line in mb[b1:b2]]
                out += lines
                changes += lines
                added += b2 - b1
    if not changes:
        return ConfigDiff("", 0, 0, ())
    return ConfigDiff("\n".join(out) + "\n", added, removed, tuple(changes))


def bounded(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut at a line boundary to at most ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text, False
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit - 60:
            break
        kept.append(line)
        size += len(line) + 1
    more = len(lines) - len(kept)
    kept.append(f"… {more} more diff lines not shown; compare the backup files")
    return "\n".join(kept) + "\n", True


@dataclass(frozen=True, slots=True)
class StoredBackup:
    path: Path
    text: str


class BackupStore:
    """``<root>/<target>/<UTC time>.cfg``, one file per distinct configuration, plus a copy of
    the newest as ``latest.cfg`` for whoever has to restore in a hurry.

    An unchanged configuration writes nothing: the history then holds exactly the versions
    that differed, and its newest file is what the next backup is compared with. Files are
    0600 and folders 0700, as they hold passwords; each file is written to a temporary name,
    synced and renamed, so a crash never leaves a truncated backup behind.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, target: str) -> Path:
        return self.root / target

    def latest(self, target: str) -> StoredBackup | None:
        """The newest stored version (by its file name, which is its UTC time)."""
        folder = self.folder(target)
        if not folder.is_dir():
            return None
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.name.endswith(SUFFIX) and p.name != LATEST and p.is_file()
        )
        if not names:
            return None
        path = folder / names[-1]
        return StoredBackup(path, path.read_text(encoding="utf-8", errors="replace"))

    def save(self, target: str, text: str, when: datetime | None = None) -> Path:
        """Store a new version; returns its path."""
        folder = self.folder(target)
        for directory in (self.root, folder):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = folder / f"{stamp}{SUFFIX}"
        data = text.encode("utf-8")
        _write_private(path, data)
        _write_private(folder / LATEST, data)
        _sync_dir(folder)
        return path


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
