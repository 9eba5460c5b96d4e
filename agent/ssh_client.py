"""One SSH session to a device: host key check, login, exec or interactive shell.

paramiko is synchronous, so a session runs in a worker thread (the SSH probe owns the pool)
and never on the event loop. Every blocking step waits at most ``timeout`` seconds and the
whole session at most until its ``deadline``: a device that stops answering, or trickles
output forever, costs a bounded time and ends with a reason. :meth:`SshSession.abort` may be
called from another thread to cut a session short; the worker's pending read then fails.

Host keys are checked against known_hosts files and never accepted silently. A key that
differs from the one on file is refused (``changed``: the device was replaced, or someone is
in the middle). A key not on file is refused too (``unknown``) unless the target opted into
trust-on-first-use, in which case it is appended to the agent's own known_hosts file.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paramiko

from agent.config_backup import clean_terminal

#: Device output beyond this is refused: a configuration is never this large, a runaway
#: command (or a hostile device) must not exhaust the agent's memory.
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
#: Bytes of output's end inspected for the prompt (prompts are short; a config is not).
_TAIL = 1024

HostKeyState = Literal["trusted", "recorded", "unknown", "changed"]


class SshError(Exception):
    """A session that could not do its work; ``str()`` is the reason shown in results."""


class SshUnreachable(SshError):
    """No SSH conversation: connection refused, no route, no answer, handshake failed."""


class SshAuthFailed(SshError):
    """The device answered but refused our credentials."""


class SshTimeout(SshError):
    """A step or the whole session ran out of time."""


@dataclass(frozen=True, slots=True)
class HostKeyVerdict:
    state: HostKeyState
    #: The name the key is filed under: ``host`` on port 22, else ``[host]:port`` (OpenSSH).
    host: str
    key_type: str
    fingerprint: str
    #: The file the key was found in, recorded in, or missing from.
    known_hosts: Path
    #: For ``changed``: the fingerprint on file.
    expected: str = ""


class HostKeyRefused(SshError):
    """The server's host key is not trusted; nothing was sent to it."""

    def __init__(self, verdict: HostKeyVerdict) -> None:
        if verdict.state == "changed":
            text = (
                f"host key of {verdict.host} has CHANGED: the server offers {verdict.key_type}"
                f" {verdict.fingerprint}, {verdict.known_hosts} has {verdict.expected}"
            )
        else:
            text = (
                f"host key {verdict.key_type} {verdict.fingerprint} of {verdict.host} is not in"
                f" {verdict.known_hosts} and accept_new_host_key is off"
            )
        super().__init__(text)
        self.verdict = verdict


@dataclass(frozen=True, slots=True)
class SshEndpoint:
    """Everything needed to open one session; plain data, built from the target's config."""

    host: str
    port: int
    username: str
    password: str | None
    key_file: Path | None
    timeout: float
    #: Read and, with ``accept_new``, appended to.
    known_hosts: Path
    #: Consulted first, never written (the operator's ~/.ssh/known_hosts).
    trusted_files: tuple[Path, ...] = ()
    accept_new: bool = False
    #: Serialises appends to ``known_hosts`` across sessions of one agent.
    record_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host_key_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True, slots=True)
class ExecOutput:
    stdout: str
    stderr: str
    #: None when the device closed the channel without reporting one (some network OSes).
    status: int | None


class _UnknownHostKey(Exception):
    def __init__(self, key: Any) -> None:
        super().__init__("unknown host key")
        self.key = key


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Called by paramiko only for a host with no key on file: refuse, or record (TOFU)."""

    def __init__(self, endpoint: SshEndpoint) -> None:
        self._endpoint = endpoint
        self.recorded: Any = None

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        if not self._endpoint.accept_new:
            raise _UnknownHostKey(key)
        record_host_key(self._endpoint, key)
        self.recorded = key


def record_host_key(endpoint: SshEndpoint, key: Any) -> None:
    """Append ``key`` for the endpoint to its known_hosts file (created 0600 if missing)."""
    line = f"{endpoint.host_key_name} {key.get_name()} {key.get_base64()}\n"
    path = endpoint.known_hosts
    with endpoint.record_lock:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        needs_newline = path.exists() and path.stat().st_size > 0 and not _ends_in_newline(path)
        with path.open("a", encoding="ascii") as fh:
            path.chmod(0o600)
            fh.write(("\n" if needs_newline else "") + line)


def _ends_in_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _verdict(
    state: HostKeyState, endpoint: SshEndpoint, key: Any, where: Path, expected: Any = None
) -> HostKeyVerdict:
    return HostKeyVerdict(
        state=state,
        host=endpoint.host_key_name,
        key_type=str(key.get_name()),
        fingerprint=str(key.fingerprint),
        known_hosts=where,
        expected=str(expected.fingerprint) if expected is not None else "",
    )


class SshSession:
    """A logged-in session; use :meth:`connect` first, :meth:`close` always."""

    def __init__(self, endpoint: SshEndpoint, deadline: float) -> None:
        self.endpoint = endpoint
        self.deadline = deadline
        self.host_key: HostKeyVerdict | None = None
        self.server_version = ""
        self._client: Any = None
        self._shell: Any = None
        self._prompt = ""
        self._aborted = False

    # ------------------------------------------------------------------------------ timing

    def _step(self, what: str) -> float:
        """Seconds the next blocking step may take: ``timeout``, less if the session's
        deadline is nearer; SshTimeout when nothing is left."""
        if self._aborted:
            raise SshTimeout(f"session cut off while {what}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SshTimeout(f"the session ran out of time while {what}")
        return min(self.endpoint.timeout, left)

    # ----------------------------------------------------------------------------- connect

    def connect(self) -> HostKeyVerdict:
        """Open the connection, check the host key, log in. Raises an :class:`SshError`."""
        ep = self.endpoint
        client = paramiko.SSHClient()
        self._client = client
        policy = _HostKeyPolicy(ep)
        client.set_missing_host_key_policy(policy)
        try:
            for trusted in ep.trusted_files:
                if trusted.is_file():
                    client.load_system_host_keys(str(trusted))
            if ep.known_hosts.is_file():
                client.load_host_keys(str(ep.known_hosts))
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise SshError(f"cannot read known_hosts: {exc}") from None
        step = self._step("connecting")
        try:
            client.connect(
                hostname=ep.host,
                port=ep.port,
                username=ep.username,
                password=ep.password,
                key_filename=str(ep.key_file) if ep.key_file else None,
                timeout=step,
                banner_timeout=step,
                auth_timeout=step,
                channel_timeout=step,
                allow_agent=False,
                look_for_keys=False,
            )
        except _UnknownHostKey as exc:
            self.host_key = _verdict("unknown", ep, exc.key, ep.known_hosts)
            raise HostKeyRefused(self.host_key) from None
        except paramiko.BadHostKeyException as exc:
            where = self._file_with(ep.host_key_name)
            self.host_key = _verdict("changed", ep, exc.key, where, exc.expected_key)
            raise HostKeyRefused(self.host_key) from None
        except paramiko.AuthenticationException as exc:
            self._note_host_key(policy)
            raise SshAuthFailed(f"login as {ep.username!r} refused: {exc}") from None
        except TimeoutError:
            raise SshUnreachable(
                f"no answer from {ep.host} port {ep.port} within {step:g}s"
            ) from None
        except paramiko.SSHException as exc:
            raise SshUnreachable(
                f"SSH handshake with {ep.host} port {ep.port} failed: {exc}"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SshUnreachable(f"cannot connect to {ep.host} port {ep.port}: {reason}") from None
        self._note_host_key(policy)
        transport = client.get_transport()
        self.server_version = str(getattr(transport, "remote_version", "") or "")
        assert self.host_key is not None
        return self.host_key

    def _note_host_key(self, policy: _HostKeyPolicy) -> None:
        """After the key exchange: the key was recorded by the policy, or found on file."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not getattr(transport, "initial_kex_done", False):
            return
        key = transport.get_remote_server_key()
        ep = self.endpoint
        if policy.recorded is not None:
            self.host_key = _verdict("recorded", ep, key, ep.known_hosts)
        else:
            self.host_key = _verdict("trusted", ep, key, self._file_with(ep.host_key_name))

    def _file_with(self, name: str) -> Path:
        """Which known_hosts file holds ``name`` (paramiko checks the trusted files first)."""
        for trusted in self.endpoint.trusted_files:
            try:
                if trusted.is_file() and paramiko.HostKeys(str(trusted)).lookup(name):
                    return trusted
            except (OSError, paramiko.SSHException, ValueError):
                continue
        return self.endpoint.known_hosts

    # -------------------------------------------------------------------------------- exec

    def exec(self, command: str) -> ExecOutput:
        """Run one command on its own channel (no PTY); output is read until end of file."""
        transport = self._transport()
        try:
            chan = transport.open_session(timeout=self._step(f"opening a channel for {command!r}"))
        except paramiko.SSHException as exc:
            raise SshError(f"device refused a channel for {command!r}: {exc}") from None
        try:
            chan.exec_command(command)
            stdout = self._drain(chan.recv, chan, f"running {command!r}")
            stderr = self._drain(chan.recv_stderr, chan, f"running {command!r}")
            status: int | None = None
            if chan.status_event.wait(min(self._step(f"ending {command!r}"), 2.0)):
                status = int(chan.recv_exit_status())
            return ExecOutput(_text(stdout), _text(stderr), status)
        except paramiko.SSHException as exc:
            raise SshError(f"device refused to run {command!r}: {exc}") from None
        finally:
            chan.close()

    def _drain(self, recv: Callable[[int], bytes], chan: Any, what: str) -> bytes:
        buf = bytearray()
        while True:
            chan.settimeout(self._step(what))
            try:
                data = recv(65536)
            except TimeoutError:
                raise SshTimeout(f"no output for {self.endpoint.timeout:g}s while {what}") from None
            if not data:
                return bytes(buf)
            buf += data
            if len(buf) > MAX_OUTPUT_BYTES:
                raise SshError(f"output of more than {MAX_OUTPUT_BYTES} bytes while {what}")

    # ------------------------------------------------------------------------------- shell

    def open_shell(self, prompt: re.Pattern[str]) -> str:
        """Open a PTY shell and wait for the first prompt; returns the banner before it.

        The prompt seen then (``LAB-SW123_9200L#``) is remembered exactly: the end of every
        later command's output is that same line, which no configuration line resembles,
        whereas a pattern could match a line of output that happened to end a read.
        """
        transport = self._transport()
        try:
            chan = transport.open_session(timeout=self._step("opening a shell"))
            # Wide and without a height: no wrapped command echo, no pager from the PTY size.
            chan.get_pty(term="vt100", width=511, height=0)
            chan.invoke_shell()
        except paramiko.SSHException as exc:
            raise SshError(f"device refused an interactive shell: {exc}") from None
        self._shell = chan
        text = self._read_until(
            lambda last: prompt.fullmatch(last.strip()) is not None, "waiting for the prompt"
        )
        lines = text.split("\n")
        self._prompt = lines[-1].strip()
        return "\n".join(lines[:-1])

    @property
    def prompt(self) -> str:
        return self._prompt

    def shell_command(self, command: str) -> str:
        """Send one command line; its output without the echoed command and the next prompt."""
        if self._shell is None:
            raise SshError("no shell open")
        try:
            self._shell.settimeout(self._step(f"sending {command!r}"))
            self._shell.sendall((command + "\n").encode("utf-8"))
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(f"session closed while sending {command!r}: {exc}") from None
        text = self._read_until(
            lambda last: last.strip() == self._prompt, f"waiting for {command!r} to finish"
        )
        lines = text.split("\n")
        if lines and lines[-1].strip() == self._prompt:
            lines.pop()
        if lines and lines[0].strip().endswith(command.strip()):
            lines.pop(0)
        return "\n".join(lines)

    def _read_until(self, done: Callable[[str], bool], what: str) -> str:
        chan = self._shell
        buf = bytearray()
        while True:
            if buf:
                tail = clean_terminal(bytes(buf[-_TAIL:]).decode("utf-8", errors="replace"))
                if done(tail.rsplit("\n", 1)[-1]):
                    return clean_terminal(buf.decode("utf-8", errors="replace"))
            chan.settimeout(self._step(what))
            try:
                data = chan.recv(65536)
            except TimeoutError:
                last = clean_terminal(bytes(buf[-200:]).decode("utf-8", errors="replace"))
                last = last.rstrip("\n").rsplit("\n", 1)[-1]
                raise SshTimeout(
                    f"no prompt for {self.endpoint.timeout:g}s while {what}"
                    f" (last line received: {last[-80:]!r})"
                ) from None
            if not data:
                raise SshError(f"the device closed the session while {what}")
            buf += data
            if len(buf) > MAX_OUTPUT_BYTES:
                raise SshError(f"output of more than {MAX_OUTPUT_BYTES} bytes while {what}")

    # ------------------------------------------------------------------------------- close

    def _transport(self) -> Any:
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            raise SshError("not connected")
        return transport

    def close(self, farewell: str | None = None) -> None:
        """Say ``farewell`` (``exit``/``quit``) in the shell if one is open, then hang up."""
        if self._shell is not None and farewell and not self._aborted:
            try:
                # Say goodbye and give the device a moment to log the session out cleanly,
                # rather than leaving it a reset connection to report.
                self._shell.settimeout(max(0.0, min(1.0, self.deadline - time.monotonic())))
                self._shell.sendall((farewell + "\n").encode("utf-8"))
                while self._shell.recv(4096):
                    pass
            except (OSError, EOFError, paramiko.SSHException):
                pass  # already closed, or slow to close: hanging up is all that is left
        if self._client is not None:
            self._client.close()

    def abort(self) -> None:
        """Hang up from another thread: the worker's blocked read fails at once."""
        self._aborted = True
        if self._client is not None:
            self._client.close()


def _text(data: bytes) -> str:
    return clean_terminal(data.decode("utf-8", errors="replace"))
