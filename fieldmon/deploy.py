"""``fieldmon deploy broker``: a Mosquitto configuration fit for a customer-facing network.

The collector trusts the topic, not the payload (see :mod:`checks.topics`), so the broker's
ACL is what stops one customer's agent from speaking for another: every agent gets its own
user, may write only under ``fieldmon/v1/<site>/<agent>/#`` and read nothing; the collector
user may read everything under ``fieldmon/v1/#``. TLS keeps the passwords off the wire.

The CA and server certificate are generated with ``cryptography`` unless the operator brings
their own CA; passwords are hashed by Mosquitto's own ``mosquitto_passwd`` so that the file
format always matches the installed broker.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from checks.topics import COLLECTORS_ROOT, PREFIX, check_name

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate

#: The broker user the collector connects as (not a valid agent name clash: agents may not
#: take it, see :func:`plan_broker`).
COLLECTOR_USER = "fieldmon-collector"
#: Server certificates are short-lived enough to be rotated, long enough for a contract year.
SERVER_DAYS = 825
CA_DAYS = 3650


class DeployError(Exception):
    """A deployment request that cannot be carried out; ``str()`` is the operator message."""


@dataclass(frozen=True)
class BrokerRequest:
    """What the operator asked for (the CLI's arguments, validated by :func:`plan_broker`)."""

    site: str
    agents: tuple[str, ...]
    out: Path
    port: int = 8883
    bind: str = ""
    #: Names and addresses agents use to reach the broker: they go into the certificate.
    hostnames: tuple[str, ...] = ()
    data_dir: Path = Path("/var/lib/mosquitto")
    ca_cert: Path | None = None
    ca_key: Path | None = None


@dataclass(frozen=True)
class BrokerFiles:
    """Where everything was written, and the one-time credentials."""

    conf: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    passwd: Path
    acl: Path
    credentials: Path
    agent_snippets: dict[str, Path]
    passwords: dict[str, str] = field(repr=False)


def plan_broker(req: BrokerRequest) -> BrokerRequest:
    """Validate names before anything is written: a bad name in an ACL fails silently later."""
    check_name("site", req.site)
    if not req.agents:
        raise DeployError("give at least one agent (--agents a1,a2)")
    for agent in req.agents:
        try:
            check_name("agent", agent)
        except ValueError as exc:
            raise DeployError(str(exc)) from None
    if len(set(req.agents)) != len(req.agents):
        raise DeployError("agent names must be unique")
    if COLLECTOR_USER in req.agents:
        raise DeployError(f"{COLLECTOR_USER!r} is reserved for the collector")
    if (req.ca_cert is None) != (req.ca_key is None):
        raise DeployError("--ca-cert and --ca-key go together")
    if shutil.which("mosquitto_passwd") is None:
        raise DeployError("mosquitto_passwd not found (Debian package: mosquitto)")
    return req


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def pem_key(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(common_name: str) -> tuple[EllipticCurvePrivateKey, Certificate]:
    """A private CA for one site's broker: agents trust only it, not the public web PKI."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: EllipticCurvePrivateKey, ca_cert: Certificate, hostnames: tuple[str, ...]
) -> tuple[EllipticCurvePrivateKey, Certificate]:
    """The broker's certificate; every name an agent may dial must be in its SAN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _new_key()
    sans: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _load_ca(cert_path: Path, key_path: Path) -> tuple[EllipticCurvePrivateKey, Certificate]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot read the CA: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        # Signing code stays one path; an RSA CA would need its own padding choices.
        raise DeployError("the CA key must be an EC key (generate one, or omit --ca-cert)")
    return key, cert


def _write(path: Path, data: bytes | str, mode: int) -> Path:
    """Create ``path`` with ``mode`` from the start: a secret is never briefly world-readable."""
    raw = data.encode() if isinstance(data, str) else data
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return path


def _broker_group() -> int | None:
    """The ``mosquitto`` group, when we are root: Mosquitto drops to that user and must read
    its key, password and ACL files, which nobody else may."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("mosquitto").pw_gid
    except KeyError:
        return None


def _for_broker(path: Path, gid: int | None) -> None:
    if gid is not None:
        os.chown(path, 0, gid)
        path.chmod(0o750 if path.is_dir() else 0o640)


def _passwd_file(path: Path, users: dict[str, str]) -> None:
    path.unlink(missing_ok=True)
    _write(path, "", 0o600)
    for user, password in users.items():
        # -b puts the password on mosquitto_passwd's command line for a moment; it runs here,
        # as the operator, before the file exists anywhere else.
        done = subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, password],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise DeployError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")


def acl_text(site: str, agents: tuple[str, ...]) -> str:
    """One write-only rule per agent: an agent can neither speak for another nor read others'
    results (their summaries name customer devices)."""
    lines = [
        "# Written by `fieldmon deploy broker`. Anything not allowed here is denied.",
        f"user {COLLECTOR_USER}",
        f"topic read {PREFIX}/#",
        # Collectors announce themselves to each other (collector/peers.py) and send agents
        # their requests (checks/commands.py).
        f"topic readwrite {COLLECTORS_ROOT}/#",
        f"topic write {PREFIX}/+/+/command",
        "",
    ]
    for agent in agents:
        lines += [
            f"user {agent}",
            f"topic write {PREFIX}/{site}/{agent}/#",
            f"topic read {PREFIX}/{site}/{agent}/command",
            "",
        ]
    return "\n".join(lines)


def mosquitto_conf_tls(req: BrokerRequest, conf_dir: Path) -> str:
    """A broker that accepts only authenticated TLS clients, and still never drops queued
    results for a collector that is down (the same queue limits as the all-in-one broker)."""
    listener = f"listener {req.port} {req.bind}".rstrip()
    return "\n".join(
        [
            "# Written by `fieldmon deploy broker`.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {conf_dir / 'passwd'}",
            f"acl_file {conf_dir / 'acl'}",
            "persistence true",
            f"persistence_location {req.data_dir}/",
            "max_queued_messages 1000000",
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "",
            listener,
            f"cafile {conf_dir / 'ca.crt'}",
            f"certfile {conf_dir / 'server.crt'}",
            f"keyfile {conf_dir / 'server.key'}",
            "tls_version tlsv1.2",
            "",
        ]
    )


def _snippet(req: BrokerRequest, user: str, password: str, ca: Path, host: str) -> str:
    """The ``[mqtt]`` block to paste into agent.toml / collector.toml."""
    return (
        f"# [mqtt] section for {user} (site {req.site}); keep this file private.\n"
        f'[mqtt]\nhost = "{host}"\nport = {req.port}\nusername = "{user}"\n'
        f'password = "{password}"\n[mqtt.tls]\nca_file = "{ca}"\n'
    )


def write_broker(req: BrokerRequest) -> BrokerFiles:
    """Write every file under ``req.out``; secrets 0600 (root only), broker files group
    ``mosquitto`` 0640, the CA key never readable by the broker."""
    req = plan_broker(req)
    out = req.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    hostnames = req.hostnames or ("localhost", "127.0.0.1", socket.getfqdn())
    hostnames = tuple(dict.fromkeys(h for h in hostnames if h))
    gid = _broker_group()

    from cryptography.hazmat.primitives import serialization

    if req.ca_cert and req.ca_key:
        ca_key, ca_cert = _load_ca(req.ca_cert, req.ca_key)
    else:
        ca_key, ca_cert = make_ca(f"fieldmon broker CA ({req.site})")
        _write(out / "ca.key", pem_key(ca_key), 0o600)
    server_key, server_cert = make_server_cert(ca_key, ca_cert, hostnames)
    pem = serialization.Encoding.PEM
    ca_path = _write(out / "ca.crt", ca_cert.public_bytes(pem), 0o644)
    crt_path = _write(out / "server.crt", server_cert.public_bytes(pem), 0o644)
    key_path = _write(out / "server.key", pem_key(server_key), 0o600)

    passwords = {u: secrets.token_urlsafe(24) for u in (COLLECTOR_USER, *req.agents)}
    passwd = out / "passwd"
    _passwd_file(passwd, passwords)
    acl = _write(out / "acl", acl_text(req.site, req.agents), 0o600)
    conf = _write(out / "mosquitto.conf", mosquitto_conf_tls(req, out), 0o644)
    for path in (key_path, passwd, acl, out):
        _for_broker(path, gid)

    creds_dir = out / "credentials"
    creds_dir.mkdir(mode=0o700, exist_ok=True)
    creds_dir.chmod(0o700)
    snippets = {
        user: _write(
            creds_dir / f"{user}.toml",
            _snippet(req, user, pw, ca_path, hostnames[0]),
            0o600,
        )
        for user, pw in passwords.items()
    }
    creds = _write(
        creds_dir / "all.txt",
        "".join(f"{user} {pw}\n" for user, pw in passwords.items()),
        0o600,
    )
    return BrokerFiles(
        conf=conf,
        ca_cert=ca_path,
        server_cert=crt_path,
        server_key=key_path,
        passwd=passwd,
        acl=acl,
        credentials=creds,
        agent_snippets=snippets,
        passwords=passwords,
    )


def describe(files: BrokerFiles, req: BrokerRequest) -> str:
    """What the operator sees once: where things are and the passwords (also in 0600 files)."""
    lines = [
        f"broker configuration for site {req.site!r} written:",
        f"  config       {files.conf}   (mosquitto -c {files.conf})",
        f"  CA           {files.ca_cert}   (give this to every agent and the collector)",
        f"  server cert  {files.server_cert}",
        f"  passwords    {files.passwd}",
        f"  ACL          {files.acl}",
        f"  credentials  {files.credentials}   (0600; one [mqtt] snippet per user beside it)",
        "",
        "credentials (shown once):",
    ]
    for user, pw in files.passwords.items():
        lines.append(f"  {user:24} {pw}   -> {files.agent_snippets[user]}")
    return "\n".join(lines)
