"""Texts holding HTML and script are shown as text, in headless Chromium, and never run.

A texter (through the dev phone's real form and the signed webhook) posts markup,
event handlers, `javascript:` links, a handle look-alike and Persian with tags in it;
a reader replies on the web with more of it; a job fails with it in its description.
Then Chromium opens every page that shows them: the feed, the author's page, the tags,
each post, the operator console, and both dev phones (one updated by its script
while open, then reloaded). On each: no script ran (`window.__pwned` stays unset, no
dialog opened), no link has a `javascript:` URL, and each text reads back exactly.

The browser context bypasses the Content-Security-Policy on purpose: the CSP would block
an injected inline script anyway, and this test is about the escaping beneath it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.microblog import subscribers
from gateway.microblog import text as post_text
from gateway.ops import accounts
from gateway.providers.twilio.webhooks import SignatureChecker
from gateway.store import keys, queues
from tests.browser import chromium, screenshot_path
from tests.conftest import run_workers
from tests.report import Report
from tests.simulated import Live, running, wait_until
from tests.test_ops import PASSWORD

pytestmark = pytest.mark.browser

AUTHOR, READER_PHONE = "+14155550121", "+14155550122"
TAG = "xss"
PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "<img src=x onerror=alert(1)>",
    '"><svg onload="window.__pwned=1">',
    "'><svg/onload=window.__pwned=1>",
    '<a href="javascript:window.__pwned=1">click me</a>',
    "javascript:window.__pwned=1",
    '<iframe src="javascript:window.__pwned=1"></iframe>',
    '#news"><script>window.__pwned=1</script>',
    'see @ali"><img src=x onerror=window.__pwned=1>',
    'official: <a href="/@admin">@admin</a> ＠ali‮nimda',
    "سلام <b>دنیا</b> <script>window.__pwned=1</script> #آزادی",
    "{{7*7}} ${7*7} <style>body{display:none}</style> &amp; &lt;",
]
# A web reply: (display name, text). The name "@ali" looks like the texter's handle.
REPLIES = [
    ('"><svg onload=window.__pwned=1>', "<script>window.__pwned=1</script>"),
    ("@ali", "I am the real <b>@ali</b>"),
    ("<b>مریم</b>", '<img src=x onerror="window.__pwned=1"> ممنون'),
]
MEDIA_URL = "javascript:window.__pwned=1"


def fail_with(text: str) -> None:
    """A job that fails with markup in its error, for the console to show."""
    raise RuntimeError(text)


def webhook_sender(live: Live) -> Callable[..., None]:
    """Deliver a text to the live app exactly as Twilio would (signed), in process."""
    client: FlaskClient = live.app.test_client()
    signer = SignatureChecker(live.config.twilio_auth_token, live.config.public_url)
    count = iter(range(1, 10**6))

    def text(sender: str, body: str, **extra: str) -> None:
        form = {"MessageSid": f"SM{next(count):032x}", "From": sender, "To": "+15005550006", "Body": body}
        form.update(extra)
        response = client.post(
            "/twilio/sms", data=form, headers={"X-Twilio-Signature": signer.sign("/twilio/sms", form)}
        )
        assert response.status_code == 200

    return text


class Watch:
    """One Chromium page, counting what it proves: pages checked, scripts run, dialogs."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.pages = 0
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.check()

    def check(self) -> None:
        """Nothing ran on the page as it stands, and no link leads to a `javascript:` URL."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_timeout(100)  # an onerror fires once the broken image has failed
        assert self.page.evaluate("typeof window.__pwned") == "undefined", self.page.url
        assert self.dialogs == [], self.page.url
        hrefs = self.page.eval_on_selector_all("a[href], iframe[src]", "els => els.map(e => e.href || e.src)")
        assert not [h for h in hrefs if h.lower().startswith("javascript:")], self.page.url
        self.pages += 1

    def texts(self, selector: str) -> list[str]:
        """The exact text (textContent) of each element matching `selector`."""
        return list(self.page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)"))


def test_html_and_script_in_texts_show_as_text_and_never_run(
    redis_server: str, tmp_path: Any, report: Report
) -> None:
    with running(redis_server, tmp_path) as live, chromium() as browser:
        text = webhook_sender(live)
        text(AUTHOR, "hello")
        text(READER_PHONE, "hello")
        run_workers(live.runtime)
        text(AUTHOR, "NAME ali")
        text(READER_PHONE, "FOLLOW @ali")
        run_workers(live.runtime)
        assert subscribers.id_for_handle(live.redis, "ali") is not None

        # Bypass the CSP: what is tested is that nothing is ever markup to begin with.
        context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900})  # type: ignore[attr-defined]
        watch = Watch(context.new_page())
        reader_phone = Watch(context.new_page())
        reader_phone.open(f"{live.url}/dev/phone?number={urllib.parse.quote(READER_PHONE)}")
        received_before = reader_phone.page.locator("#conversation li.in").count()

        # The author texts each payload from the dev phone's form: the real, signed webhook.
        watch.open(f"{live.url}/dev/phone?number={urllib.parse.quote(AUTHOR)}")
        for payload in PAYLOADS:
            watch.page.fill("textarea[name=body]", f"{payload} #{TAG}")
            with watch.page.expect_navigation():
                watch.page.click("button[type=submit]")
            assert "Accepted" in watch.page.inner_text("#status")
            watch.check()
        text(AUTHOR, f"a photo #{TAG}", NumMedia="1", MediaUrl0=MEDIA_URL)
        run_workers(live.runtime)  # posts made, SMS sent to the simulator's phones
        bodies = [f"{p} #{TAG}" for p in PAYLOADS]
        # As posted: the look-alike's open right-to-left override is closed at its end.
        posted = [post_text.balance_bidi(b) for b in bodies]
        wait_until(lambda: live.redis.zcard(keys.TIMELINE_ALL) >= len(PAYLOADS) + 3, timeout=10)

        # The reader's phone page, open all along: its script inserts each SMS as it comes.
        sms = reader_phone.page.locator("#conversation li.in")
        wait_until(lambda: sms.count() >= received_before + len(bodies) + 1, timeout=15)
        reader_phone.check()
        shown = [t for t in reader_phone.texts("#conversation li.in") if t.startswith("@ali: ")]
        assert all(any(s.startswith(f"@ali: {b}") for s in shown) for b in bodies), shown
        reader_phone.page.reload()
        reader_phone.check()
        # The same texts after a reload (each line ends with its delivery status, which may
        # have moved on from "sent" to "delivered" meanwhile).
        again = [t for t in reader_phone.texts("#conversation li.in") if t.startswith("@ali: ")]
        assert len(again) == len(shown)
        assert all(any(s.startswith(f"@ali: {b}") for s in again) for b in bodies), again
        # And the author's own phone lists what it texted, as text.
        watch.open(f"{live.url}/dev/phone?number={urllib.parse.quote(AUTHOR)}")
        texted = watch.texts("#conversation li.out")
        assert all(any(t.startswith(b) for t in texted) for b in bodies)

        # A reader replies on the web, with markup in the name and the text.
        first = int(
            live.redis.zrange(keys.timeline_user(subscribers.id_for_handle(live.redis, "ali")), 0, 0)[0]
        )
        for name, reply in REPLIES:
            watch.open(f"{live.url}/posts/{first}")
            watch.page.fill("input[name=name]", name)
            watch.page.fill("textarea[name=body]", reply)
            with watch.page.expect_navigation():
                watch.page.click("#reply button[type=submit]")
            watch.check()
        names = watch.texts(".replies .meta span[dir=auto]")
        assert names == [n.lstrip("@") for n, _ in REPLIES]
        assert watch.page.locator(".replies .meta a[href$='/@ali']").count() == 0  # the look-alike is no link
        assert watch.texts(".replies p.body") == [r for _, r in REPLIES]
        watch.page.screenshot(path=str(screenshot_path("xss-post-page")), full_page=True)

        # Every page that lists them: each body reads back exactly, and nothing ran.
        pages = {
            "/": posted + [r for _, r in REPLIES],
            "/@ali": posted,
            f"/tags/{TAG}": posted,
            "/tags/" + urllib.parse.quote("آزادی"): [b for b in posted if "#آزادی" in b],
            "/tags/news": [b for b in posted if "#news" in b],
        }
        for path, wanted in pages.items():
            watch.open(live.url + path)
            on_page = watch.texts("p.body")
            assert all(w in on_page for w in wanted), (path, set(wanted) - set(on_page))
        watch.page.screenshot(path=str(screenshot_path("xss-feed")), full_page=True)
        assert watch.page.locator("p.media a").count() == 0  # the javascript: media URL is no link
        post_ids = [int(i) for i in live.redis.zrange(keys.TIMELINE_ALL, 0, -1)]
        for post_id in post_ids:
            watch.open(f"{live.url}/posts/{post_id}")
            assert watch.texts("article.post > p.body")[0] in [
                *posted,
                *(r for _, r in REPLIES),
                "hello",
                f"a photo #{TAG}",
            ]

        # The operator console: a failed job carrying markup in its description and error.
        rq_queues = queues.make(live.rq_redis)
        rq_queues[queues.INBOUND].enqueue(
            "tests.test_xss_browser.fail_with", PAYLOADS[1], description=PAYLOADS[3]
        )
        run_workers(live.runtime, [queues.INBOUND])
        accounts.add_user(live.redis, "ana", PASSWORD)
        watch.open(f"{live.url}/ops/login")
        watch.page.fill("input[name=name]", "ana")
        watch.page.fill("input[name=password]", PASSWORD)
        with watch.page.expect_navigation():
            watch.page.click("button[type=submit]")
        watch.check()
        row = watch.page.locator("#failed tbody tr", has_text="svg onload")
        assert PAYLOADS[3] in watch.texts("#failed [data-f=description]")
        assert PAYLOADS[1] in row.inner_text()
        watch.page.wait_for_timeout(2500)  # the console's script redraws the rows from JSON
        watch.check()
        assert PAYLOADS[3] in watch.texts("#failed [data-f=description]")

        report(
            "injected",
            f"{len(PAYLOADS)} texts by SMS (dev phone form), {len(REPLIES)} web replies (markup in "
            "name and text), 1 javascript: media URL, 1 failed job with markup in the console",
        )
        report(
            "counted",
            f"{watch.pages + reader_phone.pages} page loads in Chromium (CSP bypassed), "
            f"{len(post_ids)} of them post pages; scripts run 0, dialogs 0, javascript: links 0; "
            f"{len(shown)} SMS on the reader's phone; every text shown literally",
        )
