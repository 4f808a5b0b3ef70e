"""The charts in headless Chromium: drawn under the strict CSP, moving while texts flow,
readable on a phone, and readable with JavaScript off (the tables behind the charts)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.ops import accounts
from tests.browser import chromium, screenshot_path
from tests.simulated import running
from tests.test_accessibility import overflow, serious_violations
from tests.test_ops import PASSWORD, work
from tests.test_ops_browser import text
from tests.test_security_browser import LISTEN

pytestmark = pytest.mark.browser

# What each chart draws (uPlot's own data) and what its table shows, summed over the range.
CHART_SUM = (
    "([id, i]) => document.getElementById('charts').plots[id].data[i].reduce((a, b) => a + (b || 0), 0)"
)
TABLE_SUM = "(rows, i) => rows.reduce((s, r) => s + (parseFloat(r.cells[i].textContent) || 0), 0)"


def chart_sum(page: Any, chart: str, series: int) -> float:
    return float(page.evaluate(CHART_SUM, [chart, series]))


def table_sum(page: Any, chart: str, series: int) -> float:
    return float(page.locator(f"#chart-{chart} details tbody tr").evaluate_all(TABLE_SUM, series))


def until(check: Any, page: Any, timeout: float = 15.0) -> None:
    """Poll `check()` from Python: the page's CSP forbids the eval wait_for_function needs."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the page did not get there in time"
        page.wait_for_timeout(200)


def wait_for_sum(page: Any, chart: str, series: int, total: float) -> None:
    """Until the chart draws `total` (the page refreshes itself; it is never reloaded)."""
    until(lambda: abs(chart_sum(page, chart, series) - total) < 0.011, page)
    assert table_sum(page, chart, series) == pytest.approx(total, abs=0.011)  # the table says the same


def log_in(page: Any, url: str, path: str) -> None:
    page.goto(f"{url}{path}")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_operator_sees_the_charts_move_while_texts_flow(redis_server: str, tmp_path: Path):
    from playwright.sync_api import expect

    with running(redis_server, tmp_path) as live, chromium() as browser:
        accounts.add_user(live.redis, "ana", PASSWORD)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(LISTEN)  # every CSP violation, kept in window.__violations
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

        log_in(page, live.url, "/ops")
        page.get_by_role("link", name="Charts").click()
        expect(page).to_have_url(f"{live.url}/ops/charts")
        expect(page.locator("section.chart canvas")).to_have_count(6)  # uPlot drew every chart
        expect(page.locator("section.chart details[open]")).to_have_count(0)  # tables folded behind
        assert chart_sum(page, "throughput", 1) == 0 and table_sum(page, "throughput", 1) == 0
        page.evaluate("window.notReloaded = true")

        token = live.config.twilio_auth_token
        for n, body in enumerate(["the square is full", "#IranElection crowds", "no SMS since noon"]):
            text(live.url, token, n, body)
        wait_for_sum(page, "throughput", 1, 3)  # texts in
        work(live.runtime)  # a worker turns them into posts
        wait_for_sum(page, "throughput", 2, 3)  # posts
        text(live.url, token, 3, "still no SMS")
        text(live.url, token, 4, "the bridge is closed")
        wait_for_sum(page, "throughput", 1, 5)
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=str(screenshot_path("ops-charts-1280")), full_page=True)
        assert serious_violations(page) == []  # axe-core, as tests/test_accessibility.py runs it

        page.set_viewport_size({"width": 375, "height": 800})
        until(
            lambda: page.evaluate("document.querySelector('#chart-throughput canvas').clientWidth") <= 375,
            page,
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, overflow(page)  # fits a phone
        page.screenshot(path=str(screenshot_path("ops-charts-375")), full_page=True)
        assert serious_violations(page) == []
        page.evaluate("document.querySelectorAll('section.chart details').forEach((d) => { d.open = true; })")
        assert serious_violations(page) == []  # the tables too (axe needs JavaScript: not run with it off)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, overflow(page)

        page.get_by_role("link", name="Last week").click()
        expect(page).to_have_url(f"{live.url}/ops/charts?range=week")
        expect(page.locator("#chart-throughput details tbody tr")).to_have_count(336)
        expect(page.locator("section.chart canvas")).to_have_count(6)
        wait_for_sum(page, "throughput", 1, 5 / 30)  # per minute, over the half hour
        assert page.evaluate("window.__violations") == []
        assert problems == []


def test_charts_read_without_javascript(redis_server: str, tmp_path: Path):
    from playwright.sync_api import expect

    with running(redis_server, tmp_path) as live, chromium() as browser:
        accounts.add_user(live.redis, "ana", PASSWORD)
        for n in range(2):
            text(live.url, live.config.twilio_auth_token, n, f"text {n}")
        page = browser.new_context(
            java_script_enabled=False, viewport={"width": 375, "height": 800}
        ).new_page()
        log_in(page, live.url, "/ops/charts")
        expect(page).to_have_url(f"{live.url}/ops/charts")
        expect(page.locator("section.chart details[open] table")).to_have_count(6)
        expect(page.locator("section.chart canvas")).to_have_count(0)
        header = page.locator("#chart-throughput details thead th")
        expect(header).to_have_text(["Time (UTC)", "texts in", "posts", "SMS out: Twilio"])
        expect(page.locator("#chart-throughput h2")).to_contain_text("(per minute)")
        assert table_sum(page, "throughput", 1) == 2
        page.screenshot(path=str(screenshot_path("ops-charts-no-js-375")), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, overflow(page)
