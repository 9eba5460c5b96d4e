"""Report review, the customer's fault form, the board's filters and the login rate limit, in
a real browser (Debian's chromium, headless) against a real collector process.

An engineer types a remark into last month's inspection report, approves it and downloads
the PDF (read back with pdftotext); a customer sees and downloads only approved reports of
its own site and gets 404 for anything else typed into the address bar; a customer reports a
fault the way a phone call would and it lands on the engineers' board with the caller's
details; the board's filters narrow it in the database query and stay in the URL; six
failed logins are answered 429. Screenshots of every page at desktop (1366x900) and phone
(390x844) width go to ``$FIELDMON_WEB_SHOTS`` (or a temporary folder)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import Policy
from collector.store.db import Store
from fieldmon.allinone import free_port
from tests.support.configs import TOKENS
from tests.support.procs import http_json
from tests.test_web import PASSWORDS, Console, _login, _shots, _status, _submit, running_console
from tests.test_web import browser as browser  # the shared chromium fixture
from tests.test_web import pytestmark as pytestmark

ENGINEER, ADMIN = TOKENS["engineer"], TOKENS["admin"]
CONTACTS = ["it@example-psb.cn", "duty@example-psb.cn"]
TZ = ZoneInfo("Asia/Shanghai")  # the collector's default time zone
REMARK = "风扇噪音偏大，建议下次巡检时更换"
DEVICE_REMARK = "机柜温度偏高，已通知物业调整空调"
ADVICE = "已与客户约定本月20日更换证书"


def _months() -> tuple[str, str]:
    """(this month, last month) in the collector's time zone."""
    first = datetime.now(TZ).replace(day=1)
    return first.strftime("%Y-%m"), (first - timedelta(days=1)).strftime("%Y-%m")


def _seed(db_url: str) -> None:
    """Through the collector's own ingest path: an NVR on s1 inspected last month and this
    month; a camera (Dahua) and a switch (Huawei) on s1 that are down now, and a UPS (APC)
    that went down 40 days ago, so incidents differ by class, vendor and opening day; a
    switch on s2."""
    classes = load_catalogue()
    store = Store(db_url)
    now = datetime.now(UTC)
    last_month = datetime.now(TZ).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    last_month = (last_month - timedelta(days=2)).astimezone(UTC)

    def r(target: str, cls: str, check: str, status: Status, at: datetime, **kw: object) -> Result:
        return Result(
            target=target,
            target_class=cls,
            check=check,
            status=status,
            observed_at=at,
            **kw,  # type: ignore[arg-type]
        )

    def device(target: str, cls: str, vendor: str, status: Status, at: datetime) -> list[Result]:
        facts = {"vendor": vendor, "model": f"{vendor}-{cls}", "serial": f"SN-{target}"}
        return [
            r(target, cls, "inventory.entity", Status.OK, at, summary=vendor, facts=facts),
            r(target, cls, "snmp.reachable", status, at, value="down" if status else "up"),
        ]

    try:
        # An inspection in the last quarter, so its quarterly report is listed for review.
        first = datetime.now(TZ).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
        in_last_quarter = first.replace(month=(first.month - 1) // 3 * 3 + 1) - timedelta(days=10)
        at_q = in_last_quarter.astimezone(UTC)
        nvr = device("nvr-1", "nvr", "Hikvision", Status.OK, at_q)
        store.ingest("s1", "a1", nvr, classes, Policy(), at_q)
        for at in (last_month, now - timedelta(minutes=2)):
            store.ingest(
                "s1",
                "a1",
                device("nvr-1", "nvr", "Hikvision", Status.OK, at),
                classes,
                Policy(),
                at,
            )
        # A certificate 20 days from expiry last month: a hidden danger in that report.
        cert = r("nvr-1", "nvr", "tls.days_left", Status.OK, last_month, value=20, unit="d")
        store.ingest("s1", "a1", [cert], classes, Policy(), last_month)
        old = now - timedelta(days=40)
        store.ingest(
            "s1", "a1", device("ups-1", "ups", "APC", Status.CRIT, old), classes, Policy(), old
        )
        at = now - timedelta(minutes=1)
        for target, cls, vendor in (("cam-7", "camera", "Dahua"), ("sw-core", "switch", "Huawei")):
            store.ingest(
                "s1", "a1", device(target, cls, vendor, Status.CRIT, at), classes, Policy(), at
            )
        store.ingest(
            "s2", "a2", device("sw-s2", "switch", "H3C", Status.OK, now), classes, Policy(), now
        )
    finally:
        store.close()


class Inbox:
    """A real SMTP server's mailbox (aiosmtpd): what "send to the customer" delivered."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _mail_config(smtp_port: int, out_dir: Path) -> Callable[[str], str]:
    """Contacts for s1, an e-mail channel on the test SMTP server, and ``[reports]`` naming it
    (drafts as JSON only, so the collector's own drafting stays light)."""

    def edit(text: str) -> str:
        site = 'maintainer = "Example Integrator"\n'
        assert site in text
        text = text.replace(site, site + f"contacts = {CONTACTS!r}\n".replace("'", '"'), 1)
        return text + (
            "[notify.channels.desk]\n"
            'type = "email"\nhost = "127.0.0.1"\n'
            f'port = {smtp_port}\nsecurity = "plain"\n'
            'sender = "fieldmon <noc@example.net>"\n'
            'groups = [{ to = ["desk@example.net"], lang = "zh-CN" }]\n'
            f'[reports]\nout_dir = "{out_dir}"\nformats = ["json"]\nmail_channel = "desk"\n'
        )

    return edit


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]
) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("web-portal")
    edit = _mail_config(inbox[1], tmp / "reports")
    with running_console(tmp, seed=_seed, edit=edit) as c:
        yield c


def _sign_in(driver: WebDriver, base: str, name: str) -> None:
    driver.get(f"{base}/healthz")
    _login(driver, base, name)


def _numbers(driver: WebDriver) -> list[str]:
    return [
        str(r.get_attribute("data-number"))
        for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    ]


def _rows(driver: WebDriver) -> list[dict[str, str]]:
    return [
        {
            "number": str(tr.get_attribute("data-number")),
            "site": tr.find_elements(By.TAG_NAME, "td")[3].text,
            "target": tr.find_elements(By.TAG_NAME, "td")[4].text,
        }
        for tr in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    ]


def _fetch(driver: WebDriver, url: str) -> tuple[int, bytes]:
    """Status and body of a GET carrying the browser's cookies (a download's bytes)."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    req = urllib.request.Request(url, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def _pdf_text(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return re.sub(r"\s+", "", out)


def test_remark_kinds_apply_twice_alike_and_leave_old_hashes_alone() -> None:
    """The device and hidden-danger remarks: applying them again gives the same data, taking
    one away brings the suggested action back, and a report with none of them hashes as it
    did before they existed (so an approval made then still holds)."""
    from collector.reports.review import apply_remarks, content_hash, parse_remarks

    def report() -> dict[str, object]:
        item = {"check": "snmp.reachable", "item": "", "remark": ""}
        danger = {"device": "nvr:1", "kind": "tls", "item": "", "action": "renew it"}
        return {
            "cover": {"site": "s1"},
            "devices": [{"name": "nvr:1", "items": [item]}],
            "dangers": [danger],
        }

    before = content_hash(report())
    plain = report()
    assert apply_remarks(plain, {}) == [] and content_hash(plain) == before
    remarks = parse_remarks(
        ["nvr:1:@device=机柜温度偏高", "nvr:1:@danger/tls=本月20日更换", "nvr:1:snmp.reachable=ok"]
    )
    assert remarks["nvr:1:@device"] == "机柜温度偏高"
    data = report()
    assert apply_remarks(data, remarks) == []
    once = content_hash(data)
    assert apply_remarks(data, remarks) == [] and content_hash(data) == once != before
    dev, danger = data["devices"][0], data["dangers"][0]  # type: ignore[index]
    assert dev["remark"] == "机柜温度偏高"
    assert danger["action"] == "本月20日更换" and danger["suggested"] == "renew it"
    assert apply_remarks(data, {}) == [] and content_hash(data) == before
    assert apply_remarks(report(), {"nvr:1:@danger/disk": "x"}) == ["nvr:1:@danger/disk"]


def test_engineer_reviews_approves_downloads_and_sends_a_report(
    console: Console, browser: WebDriver, tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    base = console.base
    this_month, last_month = _months()
    _sign_in(browser, base, "li.wei")
    browser.find_element(By.ID, "nav-reports").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/reports"))
    browser.find_element(By.LINK_TEXT, "s1").click()
    WebDriverWait(browser, 10).until(lambda d: "/sites/s1/reports" in d.current_url)
    rows = {
        (r.get_attribute("data-kind"), r.get_attribute("data-period")): r.get_attribute(
            "data-state"
        )
        for r in browser.find_elements(By.CSS_SELECTOR, "#reports tbody tr")
    }
    assert rows[("monthly", last_month)] == "none" and ("monthly", this_month) in rows
    assert any(kind == "quarterly" for kind, _ in rows)
    _shots(browser, console.shots, "reports")

    # The running month can get remarks but not an approval: its figures still move, and the
    # page says so and from which day it can be approved.
    browser.get(f"{base}/sites/s1/reports/monthly/{this_month}")
    notice = browser.find_element(By.ID, "not-over")
    assert notice.is_displayed() and this_month in notice.text
    first_next = (datetime.now(TZ).replace(day=28) + timedelta(days=4)).replace(day=1)
    assert first_next.strftime("%Y-%m-%d") in notice.text and "审核" in notice.text
    assert not browser.find_elements(By.ID, "review-approve")
    assert browser.find_element(By.ID, "review-save").is_displayed()

    browser.get(f"{base}/sites/s1/reports?lang=zh-CN")
    link = browser.find_element(
        By.CSS_SELECTOR, f'tr[data-period="{last_month}"][data-kind="monthly"] a.open-report'
    )
    link.click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "review-state"))
    assert browser.find_element(By.ID, "review-state").get_attribute("data-state") == "draft"
    frame = browser.find_element(By.ID, "report-frame")
    assert frame.get_attribute("sandbox") == ""
    box = browser.find_element(By.CSS_SELECTOR, 'input.remark[data-key="nvr-1:snmp.reachable"]')
    box.send_keys(REMARK)
    # The device's own remark, and a recommendation replacing a hidden danger's suggestion.
    device_box = browser.find_element(By.CSS_SELECTOR, '[data-key="nvr-1:@device"]')
    device_box.send_keys(DEVICE_REMARK)
    advice_box = browser.find_element(By.CSS_SELECTOR, 'textarea[data-key="nvr-1:@danger/tls"]')
    suggested = str(advice_box.get_attribute("placeholder"))
    assert suggested, "the suggested action is shown"
    advice_box.send_keys(ADVICE)
    _submit(browser, "review-save")
    assert browser.find_element(By.ID, "review-saved").is_displayed()
    box = browser.find_element(By.CSS_SELECTOR, 'input.remark[data-key="nvr-1:snmp.reachable"]')
    assert box.get_attribute("value") == REMARK
    device_box = browser.find_element(By.CSS_SELECTOR, '[data-key="nvr-1:@device"]')
    assert device_box.get_attribute("value") == DEVICE_REMARK
    advice_box = browser.find_element(By.CSS_SELECTOR, 'textarea[data-key="nvr-1:@danger/tls"]')
    assert advice_box.get_attribute("value") == ADVICE
    # The framed report (the same HTML the reports write) prints the remarks already.
    browser.switch_to.frame(browser.find_element(By.ID, "report-frame"))
    WebDriverWait(browser, 20).until(lambda d: REMARK in d.find_element(By.TAG_NAME, "body").text)
    framed = browser.find_element(By.TAG_NAME, "body").text
    assert DEVICE_REMARK in framed and ADVICE in framed and suggested not in framed
    browser.switch_to.default_content()
    # The report's data (JSON, as `fieldmon report --format json` writes it) carries them.
    status, raw = _fetch(
        browser, f"{base}/sites/s1/reports/monthly/{last_month}/download/json?lang=zh-CN"
    )
    assert status == 200
    data = json.loads(raw)
    (nvr,) = [d for d in data["devices"] if d["name"] == "nvr-1"]
    assert nvr["remark"] == DEVICE_REMARK
    assert {it["remark"] for it in nvr["items"] if it["check"] == "snmp.reachable"} == {REMARK}
    (tls,) = [z for z in data["dangers"] if z["kind"] == "tls"]
    assert tls["action"] == ADVICE and tls["suggested"] == suggested
    _shots(browser, console.shots, "report-draft")

    _submit(browser, "review-approve")
    assert browser.find_element(By.ID, "review-state").get_attribute("data-state") == "approved"
    assert browser.find_element(By.ID, "reviewer").text == "li.wei"
    box = browser.find_element(By.CSS_SELECTOR, 'input.remark[data-key="nvr-1:snmp.reachable"]')
    assert box.get_attribute("readonly") is not None, "an approved version is frozen"
    assert not browser.find_elements(By.ID, "review-approve")
    assert ", ".join(CONTACTS) in browser.find_element(By.ID, "send-form").text
    _shots(browser, console.shots, "report-approved")

    # The PDF, downloaded by the browser itself.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    browser.find_element(By.ID, "download-pdf").click()
    name = f"monthly-s1-{last_month}-zh-CN.pdf"

    def done(_: WebDriver) -> bool:
        return (downloads / name).is_file() and not list(downloads.glob("*.crdownload"))

    WebDriverWait(browser, 120, poll_frequency=0.5).until(done)
    text = _pdf_text(downloads / name)
    assert REMARK in text
    assert DEVICE_REMARK in text and ADVICE in text and suggested.replace(" ", "") not in text
    assert "已审核" in text and "li.wei" in text
    assert f"RPT-s1-{last_month}-v1" in text

    # Sent to the customer's contacts through the configured e-mail channel.
    _submit(browser, "send")
    assert browser.find_element(By.ID, "review-saved").is_displayed()
    mails = [m for m in inbox[0].messages if last_month in str(m[1]["Subject"])]
    assert len(mails) == 1, [str(m["Subject"]) for _, m in inbox[0].messages]
    rcpts, mail = mails[0]
    assert sorted(rcpts) == sorted(CONTACTS)
    attached = {
        str(part.get_filename()): part.get_payload(decode=True) for part in mail.iter_attachments()
    }
    assert set(attached) == {name, f"monthly-s1-{last_month}-zh-CN.xlsx"}
    sent_pdf = tmp_path / "sent.pdf"
    blob = attached[name]
    assert isinstance(blob, bytes)
    sent_pdf.write_bytes(blob)
    assert REMARK in _pdf_text(sent_pdf)

    # A finished quarter's report has no per-device remarks; it is approved as it stands.
    quarter_start = datetime.now(TZ).replace(day=1)
    quarter_start = quarter_start.replace(month=(quarter_start.month - 1) // 3 * 3 + 1)
    prev = (quarter_start - timedelta(days=1)).astimezone(TZ)
    quarter = f"{prev.year}Q{(prev.month - 1) // 3 + 1}"
    browser.get(f"{base}/sites/s1/reports/quarterly/{quarter}?lang=zh-CN")
    assert not browser.find_elements(By.CSS_SELECTOR, "input.remark")
    _submit(browser, "review-approve")
    assert browser.find_element(By.ID, "review-state").get_attribute("data-state") == "approved"
    assert not browser.find_elements(By.ID, "send"), "only monthly reports are mailed"
    html = f"{base}/sites/s1/reports/quarterly/{quarter}/download/html?lang=zh-CN"
    assert _status(browser, html) == 200
    status, raw = _fetch(
        browser, f"{base}/sites/s1/reports/quarterly/{quarter}/download/pdf?lang=zh-CN"
    )
    assert status == 200 and raw.startswith(b"%PDF")
    quarter_pdf = tmp_path / "quarter.pdf"
    quarter_pdf.write_bytes(raw)
    assert f"QRT-s1-{quarter}-v1" in _pdf_text(quarter_pdf)
    browser.get(f"{base}/sites/s1/reports?lang=zh-CN")
    row = browser.find_element(
        By.CSS_SELECTOR, f'tr[data-period="{quarter}"][data-kind="quarterly"]'
    )
    assert row.get_attribute("data-state") == "approved"

    # The list shows who approved it.
    browser.get(f"{base}/sites/s1/reports?lang=zh-CN")
    row = browser.find_element(
        By.CSS_SELECTOR, f'tr[data-period="{last_month}"][data-kind="monthly"]'
    )
    assert row.get_attribute("data-state") == "approved" and "li.wei" in row.text
    log = console.log.read_text(errors="replace")
    assert f"monthly report s1 {last_month} (zh-CN) approved by li.wei" in log
    assert f"monthly report s1 {last_month} (zh-CN) mailed by li.wei" in log


def test_customer_sees_only_approved_reports_of_its_own_site(
    console: Console, browser: WebDriver
) -> None:
    base = console.base
    this_month, last_month = _months()
    # The engineer approves last month's English report (the customer reads English).
    _sign_in(browser, base, "li.wei")
    browser.get(f"{base}/sites/s1/reports/monthly/{last_month}?lang=en")
    _submit(browser, "review-approve")
    assert browser.find_element(By.ID, "review-state").get_attribute("data-state") == "approved"

    _sign_in(browser, base, "wang.fang")
    browser.find_element(By.ID, "nav-reports").click()
    # One site: straight to its list, in the customer's language, approved reports only.
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/sites/s1/reports"))
    listed = {
        (
            r.get_attribute("data-kind"),
            r.get_attribute("data-period"),
            r.get_attribute("data-state"),
        )
        for r in browser.find_elements(By.CSS_SELECTOR, "#reports tbody tr")
    }
    assert listed == {("monthly", last_month, "approved")}
    assert "Report a fault" in browser.page_source
    _shots(browser, console.shots, "customer-reports")
    browser.find_element(By.CSS_SELECTOR, "a.open-report").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "review-state"))
    assert not browser.find_elements(By.ID, "review-form"), "customers do not review"
    assert not browser.find_elements(By.ID, "send"), "nor send reports"
    _shots(browser, console.shots, "customer-report")
    pdf = f"{base}/sites/s1/reports/monthly/{last_month}/download/pdf?lang=en"
    assert _status(browser, pdf) == 200

    # Drafts, other sites and made-up periods all answer 404, in the page and over HTTP.
    for path in (
        f"/sites/s1/reports/monthly/{this_month}?lang=en",
        f"/sites/s1/reports/monthly/{this_month}/download/pdf?lang=en",
        f"/sites/s1/reports/monthly/{this_month}/view?lang=en",
        "/sites/s2/reports?lang=en",
        f"/sites/s2/reports/monthly/{last_month}?lang=en",
        f"/sites/s2/reports/monthly/{last_month}/download/pdf?lang=en",
        f"/sites/s2/reports/monthly/{last_month}/view?lang=en",
        "/sites/s1/reports/monthly/2026-13?lang=en",
    ):
        assert _status(browser, f"{base}{path}") == 404, path
    browser.get(f"{base}/sites/s2/reports/monthly/{last_month}")
    assert browser.find_element(By.ID, "error-code").text.startswith("404")
    # Approving by hand is refused: customers are not reviewers.
    csrf = browser.execute_script("return document.querySelector('[name=csrf]').value")
    body = urllib.parse.urlencode({"csrf": csrf, "do": "approve", "lang": "en"}).encode()
    assert _status(browser, f"{base}/sites/s1/reports/monthly/{this_month}", body) == 403


def test_customer_reports_a_fault_that_reaches_the_engineers_board(
    console: Console, browser: WebDriver
) -> None:
    base = console.base
    _sign_in(browser, base, "wang.fang")
    browser.find_element(By.ID, "nav-fault").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/report-fault"))
    options = [
        str(o.get_attribute("value"))
        for o in browser.find_elements(By.CSS_SELECTOR, "#fault-device option")
    ]
    assert "s1|nvr-1" in options and not [o for o in options if o.startswith("s2|")]
    _shots(browser, console.shots, "fault-form")
    Select(browser.find_element(By.ID, "fault-device")).select_by_value("s1|nvr-1")
    browser.find_element(By.ID, "fault-title").send_keys("东门 NVR 录像回放卡顿")
    browser.find_element(By.ID, "fault-description").send_keys(
        "Since 09:00 playback of channel 3 stalls every few seconds; live view is fine."
    )
    browser.find_element(By.ID, "caller-name").send_keys("王芳")
    browser.find_element(By.ID, "caller-phone").send_keys("+86 138 0000 1234")
    _submit(browser, "fault-submit")
    match = re.search(r"/incidents/(FM-\d{6}-\d+)$", browser.current_url)
    assert match, browser.current_url
    number = match.group(1)
    assert "录像回放卡顿" in browser.find_element(By.TAG_NAME, "h1").text
    # The customer adds a note to its own report.
    browser.find_element(By.ID, "note-text").send_keys("Channel 4 too.")
    _submit(browser, "note")

    detail = http_json(f"{base}/api/v1/incidents/{number}", ADMIN)
    assert detail["site"] == "s1" and detail["target"] == "nvr-1" and detail["level"] == 3
    assert detail["source"] == "manual" and detail["state"] == "open"
    # Class and vendor come from the chosen device's stored facts, so the board's filters
    # find a customer's report like any other incident.
    assert detail["device_class"] == "nvr" and detail["vendor"] == "Hikvision"
    assert detail["caller"]["name"] == "王芳" and detail["caller"]["phone"] == "+86 138 0000 1234"
    assert detail["caller"]["company"] == "Example Public Security Bureau"
    kinds = [(e["kind"], e["author"]) for e in detail["timeline"]]
    assert kinds[0][1] == "customer:wang.fang" and ("note", "customer:wang.fang") in kinds

    # A device of another site, posted by hand, is refused and opens nothing.
    csrf = browser.execute_script("return document.querySelector('[name=csrf]').value")
    before = len(http_json(f"{base}/api/v1/incidents?limit=5000", ADMIN))
    forged = urllib.parse.urlencode(
        {"csrf": csrf, "device": "s2|sw-s2", "title": "x", "caller_name": "a", "caller_phone": "1"}
    ).encode()
    assert _status(browser, f"{base}/report-fault", forged) == 400
    assert len(http_json(f"{base}/api/v1/incidents?limit=5000", ADMIN)) == before
    # Without a way to call back, the form says what is missing.
    browser.get(f"{base}/report-fault")
    browser.find_element(By.ID, "fault-title").send_keys("UPS beeping")
    browser.execute_script("document.getElementById('caller-phone').removeAttribute('required');")
    browser.find_element(By.ID, "caller-name").send_keys("Wang")
    _submit(browser, "fault-submit")
    assert "phone" in browser.find_element(By.ID, "fault-error").text

    # The engineer's board lists it, and its page shows who called.
    _sign_in(browser, base, "li.wei")
    assert number in _numbers(browser)
    _shots(browser, console.shots, "board-with-customer-fault")
    browser.get(f"{base}/incidents/{number}")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "王芳" in page and "+86 138 0000 1234" in page
    # Once the cause is known the engineer re-levels it, with the reason on the timeline.
    Select(browser.find_element(By.ID, "level-select")).select_by_value("2")
    browser.find_element(By.ID, "level-reason").send_keys("整个东门的录像都受影响")
    _submit(browser, "level")
    _shots(browser, console.shots, "incident-relevelled")
    detail = http_json(f"{base}/api/v1/incidents/{number}", ADMIN)
    assert detail["level"] == 2
    last = detail["timeline"][-1]
    assert last["kind"] == "level" and last["author"] == "li.wei"
    assert last["text"] == "level 3 -> 2: 整个东门的录像都受影响"

    # Resolved, the fault analysis (故障分析说明) is filed on the page and downloaded as PDF,
    # by the engineer and by the customer whose incident it is.
    assert "尚未填写" in browser.find_element(By.ID, "analysis").text
    browser.find_element(By.ID, "resolve-text").send_keys("NVR 硬盘 3 坏道，已更换")
    _submit(browser, "resolve")
    analysis = {
        "symptoms": "通道 3 回放每隔数秒卡顿",
        "handling": "远程检查硬盘 SMART，硬盘 3 重映射扇区增长；现场更换",
        "result": "回放恢复流畅，录像完整",
        "prevention": "硬盘 SMART 告警纳入月度巡检",
    }
    for field, text in analysis.items():
        browser.find_element(By.ID, f"analysis-{field}").send_keys(text)
    _submit(browser, "analysis-submit")
    shown = browser.find_element(By.ID, "analysis-text").text
    assert all(text in shown for text in analysis.values())
    assert not browser.find_elements(By.ID, "analysis-form"), "filed once, the form is gone"
    detail = http_json(f"{base}/api/v1/incidents/{number}", ADMIN)
    assert {k: detail["analysis"][k] for k in analysis} == analysis
    assert detail["timeline"][-1]["kind"] == "analysis"
    status, pdf = _fetch(browser, f"{base}/incidents/{number}/analysis.pdf")
    assert status == 200 and pdf.startswith(b"%PDF")
    path = console.shots / f"analysis-{number}.pdf"
    path.write_bytes(pdf)
    text = _pdf_text(path)
    assert number in text and "硬盘SMART告警纳入月度巡检" in text
    _sign_in(browser, base, "wang.fang")
    status, html = _fetch(browser, f"{base}/incidents/{number}/analysis.html")
    assert status == 200 and "回放恢复流畅" in html.decode()


def test_filters_narrow_the_board_and_stay_in_the_url(console: Console, browser: WebDriver) -> None:
    base = console.base
    _sign_in(browser, base, "li.wei")
    browser.get(f"{base}/?state=")
    everything = _rows(browser)
    targets = {r["target"] for r in everything}
    assert {"cam-7", "sw-core", "ups-1"} <= targets, targets

    Select(browser.find_element(By.ID, "f-class")).select_by_value("camera")
    _submit(browser, "f-submit")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)
    assert query["class"] == ["camera"]
    assert {r["target"] for r in _rows(browser)} == {"cam-7"}
    # The live refresh asks for the same filtered rows.
    rows_url = str(browser.find_element(By.ID, "board-live").get_attribute("data-rows"))
    assert "class=camera" in rows_url
    _shots(browser, console.shots, "board-filtered")
    browser.refresh()
    assert Select(browser.find_element(By.ID, "f-class")).first_selected_option.text == "camera"
    assert {r["target"] for r in _rows(browser)} == {"cam-7"}

    browser.get(f"{base}/?state=&vendor=Huawei")
    assert {r["target"] for r in _rows(browser)} == {"sw-core"}
    browser.get(f"{base}/?state=&vendor=Huawei&class=camera")
    assert _rows(browser) == []

    # Time range: the UPS went down 40 days ago, the others today (console time zone).
    today = datetime.now(TZ).date()
    week_ago = (today - timedelta(days=7)).isoformat()
    browser.get(f"{base}/?state=")
    browser.find_element(By.ID, "f-from").send_keys(_date_keys(week_ago))
    _submit(browser, "f-submit")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)["from"] == [
        week_ago
    ]
    # (The UPS also has a "no data" incident opened today by the stale-target clock.)
    (old,) = http_json(f"{base}/api/v1/incidents?target=ups-1&check=snmp.reachable", ADMIN)
    recent = _numbers(browser)
    assert old["number"] not in recent
    assert {r["target"] for r in _rows(browser)} >= {"cam-7", "sw-core"}
    old_day = (today - timedelta(days=45)).isoformat()
    browser.get(f"{base}/?state=&from={old_day}&to={week_ago}")
    assert _numbers(browser) == [old["number"]]

    # Site and level: the board agrees with the API's search.
    def api(query: str) -> set[str]:
        return {i["number"] for i in http_json(f"{base}/api/v1/incidents?{query}", ADMIN)}

    browser.get(f"{base}/?state=&site=s1")
    assert set(_numbers(browser)) == api("site=s1") and len(_numbers(browser)) >= 4
    browser.get(f"{base}/?state=&site=s2")
    assert _numbers(browser) == [] and api("site=s2") == set()
    browser.get(f"{base}/?state=&level=1")
    assert set(_numbers(browser)) == api("level=1") and "sw-core" in {
        r["target"] for r in _rows(browser)
    }
    browser.get(f"{base}/?state=open&level=3&site=s1&class=camera")
    assert {r["target"] for r in _rows(browser)} == {"cam-7"}

    # A date that does not exist is named in the answer.
    assert _status(browser, f"{base}/?from=2026-02-31") == 400
    browser.get(f"{base}/?from=2026-02-31")
    assert "2026-02-31" in browser.find_element(By.ID, "filter-error").text
    browser.get("about:blank")


DESKTOP, PHONE = (1366, 900), (390, 844)


def _photograph(driver: WebDriver, folder: Path, name: str) -> tuple[int, int]:
    """The current page as whole-page PNGs at desktop and at phone width (``name-desktop``,
    ``name-phone``); returns (document scroll width, viewport width) at phone width."""
    measured = (0, 0)
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": label == "phone",
            },
        )
        driver.refresh()
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        # A sandboxed frame below the fold is not painted until it has been on screen once.
        if driver.execute_script(
            "const f = document.querySelector('iframe'); if (f) f.scrollIntoView(); return !!f"
        ):
            time.sleep(1.0)
            driver.save_screenshot(str(folder / f"{name}-{label}-frame.png"))
            driver.execute_script("window.scrollTo(0, 0)")
        if label == "phone":
            measured = tuple(  # type: ignore[assignment]
                int(v)
                for v in driver.execute_script(
                    "return [document.documentElement.scrollWidth, window.innerWidth]"
                )
            )
        full = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": min(full["height"], 6000), "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        (folder / f"{name}-{label}.png").write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return measured


def _accept_language(driver: WebDriver, lang: str) -> None:
    """What the browser asks for before anyone signs in (the login page's language)."""
    agent = str(driver.execute_script("return navigator.userAgent"))
    driver.execute_cdp_cmd(
        "Emulation.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": lang}
    )


def test_every_page_fits_a_phone_in_both_languages(console: Console, browser: WebDriver) -> None:
    """Each page, for an engineer and a customer in Chinese and in English, photographed at
    desktop and phone width (for a person to look at), and none wider than a phone screen:
    a page wider than its viewport scrolls sideways and hides its right edge."""
    base = console.base
    this_month, last_month = _months()
    first = datetime.now(TZ).replace(day=1)
    quarter_end = first.replace(month=(first.month - 1) // 3 * 3 + 1) - timedelta(days=1)
    quarter = f"{quarter_end.year}Q{(quarter_end.month - 1) // 3 + 1}"
    too_wide: dict[str, tuple[int, int]] = {}

    def visit(path: str, name: str) -> None:
        browser.get(f"{base}{path}")
        assert not browser.find_elements(By.ID, "error-code"), f"{name}: {path} is an error"
        scroll, inner = _photograph(browser, console.shots, name)
        if scroll > inner or inner > PHONE[0]:
            too_wide[name] = (scroll, inner)

    for lang, accept, word in (("zh", "zh-CN,zh", "登录"), ("en", "en-US,en", "Sign in")):
        browser.get(f"{base}/healthz")
        browser.delete_all_cookies()  # (of the page's own site: hence the visit first)
        _accept_language(browser, accept)
        visit("/login", f"login-{lang}")
        assert word in browser.find_element(By.TAG_NAME, "h1").text
    _accept_language(browser, "en-US,en")

    for user, lang in (("li.wei", "zh"), ("sam.lee", "en")):
        _sign_in(browser, base, user)
        number = _numbers(browser)[0]
        visit("/", f"board-{lang}")
        visit(f"/incidents/{number}", f"incident-{lang}")
        visit("/sites", f"sites-{lang}")
        visit("/sites/s1", f"site-{lang}")
        visit("/sites/s1/devices/nvr-1", f"device-{lang}")
        visit("/sites/s1/reports", f"reports-{lang}")
        visit(f"/sites/s1/reports/monthly/{last_month}", f"review-last-month-{lang}")
        visit(f"/sites/s1/reports/monthly/{this_month}", f"review-this-month-{lang}")
        visit(f"/sites/s1/reports/quarterly/{quarter}", f"review-quarter-{lang}")
        visit("/report-fault", f"fault-{lang}")

    for user, lang in (("zhao.min", "zh"), ("wang.fang", "en")):
        _sign_in(browser, base, user)
        visit("/", f"portal-{lang}")
        number = _numbers(browser)[0]
        visit(f"/incidents/{number}", f"portal-incident-{lang}")
        visit("/sites/s1/reports", f"portal-reports-{lang}")
        visit("/report-fault", f"portal-fault-{lang}")
    assert not too_wide, f"wider than a {PHONE[0]}px phone (scrollWidth, innerWidth): {too_wide}"


def _date_keys(iso: str) -> str:
    """What to type into Chromium's date input for ``iso``: its order follows the locale
    (en-US in a headless run: month, day, year)."""
    year, month, day = iso.split("-")
    return f"{month}{day}{year}"


def test_six_failed_logins_are_rate_limited(console: Console, browser: WebDriver) -> None:
    """Runs last in this module: it leaves this client address locked out."""
    base = console.base
    browser.get(f"{base}/healthz")
    browser.delete_all_cookies()
    for attempt in range(1, 7):
        browser.get(f"{base}/login")
        browser.find_element(By.ID, "username").clear()
        browser.find_element(By.ID, "username").send_keys("li.wei")
        browser.find_element(By.ID, "password").send_keys(f"guess-{attempt}")
        _submit(browser, "login-submit")
        limited = browser.find_elements(By.ID, "rate-limited")
        if attempt <= 5:
            assert not limited, f"attempt {attempt} was limited"
            assert browser.find_element(By.CSS_SELECTOR, ".error").is_displayed()
        else:
            assert limited and "Try again in" in limited[0].text
    _shots_login = browser.current_url
    assert _shots_login.endswith("/login")
    # Now even the right password is refused, over HTTP with 429 and Retry-After.
    browser.get(f"{base}/login")
    csrf = browser.execute_script("return document.querySelector('[name=csrf]').value")
    body = urllib.parse.urlencode(
        {"csrf": csrf, "username": "li.wei", "password": PASSWORDS["li.wei"]}
    ).encode()
    assert _status(browser, f"{base}/login", body) == 429
    # The address is over its count too: another user from here is refused as well.
    body = urllib.parse.urlencode(
        {"csrf": csrf, "username": "wang.fang", "password": PASSWORDS["wang.fang"]}
    ).encode()
    assert _status(browser, f"{base}/login", body) == 429
    # A password typed into the name field is not written to the log.
    body = urllib.parse.urlencode(
        {"csrf": csrf, "username": "Pa55word-in-name", "password": "x"}
    ).encode()
    assert _status(browser, f"{base}/login", body) == 429
    browser.find_element(By.ID, "username").send_keys("li.wei")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["li.wei"])
    _submit(browser, "login-submit")
    assert browser.find_element(By.ID, "rate-limited").is_displayed()
    _shots(browser, console.shots, "login-rate-limited")

    time.sleep(0.5)  # the log is written by the collector process
    log = console.log.read_text(errors="replace")
    assert log.count("console login failed: user 'li.wei' from 127.0.0.1") == 5
    refused = [line for line in log.splitlines() if "console login refused" in line]
    assert len(refused) >= 3, refused
    assert "user 'li.wei'" in refused[0] and "limit 5 in 300s" in refused[0]
    assert any("this address" in line and "'wang.fang'" in line for line in refused)
    assert "user <unknown, 16 characters>" in log
    for secret in (*PASSWORDS.values(), "guess-1", "guess-6", "Pa55word-in-name"):
        assert secret not in log, "no password in the log"
