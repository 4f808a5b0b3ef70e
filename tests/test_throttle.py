"""SENDER_POSTS_PER_MINUTE: a fast texter's extra texts wait for the next minute, none lost."""

from __future__ import annotations

import base64
from dataclasses import replace

from redis import Redis

from gateway.microblog import posts
from gateway.ops import accounts
from gateway.pipeline import batch, inbox, throttle
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import Twilio


def feed(redis: Redis) -> list[str]:
    return [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 100)[0]]


def test_texts_over_the_limit_are_kept_and_posted_after_the_minute(config, runtime, redis: Redis):
    limited = replace(config, sender_posts_per_minute=3)
    twilio = Twilio(create_app(limited, {"TESTING": True}).test_client(), limited)
    for i in range(5):
        assert twilio.text(sender="+989121234567", body=f"flood {i}").status_code == 200
    twilio.text(sender="+989350000001", body="someone else")

    inbox.drain(runtime, lambda rt, sids: batch.process(replace(rt, config=limited), sids))
    assert sorted(feed(redis)) == ["flood 0", "flood 1", "flood 2", "someone else"]
    assert redis.zcard(keys.INBOX_DEFERRED) == 2

    # The minute passes (its counters with it): the watchdog returns the held texts.
    redis.delete(*redis.keys(keys.post_rate("*", "*")))
    assert throttle.promote_due(redis, now=9e9) == 2
    inbox.drain(runtime, lambda rt, sids: batch.process(replace(rt, config=limited), sids))
    assert sorted(feed(redis)) == ["flood 0", "flood 1", "flood 2", "flood 3", "flood 4", "someone else"]


def test_throttled_texts_are_counted_on_the_console(config, runtime, redis: Redis, report):
    limited = replace(config, sender_posts_per_minute=1)
    app = create_app(limited, {"TESTING": True})
    twilio = Twilio(app.test_client(), limited)
    for i in range(3):
        twilio.text(body=f"fast {i}")
    inbox.drain(runtime, lambda rt, sids: batch.process(replace(rt, config=limited), sids))
    assert int(redis.hget(keys.STATS_TOTAL, "throttled") or 0) == 2
    accounts.add_user(redis, "ana", "a long enough password")
    auth = "Basic " + base64.b64encode(b"ana:a long enough password").decode()
    console = app.test_client().get("/ops/api/health", headers={"Authorization": auth}).get_json()
    report("injected", "3 texts at once from one number, SENDER_POSTS_PER_MINUTE=1")
    report("counted", f"{len(feed(redis))} posted, {console['pipeline']['throttled']} throttled on /ops")
    assert (len(feed(redis)), console["pipeline"]["throttled"]) == (1, 2)


def test_commands_are_never_throttled(config, runtime, redis: Redis):
    limited = replace(config, sender_posts_per_minute=1)
    twilio = Twilio(create_app(limited, {"TESTING": True}).test_client(), limited)
    twilio.text(body="one post")
    twilio.text(body="a second post")
    twilio.text(body="HELP")
    inbox.drain(runtime, lambda rt, sids: batch.process(replace(rt, config=limited), sids))
    assert redis.zcard(keys.INBOX_DEFERRED) == 1  # only the second post waits
