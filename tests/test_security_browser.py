"""The strict Content-Security-Policy in headless Chromium: every page still works, and
the browser reports not one violation; what the policy forbids, it does block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ops import accounts
from gateway.store import queues
from tests.browser import chromium
from tests.conftest import Twilio, run_workers
from tests.simulated import Live, running
from tests.test_ops import PASSWORD

pytestmark = pytest.mark.browser

# Runs before any of the page's own code: every CSP violation the page causes is kept.
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = (e.blockedURI || "inline") + " at " + location.pathname;
  window.__violations.push(e.violatedDirective + " " + where);
});
"""
# The 404 pages the test visits on purpose, and the icon werkzeug's plain 404 page lacks.
EXPECTED_404 = ("/@no-such-texter", "/no/such/page", "/favicon.ico")


@pytest.fixture
def live(redis_server: str, tmp_path: Path) -> Iterator[Live]:
    with running(redis_server, tmp_path) as served:
        twilio = Twilio(served.app.test_client(), served.config)
        twilio.text(sender="+989121234567", body="crowds at Azadi #tehran <b>not bold</b>")
        twilio.text(sender="+989351112233", body="<img src=x onerror=alert(1)> is just text")
        run_workers(served.runtime, [queues.INBOUND])
        accounts.add_user(served.redis, "ana", PASSWORD)
        yield served


class Watched:
    """A browser page whose console errors and CSP violations are all collected."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page()
        self.page.add_init_script(LISTEN)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.violations: list[str] = []

    def _console(self, message: Any) -> None:
        url = message.location.get("url", "")
        expected = "status of 404" in message.text and url.endswith(EXPECTED_404)
        if message.type == "error" and not expected:
            self.errors.append(f"{message.text} ({url})")

    def goto(self, url: str) -> None:
        self.collect()
        self.page.goto(url)

    def collect(self) -> None:
        """Keep the current document's violations (a navigation would lose them)."""
        try:
            self.violations += self.page.evaluate("window.__violations || []")
        except Exception:  # noqa: BLE001  (about:blank before the first page)
            pass


def test_feed_console_and_dev_phone_work_under_the_csp_with_no_violation(live: Live, report):
    from playwright.sync_api import expect

    with chromium() as browser:
        tab = Watched(browser)
        page = tab.page

        # The feed: styled by its hashed inline <style>, every page, a reply through the form.
        for path in ("/", "/tags/tehran", "/@no-such-texter"):
            tab.goto(live.url + path)
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "576px", path
        tab.goto(live.url + "/no/such/page")  # werkzeug's plain 404
        tab.goto(live.url + "/")
        page.locator(".post .meta a[href^='/posts/']").first.click()
        page.fill("input[name=name]", "Maryam")
        page.fill("textarea[name=body]", "stay safe")
        page.click("button[type=submit]")
        expect(page.locator(".replies")).to_contain_text("stay safe")
        page.locator(".post .meta a[href^='/@']").first.click()
        expect(page.locator("h1")).to_contain_text("@")

        # The console: its script refreshes the figures (so it ran, and its fetch was allowed).
        tab.goto(live.url + "/ops")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#updated")).to_contain_text("updated", timeout=8000)

        # The dev phone: the form sends through the webhook; its script polls the conversation.
        tab.goto(live.url + "/dev/phone?number=%2B14155550101")
        page.fill("textarea[name=body]", "hello from the dev phone")
        with page.expect_request("**/dev/phone/messages?**", timeout=5000):
            page.click("button[type=submit]")
        expect(page.locator("#status")).to_contain_text("Accepted")
        page.wait_for_timeout(300)  # a violation is reported as a task after the fact
        tab.collect()

    report("counted", f"CSP violations on feed, console, dev phone: {len(tab.violations)}")
    assert tab.violations == []
    assert tab.errors == []


def test_what_the_csp_forbids_is_blocked_and_reported(live: Live):
    with chromium() as browser:
        tab = Watched(browser)
        page = tab.page
        tab.goto(live.url + "/")
        # An inline script and an inline style, as an injection would add them.
        page.evaluate(
            """() => {
              const s = document.createElement("script");
              s.textContent = "window.__ran = true";
              document.body.appendChild(s);
              document.body.setAttribute("style", "background: red");
            }"""
        )
        page.wait_for_function("window.__violations.length >= 2")
        violations = page.evaluate("window.__violations")
        assert page.evaluate("window.__ran") is None
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
        assert any(v.startswith("script-src") for v in violations), violations
        assert any(v.startswith("style-src") for v in violations), violations


@pytest.mark.parametrize("path", ["/ops/login", "/"], ids=["console", "feed"])
def test_no_other_site_can_frame_our_pages(live: Live, path: str):
    with chromium() as browser:
        page = browser.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text))
        page.set_content(f'<iframe src="{live.url}{path}"></iframe>')
        page.wait_for_timeout(500)
        frame = page.frames[1]
        assert "Kabootar" not in frame.content()
        assert any("frame-ancestors" in line for line in refused), refused
