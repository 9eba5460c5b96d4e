"""A replaying SSH server: recorded sessions of real devices, served on loopback for tests.

The recordings are Oxidized's device simulations in ``../shared/fixtures/ssh`` (see SOURCES.md
there for the format and provenance). This server speaks real SSH (paramiko's server side,
a host key generated per simulator), so the probe under test runs its real code path: TCP,
key exchange, host key check, login, PTY shell or exec channels.

* **shell** recordings: after the shell request the server sends ``init_prompt``; each line
  the client types is looked up as ``line + "\\n"`` and the recorded reply is sent (it already
  holds the echo, the output and the next prompt). ``exit``/``quit`` close the session.
* **exec** recordings: each exec request is looked up as ``command + "\\n"``; the reply is the
  output, then exit status 0, then EOF. The server closes the channel once the client has.
* **order**: a mapping answers in any order. A list is consumed forwards: a command may skip
  recorded ones (the probe asks for less than Oxidized did) but never go back to an earlier
  one, which is what catches a client sending the paging-off command too late.
  ``strict_order=True`` demands the exact recorded sequence.

Anything not in the recording is answered with an error line and noted in ``errors``, so a
test can assert that the client sent only what the device really understood. To simulate a
configuration change, edit the recording the simulator serves (:meth:`Recording.replace`).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import paramiko
import pytest
import yaml  # type: ignore[import-untyped]

HOST = "127.0.0.1"
Mode = Literal["shell", "exec"]
#: Recordings made in exec mode (SOURCES.md, "Mode"); every other one is a shell session.
EXEC_PREFIXES = ("junos#", "routeros#")
_RUBY_ESCAPE = re.compile(r'\\(x[0-9A-Fa-f]{2}|[rnte"\\])')
_RUBY_CHARS = {"r": "\r", "n": "\n", "t": "\t", "e": "\x1b", '"': '"', "\\": "\\"}


def fixtures_dir() -> Path:
    """``../shared/fixtures/ssh`` beside the repository checkout."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ssh"
    if not path.is_dir():
        raise FileNotFoundError(
            f"SSH recordings not found at {path}; the tests expect the shared fixtures folder"
            " (shared/fixtures/ssh) next to the repository checkout"
        )
    return path


def ruby_unescape(text: str) -> str:
    """The second decoding step of SOURCES.md: Ruby string escapes left in the replies.

    Only the listed escapes are decoded; any other backslash pair (the ASCII-art cow in the
    Cumulus banner) stays as it is.
    """

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "x" else _RUBY_CHARS[code]

    return _RUBY_ESCAPE.sub(one, text)


@dataclass
class Recording:
    """One session file, decoded: the banner, the commands and their replies."""

    name: str
    mode: Mode
    init_prompt: str
    #: ``(command with its trailing "\\n", reply)`` in file order.
    commands: list[tuple[str, str]]
    ordered: bool
    prompts: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str, mode: Mode | None = None) -> Recording:
        path = fixtures_dir() / name
        data = yaml.safe_load(path.read_text(encoding="ascii"))
        raw = data.get("commands")
        ordered = isinstance(raw, list)
        pairs: list[tuple[Any, Any]] = (
            [next(iter(entry.items())) for entry in raw] if ordered else list(raw.items())
        )
        commands = [(str(key), ruby_unescape(str(reply or ""))) for key, reply in pairs]
        if mode is None:
            mode = "exec" if name.startswith(EXEC_PREFIXES) else "shell"
        return cls(
            name=name,
            mode=mode,
            init_prompt=ruby_unescape(str(data.get("init_prompt") or "")),
            commands=commands,
            ordered=ordered,
        )

    @staticmethod
    def prompt_samples(name: str) -> dict[str, list[str]]:
        """A ``…#prompt.yaml`` file: prompts to accept (``pass``, ``pass_with_expect``) and
        to reject (``fail``), decoded like replies."""
        data = yaml.safe_load((fixtures_dir() / name).read_text(encoding="ascii"))
        return {k: [ruby_unescape(str(v)) for v in data.get(k) or []] for k in data}

    def reply(self, command: str) -> str:
        for key, text in self.commands:
            if key == command:
                return text
        raise KeyError(f"{command!r} is not recorded in {self.name}")

    def replace(self, command: str, old: str, new: str) -> None:
        """Serve ``command``'s reply with ``old`` replaced by ``new`` (a configuration edit)."""
        for i, (key, text) in enumerate(self.commands):
            if key == command:
                if old not in text:
                    raise ValueError(f"{old!r} is not in the reply to {command!r}")
                self.commands[i] = (key, text.replace(old, new))
                return
        raise KeyError(f"{command!r} is not recorded in {self.name}")

    @property
    def prompt(self) -> str:
        """The device's prompt: the last line of ``init_prompt`` (shell recordings)."""
        return self.init_prompt.rsplit("\n", 1)[-1]


class _Conversation:
    """One client connection's position in an ordered recording."""

    def __init__(self, sim: SshSim) -> None:
        self.sim = sim
        self.position = 0

    def lookup(self, command: str) -> str | None:
        recording = self.sim.recording
        self.sim.received.append(command.rstrip("\n"))
        if not recording.ordered:
            for key, text in recording.commands:
                if key == command:
                    return text
        else:
            last = self.position + 1 if self.sim.strict_order else len(recording.commands)
            for i in range(self.position, min(last, len(recording.commands))):
                if recording.commands[i][0] == command:
                    self.position = i + 1
                    return recording.commands[i][1]
        self.sim.errors.append(f"unexpected command {command!r} at position {self.position}")
        return None


class _Server(paramiko.ServerInterface):  # type: ignore[misc]
    """paramiko calls these from its transport thread: decide, start a worker, return."""

    def __init__(self, sim: SshSim) -> None:
        self.sim = sim
        self.conversation = _Conversation(sim)

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        if self.sim.password is None or password == self.sim.password:
            self.sim.logins.append(username)
            return int(paramiko.AUTH_SUCCESSFUL)
        return int(paramiko.AUTH_FAILED)

    def check_auth_publickey(self, username: str, key: Any) -> int:
        if self.sim.password is None:
            self.sim.logins.append(username)
            return int(paramiko.AUTH_SUCCESSFUL)
        return int(paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_pty_request(
        self,
        channel: Any,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        self.sim.ptys.append(term.decode() if isinstance(term, bytes) else str(term))
        return True

    def check_channel_shell_request(self, channel: Any) -> bool:
        if self.sim.recording.mode != "shell":
            self.sim.errors.append("shell requested from an exec-mode recording")
            return False
        self.sim.spawn(self.sim.serve_shell, channel, self.conversation)
        return True

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        if self.sim.recording.mode != "exec":
            self.sim.errors.append(f"exec {command!r} requested from a shell-mode recording")
            return False
        text = command.decode("utf-8", errors="replace")
        self.sim.spawn(self.sim.serve_exec, channel, self.conversation, text)
        return True


class SshSim:
    """The server; ``with SshSim(Recording.load(name)) as sim:`` or :meth:`start`/:meth:`stop`.

    ``crlf`` sends line ends as CRLF, as a real PTY does; ``password`` (when given) is the only
    one accepted, and public keys are then refused; ``stall`` never answers in the shell, for
    timeout tests.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        crlf: bool = False,
        password: str | None = None,
        strict_order: bool = False,
        stall: bool = False,
        host_key: Any = None,
    ) -> None:
        self.recording = recording
        self.crlf = crlf
        self.password = password
        self.strict_order = strict_order
        self.stall = stall
        self.host_key: Any = host_key or paramiko.ECDSAKey.generate()
        self.received: list[str] = []
        self.errors: list[str] = []
        self.logins: list[str] = []
        self.ptys: list[str] = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.host = HOST
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._transports: list[Any] = []
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- helpers

    def known_hosts_line(self, key: Any = None) -> str:
        """The OpenSSH known_hosts line for this server (or for ``key`` under its name)."""
        key = key or self.host_key
        return f"[{self.host}]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def spawn(self, fn: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True, name="sshsim-channel")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _out(self, text: str) -> bytes:
        if self.crlf:
            text = re.sub(r"(?<!\r)\n", "\r\n", text)
        return text.encode("utf-8")

    # ------------------------------------------------------------------------------ serving

    def start(self) -> SshSim:
        self.spawn(self._accept_loop)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.spawn(self._handshake, conn)

    def _handshake(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        with self._lock:
            self._transports.append(transport)
        try:
            transport.start_server(server=_Server(self))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()  # the client went away during the handshake (a test's point)

    def serve_shell(self, chan: Any, conversation: _Conversation) -> None:
        try:
            if self.stall:
                self._stop.wait(60)
                return
            chan.sendall(self._out(self.recording.init_prompt))
            pending = b""
            while not self._stop.is_set():
                data = chan.recv(4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    line = raw.decode("utf-8", errors="replace").rstrip("\r")
                    reply = conversation.lookup(line + "\n")
                    if reply is None:
                        reply = f"{line}\n% Unknown command (not in the recording)\n"
                        reply += self.recording.prompt
                    chan.sendall(self._out(reply))
                    if line.strip() in ("exit", "quit"):
                        return
        except (OSError, EOFError, paramiko.SSHException):
            return
        finally:
            _close(chan)

    def serve_exec(self, chan: Any, conversation: _Conversation, command: str) -> None:
        try:
            reply = conversation.lookup(command + "\n")
            if reply is None:
                chan.sendall_stderr(f"unknown command: {command}\n".encode())
                chan.send_exit_status(127)
            else:
                chan.sendall(self._out(reply))
                chan.send_exit_status(0)
            chan.shutdown_write()
            # Close only after the client has: closing first could overtake paramiko's reply
            # to the exec request, which the client would take for a refused channel.
            chan.settimeout(10)
            while chan.recv(4096):
                pass
        except (OSError, EOFError, paramiko.SSHException):
            return
        finally:
            _close(chan)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            transports = list(self._transports)
            threads = list(self._threads)
        for transport in transports:
            transport.close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> SshSim:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _close(chan: Any) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):  # client hung up first
        chan.close()


SimFactory = Callable[..., SshSim]


@pytest.fixture
def ssh_sim() -> Iterator[SimFactory]:
    """``ssh_sim("ios#…#simulation.yaml", crlf=True)``: a started simulator, stopped after."""
    started: list[SshSim] = []

    def start(name: str, *, mode: Mode | None = None, **options: Any) -> SshSim:
        sim = SshSim(Recording.load(name, mode), **options).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
