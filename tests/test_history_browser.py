"""The message history in headless Chromium: an operator finds a message by handle and time,
opens its timeline, filters failed SMS by provider and downloads a CSV that matches."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from gateway.ops import accounts
from tests.browser import chromium, screenshot_path
from tests.phones import ALI, SARA, phones_on
from tests.simulated import wait_until
from tests.test_accessibility import WIDTHS, overflow, serious_violations
from tests.test_history import NUMBER_DIGITS
from tests.test_ops import PASSWORD

pytestmark = pytest.mark.browser


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def test_operator_finds_a_message_opens_its_timeline_and_exports_failed_sms(
    redis_server: str, tmp_path: Path
):
    from playwright.sync_api import expect

    with phones_on(redis_server, tmp_path) as phones, chromium() as browser:
        phones.join(ALI, "ali")
        phones.join(SARA, "sara")
        phones.say(SARA, "FOLLOW @ali")
        time.sleep(1.1)  # the range below starts on a whole second, after the texts above
        started = time.time()
        phones.say(ALI, "میدان پر از مردم است — the square is full")
        wait_until(lambda: "the square is full" in " ".join(phones.received(SARA)), timeout=10)
        phones.live.control("fail", code="21211")  # Twilio: the number is not valid
        phones.say(ALI, "STATS")
        accounts.add_user(phones.redis, "ana", PASSWORD)

        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        url = phones.live.url
        page.goto(f"{url}/ops")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.click("#history-link")  # from the console
        expect(page).to_have_url(f"{url}/ops/messages")

        # A given message, by handle and time range.
        page.fill("input[name=handle]", "@ali")
        page.fill("input[name=since]", _utc(started))
        page.fill("input[name=until]", _utc(time.time() + 1))
        page.select_option("select[name=direction]", "in")
        page.click("#filters button[type=submit]")
        rows = page.locator("#messages tbody tr")
        expect(rows).to_have_count(2)  # the post and STATS; the earlier texts are out of range
        post = rows.filter(has_text="the square is full")
        expect(post.locator("td.text")).to_have_attribute("dir", "auto")
        page.screenshot(path=str(screenshot_path("history-1280")), full_page=True)
        page.set_viewport_size({"width": 375, "height": 800})
        page.screenshot(path=str(screenshot_path("history-375")), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # Its timeline: received → post, and the SMS to sara sent → delivered.
        post.locator("td.when a").click()
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("received")
        expect(timeline).to_contain_text("became post #")
        sms = timeline.locator("div.sms", has_text="to @sara")
        expect(sms).to_contain_text("sent")

        def delivered() -> bool:
            page.reload()
            return "delivered" in sms.inner_text()

        wait_until(delivered, timeout=10)
        page.screenshot(path=str(screenshot_path("history-timeline")), full_page=True)

        # Failed SMS, by provider.
        page.goto(f"{url}/ops/messages")
        page.select_option("select[name=outcome]", "failed")
        page.select_option("select[name=provider]", "twilio")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("@ali")
        expect(rows.first.locator("td.outcome")).to_contain_text("failed")

        # The CSV export of that filter: its rows match it, and hold no number.
        with page.expect_download() as download:
            page.click("#export-csv")
        path = download.value.path()
        text = Path(path).read_text()
        exported = list(csv.DictReader(text.splitlines()))
        assert len(exported) == 1
        assert [(r["direction"], r["provider"], r["outcome"], r["handle"]) for r in exported] == [
            ("out", "twilio", "failed", "ali")
        ]
        for digits in NUMBER_DIGITS:
            assert digits not in text
        assert problems == []


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_history_and_a_timeline_fit_a_phone_and_pass_axe(redis_server: str, tmp_path: Path, width: str):
    with phones_on(redis_server, tmp_path) as phones, chromium() as browser:
        phones.join(ALI, "ali")
        phones.say(ALI, "تجمع بزرگ در میدان آزادی — crowds at Azadi square #tehran")
        accounts.add_user(phones.redis, "ana", PASSWORD)
        page = browser.new_page(viewport={"width": WIDTHS[width], "height": 800})
        page.goto(f"{phones.live.url}/ops/login?next=/ops/messages")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{phones.live.url}/ops/messages")
        pages = {"history": page.url}
        pages["timeline"] = phones.live.url + str(
            page.locator("#messages td.when a").first.get_attribute("href")
        )
        for name, url in pages.items():
            page.goto(url)
            page.screenshot(path=str(screenshot_path(f"a11y-{name}-{width}")), full_page=True)
            assert serious_violations(page) == [], name
            if width == "phone":
                assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"], overflow(
                    page
                )
