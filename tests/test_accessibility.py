"""The pages that matter, on a phone and to assistive technology, in headless Chromium.

Each page is opened at a desktop width (1280 px) and a phone's (375 px, an iPhone SE):
at 375 px nothing may be wider than the screen (no sideways scrolling) and the reply
form's fields and button fit inside it; at both widths axe-core (the engine behind
browsers' accessibility audits, through axe-playwright-python) finds no serious or
critical violation. Screenshots of every page at both widths are saved under
test-output/ for a person to look at.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from gateway.ops import accounts
from gateway.store import queues
from tests.browser import chromium, screenshot_path
from tests.conftest import Twilio, run_workers
from tests.simulated import Live, running
from tests.test_ops import PASSWORD

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": 1280, "phone": 375}
SERIOUS = ("serious", "critical")  # axe's two highest impacts: they block someone from the page
# Persian, Arabic and a mixed line: right-to-left text in every list and table.
TEXTS = [
    ("+989121234567", "تجمع بزرگ در میدان آزادی #تهران"),
    ("+989351112233", "crowds at Azadi square now, phones still work #tehran"),
    ("+989177654321", "سلام from Shiraz: the internet is down since noon"),
]


@pytest.fixture(scope="module")
def live(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running(redis_server, tmp_path_factory.mktemp("a11y")) as served:
        twilio = Twilio(served.app.test_client(), served.config)
        for sender, body in TEXTS:
            twilio.text(sender=sender, body=body)
        run_workers(served.runtime, [queues.INBOUND])
        accounts.add_user(served.redis, "ana", PASSWORD)
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _oldest(live: Live) -> int:
    """The first post's id, from the public API."""
    with urllib.request.urlopen(f"{live.url}/api/v1/posts", timeout=5) as answer:
        return int(json.load(answer)["posts"][-1]["id"])


def logged_in(browser: Any, live: Live, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(f"{live.url}/ops/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/ops")
    return page


def serious_violations(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — " + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]


def overflow(page: Any) -> list[str]:
    """Elements that stick out past the right edge of the screen (what makes a phone scroll sideways)."""
    return list(
        page.evaluate(
            """() => {
              const width = document.documentElement.clientWidth;
              const out = [];
              for (const el of document.body.querySelectorAll("*")) {
                const box = el.getBoundingClientRect();
                if (box.width && box.right > width + 1) {
                  const id = el.id ? "#" + el.id : "";
                  out.push(el.tagName.toLowerCase() + id + " right=" + Math.round(box.right));
                }
              }
              return out.slice(0, 10);
            }"""
        )
    )


PUBLIC = {"feed": "/", "post": "/posts/{post}", "tag": "/tags/tehran", "login": "/ops/login"}


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", list(PUBLIC))
def test_public_pages_fit_a_phone_and_pass_axe(live: Live, browser: Any, name: str, width: str):
    page = browser.new_page(viewport={"width": WIDTHS[width], "height": 800})
    page.goto(live.url + PUBLIC[name].format(post=_oldest(live)))
    page.screenshot(path=str(screenshot_path(f"a11y-{name}-{width}")), full_page=True)
    assert serious_violations(page) == []
    if width == "phone":
        assert overflow(page) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
    page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_reply_form_fits_a_phone_and_posts(live: Live, browser: Any, width: str):
    page = browser.new_page(viewport={"width": WIDTHS[width], "height": 800})
    post = _oldest(live)
    page.goto(f"{live.url}/posts/{post}")
    screen = WIDTHS[width]
    for field in ("form.reply input[name=name]", "form.reply textarea", "form.reply button[type=submit]"):
        box = page.locator(field).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= screen, (field, box)
        assert box["height"] >= 24, (field, box)  # big enough to touch
    page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_console_fits_a_phone_and_passes_axe(live: Live, browser: Any, width: str):
    page = logged_in(browser, live, WIDTHS[width])
    page.screenshot(path=str(screenshot_path(f"a11y-ops-{width}")), full_page=True)
    assert serious_violations(page) == []
    if width == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"], overflow(page)
    page.close()
