"""The console in headless Chromium: log in, watch texts arrive without reloading, retry a failed job."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gateway.ops import accounts
from gateway.providers.twilio.webhooks import SignatureChecker
from gateway.store import queues
from tests.browser import chromium, screenshot_path
from tests.simulated import running
from tests.test_ops import PASSWORD, work

pytestmark = pytest.mark.browser


def text(url: str, token: str, n: int, body: str) -> None:
    """Deliver a text to the live webhook, signed as Twilio signs it."""
    form = {"MessageSid": f"SM{n:032x}", "From": f"+98912000{n:04d}", "To": "+15005550006", "Body": body}
    signature = SignatureChecker(token, url).sign("/twilio/sms", form)
    request = urllib.request.Request(
        f"{url}/twilio/sms",
        data=urllib.parse.urlencode(form).encode(),
        headers={"X-Twilio-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_console_updates_live_and_retries_a_failed_job(redis_server: str, tmp_path: Path):
    from playwright.sync_api import expect

    with running(redis_server, tmp_path) as live, chromium() as browser:
        accounts.add_user(live.redis, "ana", PASSWORD)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

        page.goto(f"{live.url}/ops")
        expect(page).to_have_url(f"{live.url}/ops/login?next=/ops")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{live.url}/ops")
        received = page.locator("#received-total")
        inbox_depth = page.locator('#queue-inbox [data-k="queues.inbox.depth|int"]')
        expect(received).to_have_text("0")
        page.evaluate("window.notReloaded = true")

        for n, body in enumerate(["the square is full", "#IranElection crowds", "no SMS since noon"]):
            text(live.url, live.config.twilio_auth_token, n, body)
        expect(inbox_depth).to_have_text("3", timeout=6000)
        expect(received).to_have_text("3")
        expect(page.locator("#alerts")).to_contain_text("No worker is alive")

        work(live.runtime)  # a worker turns them into posts
        expect(inbox_depth).to_have_text("0", timeout=6000)
        expect(page.locator('[data-k="pipeline.posts|int"]')).to_have_text("3")
        assert page.evaluate("window.notReloaded") is True

        live.redis.set("test:flaky:fail", "1")
        rq_queues = queues.make(live.rq_redis)
        rq_queues[queues.INBOUND].enqueue(
            "tests.test_ops.flaky", "test:flaky", description="flaky on purpose"
        )
        work(live.runtime)
        failed_row = page.locator("#failed tbody tr", has_text="flaky on purpose")
        expect(failed_row).to_contain_text("failed on purpose", timeout=6000)
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=str(screenshot_path("ops-console")), full_page=True)

        live.redis.delete("test:flaky:fail")
        failed_row.get_by_role("button", name="Retry").click()
        expect(page.locator(".flash.ok")).to_contain_text("Retried job")
        work(live.runtime)
        expect(page.locator('[data-k="failed_jobs.count|int"]').first).to_have_text("0", timeout=6000)
        expect(page.locator("#failed tbody")).to_contain_text("None.")
        expect(page.locator('[data-k="queues.kb-inbound.depth|int"]')).to_have_text("0", timeout=6000)
        assert live.redis.get("test:flaky") == "2"
        page.screenshot(path=str(screenshot_path("ops-console-after-retry")), full_page=True)
        assert problems == []


def test_a_bulk_retry_by_filter_in_the_browser_shows_its_count_then_its_audit_entry(
    redis_server: str, tmp_path: Path
):
    from playwright.sync_api import expect

    with running(redis_server, tmp_path) as live, chromium() as browser:
        accounts.add_user(live.redis, "ana", PASSWORD)
        live.redis.set("test:flaky:fail", "1")
        rq_queues = queues.make(live.rq_redis)
        for _ in range(4):
            rq_queues[queues.INBOUND].enqueue("tests.test_ops.flaky", "test:flaky")
        rq_queues[queues.INBOUND].enqueue("tests.test_ops.explode")
        work(live.runtime)

        page = browser.new_page(viewport={"width": 375, "height": 800})
        page.goto(f"{live.url}/ops/login")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{live.url}/ops")

        live.redis.delete("test:flaky:fail")  # fixed; now retry just those
        bulk = page.locator("form.bulk-filter")
        bulk.get_by_label("Error contains").fill("flaky job")
        bulk.get_by_label("Failed").select_option("60")
        bulk.get_by_role("button", name="Retry…").click()
        expect(page.locator("#bulk-count")).to_have_text("This will retry 4 failed jobs: kb-inbound 4.")
        page.screenshot(path=str(screenshot_path("ops-bulk-preview-phone")), full_page=True)
        page.get_by_role("button", name="Retry 4 jobs").click()

        expect(page.locator(".flash.ok")).to_have_text("Retried 4 failed jobs.")
        entry = page.locator("#audit tbody tr").first
        for seen in ("ana", "retry failed jobs", "error: flaky job", "within: 60 min"):
            expect(entry).to_contain_text(seen)
        page.screenshot(path=str(screenshot_path("ops-audit-phone")), full_page=True)
        work(live.runtime)
        expect(page.locator('[data-k="failed_jobs.count|int"]').first).to_have_text("1", timeout=6000)
