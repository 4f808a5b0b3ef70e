"""The alert banner in headless Chromium, over real processes (`kabootar web`, `kabootar worker`):
stop the only worker and the banner says so within the console's refresh, and ALERT_WEBHOOK_URL
hears it once; start a worker again and both hear that it is over."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from redis import Redis

from gateway.config import Config
from gateway.ops import accounts, alert_webhook
from gateway.store import keys
from tests.browser import chromium, screenshot_path
from tests.live import CLI, Gateway, Processes, clean_env, web_settings
from tests.test_alerts import receiver, until  # noqa: F401  (fixture: a local webhook receiver)
from tests.test_ops import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# The web processes check the rules every CHECK_SECONDS; the page refreshes every 2 s.
WEBHOOK_WITHIN = alert_webhook.CHECK_SECONDS * 2 + 5


def test_banner_shows_no_worker_while_stopped_and_ends_when_one_starts(
    redis_server: str,
    redis: Redis,
    processes: Processes,
    receiver: tuple[str, list[dict[str, str]]],  # noqa: F811
    tmp_path: Path,
):
    from playwright.sync_api import expect

    url, received = receiver
    settings = web_settings(redis_server, tmp_path / "var", "alerts-test-secret-key", ALERT_WEBHOOK_URL=url)
    config = Config.from_env(settings)
    env = clean_env(**{**settings, **config.as_env()})
    processes.start("web", [*CLI, "web"], env)
    worker = processes.start("worker", [*CLI, "worker"], env)
    live = Gateway(config, processes)
    live.wait_ready()  # /readyz: the web answers and the worker beats
    accounts.add_user(redis, "ana", PASSWORD)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{live.base}/ops/login?next=/ops")
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{live.base}/ops")
        banner = page.locator("#alerts")
        expect(banner).to_be_hidden()
        page.evaluate("window.notReloaded = true")

        # Were the web processes' first check before the worker's first beat, its end is told first.
        until(lambda: not redis.hgetall(keys.ALERTS_ANNOUNCED), timeout=WEBHOOK_WITHIN)
        told_before = len(received)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        alert = banner.locator('li[data-severity="critical"]', has_text="No worker is alive")
        expect(alert).to_be_visible(timeout=6000)  # the page refreshes every 2 s
        expect(alert).to_contain_text("NoWorker, since ")
        page.screenshot(path=str(screenshot_path("ops-alert-no-worker")), full_page=False)
        until(lambda: any(r["status"] == "firing" for r in received), timeout=WEBHOOK_WITHIN)

        processes.start("worker-again", [*CLI, "worker"], env)
        expect(banner).to_be_hidden(timeout=15000)
        assert page.evaluate("window.notReloaded") is True
        until(lambda: any(r["status"] == "resolved" for r in received), timeout=WEBHOOK_WITHIN)
        assert problems == []

    # Two web processes check (WEB_CONCURRENCY=2): each change is posted once.
    told = received[told_before:]
    assert [(r["status"], r["name"]) for r in told] == [("firing", "NoWorker"), ("resolved", "NoWorker")]
    assert told[0]["since"] == told[1]["since"]
