"""The console's live board and its site and device pages in a real browser (Debian's chromium,
headless) against a real collector: an incident opened through the API appears on an open
board without a reload, the device page shows the device's identity and inspection record,
and a customer typing another site's device URL gets 404. Screenshots of the device page at
desktop and phone width go to ``$FIELDMON_WEB_SHOTS`` (or a temporary folder)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import Policy
from collector.store.db import Store
from tests.support.configs import TOKENS
from tests.support.procs import http_call
from tests.test_web import Console, _login, _shots, _status, running_console
from tests.test_web import browser as browser  # the shared chromium fixture
from tests.test_web import pytestmark as pytestmark

ENGINEER = TOKENS["engineer"]
SERIAL = "DS-7716NI-K4/16P20231105CCRRF12345678"
OTHER_SERIAL = "2102359579DMHC000999"
DIFF = "--- backup 1\n+++ backup 2\n-ntp server 10.0.0.1\n+ntp server 10.0.0.9\n"


def _seed(db_url: str) -> None:
    """Devices on two sites, through the ingest path the collector uses: an NVR on s1 with
    last month's and this month's results, and a switch on s2."""
    classes = load_catalogue()
    store = Store(db_url)
    now = datetime.now(UTC)
    last_month = now.replace(day=1, hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)

    def r(target: str, check: str, status: Status, at: datetime, **kw: object) -> Result:
        return Result(
            target=target,
            target_class="snmp-device",
            check=check,
            status=status,
            observed_at=at,
            **kw,  # type: ignore[arg-type]
        )

    nvr_facts = {
        "vendor": "Hikvision",
        "serial": SERIAL,
        "model": "DS-7716NI-K4/16P",
        "firmware": "V4.61.025",
        "location": "东门机房 2 号机柜",
    }
    try:
        # An earlier month, shown folded away on the device page.
        store.ingest(
            "s1",
            "a1",
            [r("nvr-1", "snmp.reachable", Status.OK, now - timedelta(days=70), value="up")],
            classes,
            Policy(),
            now - timedelta(days=70),
        )
        for at in (last_month, now - timedelta(minutes=1)):
            store.ingest(
                "s1",
                "a1",
                [
                    r("nvr-1", "snmp.reachable", Status.OK, at, value="up"),
                    r(
                        "nvr-1",
                        "inventory.entity",
                        Status.OK,
                        at,
                        summary="DS-7716NI-K4/16P",
                        facts=nvr_facts,
                    ),
                ],
                classes,
                Policy(),
                at,
            )
        # A configuration backup, then one that differs from it (secrets already masked).
        backup = {"config_hash": "ab12" * 16, "backup_path": "/var/lib/fieldmon/backups/nvr-1/2"}
        store.ingest(
            "s1",
            "a1",
            [
                r("nvr-1", "config.backup", Status.OK, now, value="ab12", facts=backup),
                r(
                    "nvr-1",
                    "config.changed",
                    Status.WARN,
                    now,
                    value="changed",
                    summary="configuration changed: 1 line added, 1 removed",
                    facts={
                        **backup,
                        "previous_backup": "/var/lib/fieldmon/backups/nvr-1/1",
                        "diff": DIFF,
                    },
                ),
            ],
            classes,
            Policy(),
            now,
        )
        store.ingest(
            "s2",
            "a2",
            [
                r("sw-s2", "snmp.reachable", Status.OK, now, value="up"),
                r("sw-s2", "inventory.entity", Status.OK, now, facts={"serial": OTHER_SERIAL}),
            ],
            classes,
            Policy(),
            now,
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("web-live"), seed=_seed) as c:
        yield c


def _sign_in(driver: WebDriver, base: str, name: str) -> None:
    """Sign in afresh: cookies are cleared for the page's site, so be on the console first."""
    driver.get(f"{base}/healthz")
    _login(driver, base, name)


def _board_numbers(driver: WebDriver) -> list[str]:
    return [
        str(r.get_attribute("data-number"))
        for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    ]


def test_an_incident_opened_elsewhere_appears_on_the_open_board(
    console: Console, browser: WebDriver
) -> None:
    base = console.base
    _sign_in(browser, base, "li.wei")
    # Marks the page: a reload would replace the window object and lose it.
    browser.execute_script("window.fieldmonNoReload = 42;")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "live-state").is_displayed())
    body = {"site": "s1", "level": 1, "title": "核心交换机离线 (live)", "target": "nvr-1"}
    started = time.monotonic()
    status, data = http_call("POST", f"{base}/api/v1/incidents", body, ENGINEER)
    assert status == 201, data
    number = str(data["number"])
    WebDriverWait(browser, 8, poll_frequency=0.2).until(lambda d: number in _board_numbers(d))
    seen_after = time.monotonic() - started
    assert seen_after < 5, f"took {seen_after:.1f}s"
    assert browser.execute_script("return window.fieldmonNoReload") == 42, "page was reloaded"
    assert browser.current_url == f"{base}/"

    # The countdown ticks in the browser, a level 1 incident starts green.
    sla = browser.find_element(By.CSS_SELECTOR, f'tr[data-number="{number}"] .sla')
    assert "ok" in str(sla.get_attribute("class"))
    assert sla.get_attribute("data-running") == "1"
    # Move its clock to just past a minute boundary: the next tick shows the minute go by.
    browser.execute_script(
        "arguments[0].dataset.leftMs = '60900'; arguments[0].dataset.t0 = String(Date.now());",
        sla,
    )
    WebDriverWait(browser, 5, poll_frequency=0.2).until(lambda d: sla.text == "0h 00m")

    # A change (taken over through the API) shows up too.
    status, _ = http_call(
        "POST", f"{base}/api/v1/incidents/{number}/assign", {"to": "zhao.qiang"}, ENGINEER
    )
    assert status == 200
    WebDriverWait(browser, 8, poll_frequency=0.2).until(
        lambda d: (
            "zhao.qiang" in d.find_element(By.CSS_SELECTOR, f'tr[data-number="{number}"]').text
        )
    )
    assert browser.execute_script("return window.fieldmonNoReload") == 42
    browser.get("about:blank")  # closes the event stream


def test_sla_countdown_turns_amber_and_red_in_the_browser(
    console: Console, browser: WebDriver
) -> None:
    _sign_in(browser, console.base, "li.wei")
    browser.execute_script(
        """
        const el = document.createElement('span');
        el.className = 'sla ok'; el.id = 'probe';
        el.dataset.leftMs = '1500'; el.dataset.totalMs = '10000';
        el.dataset.warn = '0.5'; el.dataset.running = '1'; el.dataset.t0 = String(Date.now());
        document.body.appendChild(el);
        """
    )

    def probe(d: WebDriver) -> str:
        return str(d.find_element(By.ID, "probe").get_attribute("class"))

    WebDriverWait(browser, 5).until(lambda d: "amber" in probe(d))
    WebDriverWait(browser, 5).until(lambda d: "red" in probe(d))
    assert browser.find_element(By.ID, "probe").text.startswith("-")
    browser.get("about:blank")


def test_sites_and_device_pages(console: Console, browser: WebDriver) -> None:
    base = console.base
    _sign_in(browser, base, "li.wei")
    browser.get(f"{base}/sites")
    sites = {
        str(r.get_attribute("data-site"))
        for r in browser.find_elements(By.CSS_SELECTOR, "#sites tbody tr")
    }
    assert {"s1", "s2"} <= sites
    browser.find_element(By.LINK_TEXT, "s1").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/sites/s1"))
    assert SERIAL in browser.find_element(By.ID, "devices").text
    browser.find_element(By.LINK_TEXT, "nvr-1").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/sites/s1/devices/nvr-1"))
    assert browser.find_element(By.ID, "serial").text == SERIAL
    assert browser.find_element(By.ID, "firmware").text == "V4.61.025"
    assert "东门机房" in browser.find_element(By.ID, "location").text
    months = [
        str(t.get_attribute("data-month"))
        for t in browser.find_elements(By.CSS_SELECTOR, "table.inspection")
    ]
    assert len(months) == 3, "this month's, last month's, and (folded) an earlier month's"
    assert months[:2] == sorted(months[:2], reverse=True)
    assert not browser.find_element(By.CSS_SELECTOR, "details.card section").is_displayed()
    config = browser.find_element(By.ID, "config").text
    assert "/var/lib/fieldmon/backups/nvr-1/2" in config and "ab12ab12" in config
    assert "+ntp server 10.0.0.9" in browser.find_element(By.ID, "config-diff").text
    assert "1/1" in browser.find_element(By.ID, "config-months").text
    assert "snmp.reachable" in browser.find_element(By.ID, "checks").text
    _shots(browser, console.shots, "device")

    # A customer sees its own site only, also when typing URLs.
    _sign_in(browser, base, "wang.fang")
    browser.get(f"{base}/sites")
    names = [
        str(r.get_attribute("data-site"))
        for r in browser.find_elements(By.CSS_SELECTOR, "#sites tbody tr")
    ]
    assert names == ["s1"]
    browser.get(f"{base}/sites/s2/devices/sw-s2")
    assert browser.find_element(By.ID, "error-code").text.startswith("404")
    assert OTHER_SERIAL not in browser.page_source
    for path in ("/sites/s2/devices/sw-s2", "/sites/s2", "/board/rows?site=s2", "/events?site=s2"):
        assert _status(browser, f"{base}{path}") == 404, path
    assert _status(browser, f"{base}/sites/s1/devices/nope") == 404
    browser.get(f"{base}/sites/s1/devices/nvr-1")
    assert browser.find_element(By.ID, "serial").text == SERIAL
    browser.get("about:blank")
