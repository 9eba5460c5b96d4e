"""The demo core switch's SSH side: a small SSH server that talks like a Huawei VRP switch.

Run by :class:`fieldmon.demo.run.DemoSite` as its own process on the core switch's loopback
address, so the agent's configuration backup (``agent/probes/ssh.py``, vendor ``vrp``) runs
its real code path: TCP, key exchange, a host key checked against the demo's known_hosts,
password login, a PTY shell, ``screen-length 0 temporary``, ``display
current-configuration``, ``quit``. The configuration is read from a file at every
``display``, so the demo changes a line of it (the "config" fault) simply by rewriting that
file; the next backup then reports the change with its diff.

Why a process of its own: paramiko's server side is blocking and threaded; in the
``fieldmon up`` process it would share the interpreter with the demo's tick loop, and stopping
it could not be more certain than killing a process.

    python -m fieldmon.demo.sshd --listen 127.0.0.20 --port 2222 --host-key KEY \\
        --config FILE --hostname core-sw --username fieldmon --password-file FILE
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import paramiko

log = logging.getLogger("fieldmon.demo.sshd")

#: Seconds a client may stay silent before the session is dropped (a stuck agent session
#: must not hold a thread for ever).
IDLE_TIMEOUT = 120.0
BANNER = (
    "\r\nInfo: The max number of VTY users is 21, the number of current VTY users online is 1."
    "\r\n      The current login time is 2026-11-04 08:00:00+08:00.\r\n"
)
UNKNOWN = "              ^\r\nError: Unrecognized command found at '^' position.\r\n"
SCREEN_LENGTH = (
    "Info: The configuration takes effect on the current user terminal interface only.\r\n"
)


class VrpServer(paramiko.ServerInterface):  # type: ignore[misc]
    """Password login for one user, one PTY shell per session, no exec (VRP has none)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == self.username and password == self.password:
            return int(paramiko.AUTH_SUCCESSFUL)
        return int(paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell.set()
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return False


def answer(command: str, hostname: str, config: Path) -> str | None:
    """What the switch prints for one command line (before the next prompt); None: the
    session ends (``quit``)."""
    words = command.split()
    if not words:
        return ""
    if words[0] in ("quit", "exit", "q"):
        return None
    if words[:3] == ["screen-length", "0", "temporary"]:
        return SCREEN_LENGTH
    if command.strip() in ("display current-configuration", "dis cur"):
        text = config.read_text(encoding="utf-8")
        return text.replace("\n", "\r\n")
    if command.strip() == "display version":
        return f"Huawei Versatile Routing Platform Software\r\n{hostname} uptime is 143 days\r\n"
    return UNKNOWN


def serve_shell(chan: paramiko.Channel, hostname: str, config: Path) -> None:
    """Prompt, read a line, echo it, answer it, prompt again, as VRP does over SSH."""
    prompt = f"<{hostname}>"
    chan.settimeout(IDLE_TIMEOUT)
    chan.sendall((BANNER + prompt).encode())
    pending = b""
    while True:
        try:
            data = chan.recv(4096)
        except TimeoutError:
            return
        if not data:
            return
        pending += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            reply = answer(line, hostname, config)
            chan.sendall((line + "\r\n").encode())
            if reply is None:
                return
            chan.sendall((reply + ("" if reply.endswith("\n") or not reply else "\r\n")).encode())
            chan.sendall(prompt.encode())


def handle(sock: socket.socket, key: paramiko.PKey, args: argparse.Namespace) -> None:
    """One client connection, from key exchange to hang-up."""
    transport = paramiko.Transport(sock)
    try:
        transport.add_server_key(key)
        server = VrpServer(args.username, args.password)
        transport.start_server(server=server)
        chan = transport.accept(30)
        if chan is None or not server.shell.wait(10):
            return
        serve_shell(chan, args.hostname, args.config)
        chan.close()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        log.info("session ended: %s", exc)
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fieldmon.demo.sshd", description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", type=Path, required=True, help="RSA key, PEM")
    parser.add_argument("--config", type=Path, required=True, help="file served by display")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    args = parser.parse_args(argv)
    args.password = args.password_file.read_text(encoding="utf-8").strip()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    # paramiko logs every connection that closes before the banner (the demo's own readiness
    # probe does) as an error with a traceback; sessions are logged by :func:`handle`.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    key = paramiko.RSAKey.from_private_key_file(str(args.host_key))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, args.port))
    listener.listen(16)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=handle, args=(sock, key, args), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
