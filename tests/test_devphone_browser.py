"""Two dev phones hold a conversation in a real browser, through real processes."""

from __future__ import annotations

import re

import pytest

from tests.browser import chromium, screenshot_path
from tests.live import start_gateway

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ALICE, BOB = "+14155550101", "+14155550102"


def test_follower_phone_receives_the_post_live(redis_server, redis, processes, tmp_path):
    gateway = start_gateway(redis_server, processes, tmp_path / "var", SMS_MPS="50")
    with chromium() as browser:
        alice = browser.new_page()  # type: ignore[attr-defined]
        bob = browser.new_page()  # type: ignore[attr-defined]
        alice.goto(f"{gateway.base}/dev/phone?number={ALICE}")
        bob.goto(f"{gateway.base}/dev/phone?number={BOB}")

        def text(page, body: str) -> None:
            page.fill("textarea[name=body]", body)
            page.click("button[type=submit]")
            page.wait_for_selector("#status:has-text('Accepted')")

        text(alice, "hello, I am here")
        welcome = alice.wait_for_selector("#conversation li.in", timeout=15_000)
        handle = re.search(r"@[\w-]+", welcome.inner_text()).group()  # type: ignore[union-attr]

        text(bob, f"FOLLOW {handle}")
        bob.wait_for_selector(f"#conversation li.in:has-text('{handle}')", timeout=15_000)
        received_before = bob.locator("#conversation li.in").count()

        text(alice, "crowds at Azadi square")
        # No reload: the page's own refresh shows the SMS as it arrives.
        bob.wait_for_selector(
            f"#conversation li.in:has-text('{handle}: crowds at Azadi square')", timeout=15_000
        )
        assert bob.locator("#conversation li.in").count() == received_before + 1
        bob.screenshot(path=str(screenshot_path("devphone-follower")), full_page=True)
