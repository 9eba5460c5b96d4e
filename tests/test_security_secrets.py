"""Secrets never appear in outputs. An agent (SNMP community, SNMPv3 keys, SSH password,
broker password from a file) and a collector (SMTP password, webhook secret, broker password,
API tokens) are configured with distinctive secret strings and run as real processes for a
while against a password-protected Mosquitto and snmpsim; every log, every command's output,
every report file (PDF through pdftotext, XLSX unzipped), every API answer and /metrics is
then searched for each secret."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fieldmon.allinone import free_port, give_to_broker_user
from tests.support.broker import Broker
from tests.support.configs import TOKENS, collector_toml
from tests.support.procs import Proc, fieldmon, http_call, http_get, http_json, wait_for
from tests.support.snmpsim import SnmpSim, recordings_dir

SECRETS = {
    "snmp community": "Secret-Community-9Q7x",
    "snmp v3 auth key": "Secret-AuthKey-4Lm2p",
    "snmp v3 priv key": "Secret-PrivKey-8Rt5w",
    "ssh password": "Secret-SshPass-3Vk9z",
    "agent broker password": "Secret-AgentMqtt-6Hd1",
    "collector broker password": "Secret-CollMqtt-2Ws8",
    "smtp password": "Secret-SmtpPass-5Nb3",
    "webhook secret": "Secret-Webhook-7Jc4",
    **{f"api token {k}": v for k, v in TOKENS.items()},
}


def _write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _broker_with_passwords(users: dict[str, str]) -> Broker:
    """A Mosquitto that refuses anonymous clients: the agent's password is really used."""
    probe = Broker()
    passwd = probe.dir / "passwd"
    passwd.touch()
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    give_to_broker_user(passwd)
    probe.extra_conf = f"allow_anonymous false\npassword_file {passwd}\n"
    return probe


def _grep(name: str, text: str, found: list[str]) -> None:
    for what, secret in SECRETS.items():
        if secret in text:
            found.append(f"{what} in {name}")


def test_no_secret_in_any_output(tmp_path: Path) -> None:
    agent_pw = _write_secret(tmp_path / "agent-mqtt-pw", SECRETS["agent broker password"])
    coll_pw = _write_secret(tmp_path / "coll-mqtt-pw", SECRETS["collector broker password"])
    broker = _broker_with_passwords(
        {"a1": SECRETS["agent broker password"], "coll": SECRETS["collector broker password"]}
    )
    broker.start()
    sim = SnmpSim([recordings_dir() / "vrp_5720-32x-ei.snmprec"])
    sim.start()
    closed = free_port()  # nothing listens here: SMTP, webhook and SSH all fail, and say so
    notify = f"""
[notify]
window = 1
[notify.retry]
attempts = 2
initial = 1
[notify.channels.mail]
type = "email"
host = "127.0.0.1"
port = {closed}
security = "plain"
username = "noc"
password = "{SECRETS["smtp password"]}"
sender = "fieldmon <noc@example.net>"
groups = [{{ to = ["desk@example.net"], lang = "en" }}]
[notify.channels.hook]
type = "webhook"
url = "http://127.0.0.1:{closed}/hook"
secret = "{SECRETS["webhook secret"]}"
[[notify.routes]]
channels = ["mail", "hook"]
"""
    cfg, port = collector_toml(tmp_path, broker.port, client_id="coll", extra=notify)
    # The collector logs in to the broker with a password file too.
    cfg.write_text(
        cfg.read_text().replace(
            'client_id = "coll"\n',
            f'client_id = "coll"\nusername = "coll"\npassword_file = "{coll_pw}"\n',
        )
    )
    agent_cfg = tmp_path / "agent.toml"
    agent_cfg.write_text(
        f"""site = "s1"
agent = "a1"
state_dir = "{tmp_path}/agent-state"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "a1"
password_file = "{agent_pw}"
max_backoff = 2
[[targets]]
name = "host1"
class = "linux-server"
intervals = {{ "cpu.usage" = 5 }}
[[targets]]
name = "sw-v2c"
class = "snmp-device"
address = "127.0.0.1"
intervals = {{ "snmp.reachable" = 5 }}
[targets.snmp]
port = {sim.port}
community = "{SECRETS["snmp community"]}"
timeout = 0.5
retries = 0
[targets.ssh]
vendor = "vrp"
port = {closed}
username = "backup"
password = "{SECRETS["ssh password"]}"
accept_new_host_key = true
timeout = 2
[[targets]]
name = "sw-v3"
class = "snmp-device"
address = "127.0.0.1"
intervals = {{ "snmp.reachable" = 5 }}
[targets.snmp]
version = "3"
port = {sim.port}
user = "simulator"
auth_protocol = "sha"
auth_key = "{SECRETS["snmp v3 auth key"]}"
priv_protocol = "aes"
priv_key = "{SECRETS["snmp v3 priv key"]}"
timeout = 0.5
retries = 0
""",
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{port}"
    outputs: dict[str, str] = {}
    collector = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    agent: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "agent.log")
        wait_for(
            lambda: any(r["target"] == "sw-v2c" for r in http_json(f"{base}/api/v1/status")),
            30,
            what="the agent's results through the password-protected broker",
        )
        status, data = http_call(
            "POST",
            f"{base}/api/v1/incidents",
            {"site": "s1", "level": 1, "title": "phoned in", "caller_name": "Wang"},
            TOKENS["engineer"],
        )
        assert status == 201, data
        number = str(data["number"])
        time.sleep(8)  # polls, notifications failing and retrying, SSH refused
        for path in (
            "/api/v1/incidents",
            f"/api/v1/incidents/{number}",
            "/api/v1/status",
            "/api/v1/agents",
            "/api/v1/verify",
            "/api/v1/openapi.json",
            "/healthz",
        ):
            outputs[f"API {path}"] = http_get(base + path, TOKENS["admin"]).decode()
        outputs["/metrics"] = http_get(f"{base}/metrics").decode()
        for number_ in [i["number"] for i in http_json(f"{base}/api/v1/incidents")]:
            outputs[f"API incident {number_}"] = http_get(
                f"{base}/api/v1/incidents/{number_}", TOKENS["admin"]
            ).decode()
        for token_name, token in TOKENS.items():  # refusals and answers of every role
            status, body = http_call("GET", f"{base}/api/v1/verify", None, token)
            outputs[f"API verify as {token_name}"] = str(body)
        status, body = http_call("GET", f"{base}/api/v1/incidents", None, "wrong-" + "x" * 8)
        outputs["API unknown token"] = str(body)
    finally:
        if agent:
            agent.stop()
        collector.stop()
        broker.stop()
        sim.close()

    checked = fieldmon("agent", "check", "--config", str(agent_cfg), "--json", timeout=120)
    outputs["agent check --json"] = checked.stdout + checked.stderr
    listed = fieldmon("incidents", "list", "--config", str(cfg), "--json")
    assert listed.returncode == 0, listed.stderr
    outputs["incidents list --json"] = listed.stdout + listed.stderr
    shown = fieldmon("incidents", "show", number, "--config", str(cfg), "--json")
    outputs["incidents show --json"] = shown.stdout + shown.stderr
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    out = tmp_path / "reports"
    done = fieldmon(
        "report", "monthly", "--config", str(cfg), "--site", "s1", "--month", month,
        "--lang", "en", "--format", "html,json,pdf,xlsx", "--out", str(out), timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs["report monthly output"] = done.stdout + done.stderr
    for f in sorted(out.iterdir()):
        if f.suffix == ".pdf":
            outputs[f.name] = subprocess.run(
                ["pdftotext", str(f), "-"], capture_output=True, text=True, check=True
            ).stdout
        elif f.suffix == ".xlsx":
            outputs[f.name] = subprocess.run(
                ["unzip", "-p", str(f)], capture_output=True, check=True
            ).stdout.decode(errors="replace")
        outputs[f"{f.name} (bytes)"] = f.read_bytes().decode(errors="replace")
    assert {f.suffix for f in out.iterdir()} >= {".html", ".json", ".pdf", ".xlsx"}
    outputs["broker.log"] = (broker.dir / "broker.log").read_text(errors="replace")
    for log in tmp_path.glob("*.log"):
        outputs[log.name] = log.read_text(errors="replace")
    state = tmp_path / "agent-state"
    for f in state.rglob("*"):  # the outbox and anything else the agent keeps
        if f.is_file():
            outputs[f"agent state {f.name}"] = f.read_bytes().decode(errors="replace")

    # The test really exercised what it claims: results crossed the protected broker and the
    # failing channels and SSH left their traces in the logs.
    assert "sw-v3" in outputs["API /api/v1/status"]
    assert "notify" in outputs["collector.log"].lower()
    # Control: the search does find them where they belong, in the configuration.
    control: list[str] = []
    for f in (agent_cfg, cfg, agent_pw, coll_pw):
        _grep(f.name, f.read_text(), control)
    assert len(control) == 8, control  # every secret but the tokens (stored as SHA-256)
    found: list[str] = []
    for name, text in outputs.items():
        _grep(name, text, found)
    shutil.rmtree(broker.dir, ignore_errors=True)
    assert not found, found
