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

import email
import email.policy
import re
import subprocess
import time
import urllib.parse
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
        for at in (last_month, now - timedelta(minutes=2)):
            store.ingest(
                "s1",
                "a1",
                device("nvr-1", "nvr", "Hikvision", Status.OK, at),
                classes,
                Policy(),
                at,
            )
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


def _pdf_text(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return re.sub(r"\s+", "", out)


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

    # The running month can get remarks but not an approval: its figures still move.
    browser.get(f"{base}/sites/s1/reports/monthly/{this_month}")
    assert browser.find_element(By.ID, "not-over").is_displayed()
    assert not browser.find_elements(By.ID, "review-approve")

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
    _submit(browser, "review-save")
    assert browser.find_element(By.ID, "review-saved").is_displayed()
    box = browser.find_element(By.CSS_SELECTOR, 'input.remark[data-key="nvr-1:snmp.reachable"]')
    assert box.get_attribute("value") == REMARK
    # The framed report (the same HTML the reports write) prints the remark already.
    browser.switch_to.frame(browser.find_element(By.ID, "report-frame"))
    WebDriverWait(browser, 20).until(lambda d: REMARK in d.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.default_content()
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
