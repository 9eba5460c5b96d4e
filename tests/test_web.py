"""The web console in a real browser (Debian's chromium, headless, through chromedriver),
against a real collector process: an engineer works an incident from the board to resolved,
a customer stays inside its own sites and answers the survey, and forms without the CSRF
token are refused. Screenshots at desktop and phone width go to ``$FIELDMON_WEB_SHOTS`` (or
a temporary folder) for a person to look at."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.broker import Broker
from tests.support.configs import TOKENS, collector_toml
from tests.support.procs import Proc, http_call, http_json, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ENGINEER, ADMIN = TOKENS["engineer"], TOKENS["admin"]
PASSWORDS = {
    "li.wei": "engineer-pass-1",
    "wang.fang": "customer-pass-1",
    "sam.lee": "engineer-pass-2",
    "zhao.min": "customer-pass-2",
}

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (make test installs them)",
)


@dataclass
class Console:
    base: str
    shots: Path
    log: Path
    config: Path


@contextmanager
def running_console(
    tmp: Path,
    seed: Callable[[str], None] | None = None,
    *,
    http_extra: str = "",
    port: int | None = None,
    edit: Callable[[str], str] | None = None,
) -> Iterator[Console]:
    """A collector process with an engineer and a customer login; ``seed`` fills its database
    (by URL) before it starts; ``http_extra`` adds lines to its ``[http]`` section and
    ``edit`` rewrites the whole configuration text."""
    hasher = PasswordHasher()
    users = (
        '[[users]]\nname = "li.wei"\nrole = "engineer"\nlang = "zh-CN"\n'
        f'password_hash = "{hasher.hash(PASSWORDS["li.wei"])}"\n'
        '[[users]]\nname = "wang.fang"\nrole = "customer"\nsites = ["s1"]\nlang = "en"\n'
        f'password_hash = "{hasher.hash(PASSWORDS["wang.fang"])}"\n'
        # The same two roles in the other language, for the screenshots of every page.
        '[[users]]\nname = "sam.lee"\nrole = "engineer"\nlang = "en"\n'
        f'password_hash = "{hasher.hash(PASSWORDS["sam.lee"])}"\n'
        '[[users]]\nname = "zhao.min"\nrole = "customer"\nsites = ["s1"]\nlang = "zh-CN"\n'
        f'password_hash = "{hasher.hash(PASSWORDS["zhao.min"])}"\n'
    )
    if seed is not None:
        seed(f"sqlite:///{tmp}/collector.db")
    broker = Broker()
    broker.start()
    cfg, port = collector_toml(tmp, broker.port, extra=users, http_port=port)
    text = cfg.read_text(encoding="utf-8")
    if http_extra:
        text = text.replace("[http]\n", f"[http]\n{http_extra}\n", 1)
    cfg.write_text(edit(text) if edit else text, encoding="utf-8")
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ.get("FIELDMON_WEB_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        yield Console(base, shots, tmp / "collector.log", cfg)
    finally:
        proc.stop()
        broker.cleanup()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("web")) as c:
        yield c


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(base: str, site: str, title: str, level: int = 2) -> str:
    body = {"site": site, "level": level, "title": title, "target": "nvr-1"}
    status, data = http_call("POST", f"{base}/api/v1/incidents", body, ENGINEER)
    assert status == 201, data
    return str(data["number"])


def _login(driver: WebDriver, base: str, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url == f"{base}/")


def _submit(driver: WebDriver, button_id: str) -> None:
    """Click a form's button and wait for the page that answers it."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button_id).click()
    WebDriverWait(driver, 10).until(lambda d: _stale(old))


def _stale(element: Any) -> bool:
    try:
        element.tag_name  # noqa: B018 - touching it raises once the page was replaced
    except Exception:
        return True
    return False


def _shots(driver: WebDriver, folder: Path, name: str) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.set_window_size(1366, 900)
    driver.save_screenshot(str(folder / f"{name}-desktop.png"))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )
    driver.refresh()
    driver.save_screenshot(str(folder / f"{name}-phone.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _status(driver: WebDriver, url: str, data: bytes | None = None) -> int:
    """The HTTP status of a request carrying the browser's cookies (the browser hides it)."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    req = urllib.request.Request(url, data=data, headers={"Cookie": cookie})
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_engineer_takes_over_notes_and_resolves(console: Console, browser: WebDriver) -> None:
    base = console.base
    number = _open(base, "s1", "东门 NVR 通道 5 黑屏", level=2)
    urgent = _open(base, "s1", "核心交换机离线", level=1)
    _login(browser, base, "li.wei")
    rows = browser.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    order = [r.get_attribute("data-number") for r in rows]
    assert number in order and urgent in order
    assert order.index(urgent) < order.index(number), "level 1 comes first"
    assert "故障看板" in browser.page_source  # the engineer reads Chinese
    _shots(browser, console.shots, "board")

    browser.find_element(By.LINK_TEXT, number).click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith(f"/incidents/{number}"))
    _submit(browser, "take")
    assert browser.find_element(By.ID, "assignee").text == "li.wei"
    browser.find_element(By.ID, "note-text").send_keys("已远程登录 NVR，通道 5 无视频输入")
    _submit(browser, "note")
    browser.find_element(By.ID, "resolve-text").send_keys("更换 PoE 端口后画面恢复")
    _submit(browser, "resolve")
    assert browser.find_element(By.ID, "state").text == "已解决"
    assert "更换 PoE 端口后画面恢复" in browser.find_element(By.ID, "timeline").text
    _shots(browser, console.shots, "incident")

    detail = http_json(f"{base}/api/v1/incidents/{number}", ADMIN)
    assert detail["state"] == "resolved" and detail["assignee"] == "li.wei"
    mine = [(e["kind"], e["author"]) for e in detail["timeline"]]
    assert mine[1:] == [("assigned", "li.wei"), ("note", "li.wei"), ("resolved", "li.wei")]
    assert detail["timeline"][2]["text"] == "已远程登录 NVR，通道 5 无视频输入"
    assert detail["timeline_intact"] is True
    # The board (open incidents) no longer lists it.
    browser.get(f"{base}/")
    numbers = [
        r.get_attribute("data-number")
        for r in browser.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    ]
    assert number not in numbers and urgent in numbers


def test_customer_stays_in_its_sites_notes_and_answers_the_survey(
    console: Console, browser: WebDriver
) -> None:
    base = console.base
    mine, theirs = _open(base, "s1", "Gate camera offline"), _open(base, "s2", "Other site NVR")
    _login(browser, base, "wang.fang")
    sites = {
        td.text for td in browser.find_elements(By.CSS_SELECTOR, "#board tbody td:nth-child(4)")
    }
    assert sites == {"s1"}
    assert theirs not in browser.page_source
    # Typing another site's incident answers like a number that does not exist.
    browser.get(f"{base}/incidents/{theirs}")
    assert browser.find_element(By.ID, "error-code").text.startswith("404")
    assert _status(browser, f"{base}/incidents/{theirs}") == 404
    assert _status(browser, f"{base}/incidents/FM-209912-9999") == 404
    assert _status(browser, f"{base}/?site=s2") == 404

    browser.get(f"{base}/incidents/{mine}")
    assert not browser.find_elements(By.ID, "take"), "customers do not work incidents"
    browser.find_element(By.ID, "note-text").send_keys("Still no picture at 10:00 — 仍无画面")
    _submit(browser, "note")
    # Engineer-only actions are refused even when posted by hand.
    csrf = browser.execute_script("return document.querySelector('[name=csrf]').value")
    assert _status(browser, f"{base}/incidents/{mine}/take", f"csrf={csrf}".encode()) == 403

    status, _ = http_call(
        "POST", f"{base}/api/v1/incidents/{mine}/resolve", {"text": "camera replaced"}, ENGINEER
    )
    assert status == 200
    browser.get(f"{base}/incidents/{mine}")
    _shots(browser, console.shots, "customer-incident")
    Select(browser.find_element(By.ID, "score")).select_by_value("4")
    browser.find_element(By.ID, "comment").send_keys("quick, thanks")
    _submit(browser, "close")
    detail = http_json(f"{base}/api/v1/incidents/{mine}", ADMIN)
    assert detail["state"] == "closed" and detail["satisfaction"] == 4
    kinds = [(e["kind"], e["author"]) for e in detail["timeline"]]
    assert ("note", "customer:wang.fang") in kinds and kinds[-1] == (
        "closed",
        "customer:wang.fang",
    )


def test_forms_without_the_csrf_token_are_refused(console: Console, browser: WebDriver) -> None:
    base = console.base
    number = _open(base, "s1", "UPS on battery")
    _login(browser, base, "li.wei")
    browser.get(f"{base}/incidents/{number}")
    browser.execute_script(
        "document.querySelector('#note-form [name=csrf]').remove();"
        "document.getElementById('note-text').value = 'forged';"
    )
    _submit(browser, "note")
    assert browser.find_element(By.ID, "error-code").text.startswith("403")
    assert _status(browser, f"{base}/incidents/{number}/note", b"text=forged") == 403
    assert _status(browser, f"{base}/incidents/{number}/note", b"text=x&csrf=wrong") == 403
    timeline = http_json(f"{base}/api/v1/incidents/{number}", ADMIN)["timeline"]
    assert [e["kind"] for e in timeline] == ["opened"], "nothing was written"
    # Signing in needs the token too, and a wrong password is refused.
    browser.delete_all_cookies()
    assert _status(browser, f"{base}/login", b"username=li.wei&password=engineer-pass-1") == 403
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "username").send_keys("li.wei")
    browser.find_element(By.ID, "password").send_keys("wrong")
    _submit(browser, "login-submit")
    assert browser.find_element(By.CSS_SELECTOR, ".error").is_displayed()
    assert browser.current_url == f"{base}/login"


def test_session_cookie_flags_and_pages_need_a_login(console: Console) -> None:
    req = urllib.request.Request(f"{console.base}/login")
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"]
        assert "content-security-policy" in {k.lower() for k in resp.headers}
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for path in ("/", "/incidents/FM-209912-9999"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(f"{console.base}{path}", timeout=10)
        assert err.value.code == 303 and err.value.headers["Location"] == "/login"
    # The CSS comes from the collector itself.
    css = urllib.request.urlopen(f"{console.base}/static/console/console.css", timeout=10)
    assert css.status == 200
