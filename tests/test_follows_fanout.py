"""Follows and fan-out: new posts, replies, mentions and direct messages reach phones by SMS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import rq
from redis import Redis

from gateway import segments
from gateway.microblog import follows, posts
from gateway.outbox import fanout
from gateway.outbox.outbound import Outbox
from gateway.store import keys, queues
from tests.phones import ALI, REZA, SARA, Phones, phones_on


@pytest.fixture
def phones(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    with phones_on(redis_server, tmp_path) as p:
        yield p


def test_a_follower_gets_each_new_post_exactly_once(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")

    assert phones.say(ALI, "crowds at Azadi square") == []  # no SMS to the author
    phones.run()  # running the workers again sends nothing more
    assert phones.received(SARA)[-1:] == ["@ali: crowds at Azadi square"]
    assert phones.received(SARA).count("@ali: crowds at Azadi square") == 1


def test_a_tag_follower_gets_tagged_posts_and_two_reasons_make_one_sms(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.join(REZA, "reza")
    phones.say(SARA, "F #Tehran")
    phones.say(REZA, "FOLLOW @ali #tehran")

    phones.text(ALI, "power cut in #tehran tonight")
    phones.text(ALI, "no tag in this one")
    phones.run()

    assert phones.received(SARA)[-1] == "@ali: power cut in #tehran tonight"
    assert "@ali: no tag in this one" not in phones.received(SARA)
    assert phones.received(REZA)[-2:] == ["@ali: power cut in #tehran tonight", "@ali: no tag in this one"]


def test_unfollow_stops_the_posts(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(SARA, "LEAVE @ali")
    phones.say(ALI, "anyone there?")
    assert phones.received(SARA)[-1] == "You no longer follow @ali."


def test_an_sms_reply_is_public_and_reaches_the_author(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.text(ALI, "the bridge is closed")
    phones.run()
    [original] = [p for p in posts.page(phones.redis, keys.TIMELINE_ALL, None, 10)[0] if "bridge" in p.body]

    assert phones.say(SARA, "@ali which bridge?") == []  # a reply is a post: not confirmed

    assert phones.received(ALI)[-1] == "@sara: @ali which bridge?"
    [reply] = posts.replies_to(phones.redis, original.id)
    assert (reply.body, reply.handle, reply.source) == ("@ali which bridge?", "sara", "sms")


def test_a_mention_reaches_the_mentioned_texter(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(ALI, "thanks to @sara for the photos")
    assert phones.received(SARA)[-1] == "@ali: thanks to @sara for the photos"


def test_a_direct_message_reaches_only_them_and_is_never_public(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.join(REZA, "reza")
    phones.say(REZA, "FOLLOW @sara")

    assert phones.say(SARA, "D @ali meet at the usual place") == ["Sent privately to @ali."]

    assert phones.received(ALI)[-1] == "D @sara: meet at the usual place"
    assert not any("usual place" in body for body in phones.timeline())
    assert not any("usual place" in body for body in phones.received(REZA))
    assert "usual place" not in phones.live.app.test_client().get("/").get_data(as_text=True)


def test_stop_silences_everything_until_start(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(SARA, "STOP")

    phones.say(ALI, "while you were away")
    assert phones.say(ALI, "D @sara are you there?") == [
        "Your private message to @sara was not delivered: they are not receiving messages now."
    ]
    assert phones.received(SARA)[-1] == "You follow @ali now: new posts come to you by SMS."

    assert phones.say(SARA, "START")[0].startswith("Welcome back")
    phones.say(ALI, "back again")
    assert phones.received(SARA)[-1] == "@ali: back again"


def test_off_pauses_every_sms_but_answers_and_on_resumes(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    assert phones.say(SARA, "OFF") == ["Paused: no SMS from Kabootar until you text ON. You can still post."]

    phones.say(ALI, "quiet news")
    phones.say(ALI, "D @sara psst")
    assert phones.say(SARA, "still posting while paused") == []
    assert "still posting while paused" in phones.timeline()
    assert phones.received(SARA)[-1].startswith("Paused")

    assert phones.say(SARA, "ON") == ["SMS from Kabootar are on again."]
    phones.say(ALI, "loud news")
    assert phones.received(SARA)[-1] == "@ali: loud news"


def test_delete_takes_the_latest_post_off_the_feed(phones: Phones):
    ali = phones.join(ALI, "ali")
    phones.text(ALI, "a post I regret #oops")
    phones.run()
    [regret] = posts.page(phones.redis, keys.timeline_user(ali), None, 1)[0]

    assert phones.say(ALI, "DELETE") == ['Deleted your latest post: "a post I regret #oops"']

    assert phones.timeline() == ["hello, ali here"]
    client = phones.live.app.test_client()
    assert client.get(f"/posts/{regret.id}").status_code == 404
    assert "regret" not in client.get("/tags/oops").get_data(as_text=True)
    assert phones.say(ALI, "DELETE") == ['Deleted your latest post: "hello, ali here"']
    assert phones.say(ALI, "DELETE") == ["You have no posts to delete."]


def test_a_long_post_is_cut_to_the_segment_limit_with_its_link(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    long_text = "The march started at noon and " + "people kept arriving from every street " * 12

    phones.say(ALI, long_text)

    sms = phones.received(SARA)[-1]
    [post] = posts.page(phones.redis, keys.TIMELINE_ALL, None, 1)[0]
    assert sms.startswith("@ali: The march started at noon")
    assert sms.endswith(f"... {phones.live.url}/posts/{post.id}")
    assert segments.segments(sms) == phones.live.config.sms_max_segments == 2


def test_a_persian_post_is_cut_in_ucs2_segments(phones: Phones):
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(ALI, "مردم در خیابان‌ها هستند " * 10)
    sms = phones.received(SARA)[-1]
    assert "…" in sms and segments.segments(sms) <= 2


def test_a_large_audience_is_shared_out_in_batch_jobs(phones: Phones, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fanout, "FANOUT_BATCH", 3)
    ali = phones.join(ALI, "ali")
    numbers = [f"+98912700{n:04d}" for n in range(7)]
    for number in numbers:
        follows.follow_user(phones.redis, phones.live.subscriber(number), ali)

    phones.text(ALI, "to all seven")
    phones.run()

    assert [phones.received(n) for n in numbers] == [["@ali: to all seven"]] * 7


def test_batches_are_jobs_carrying_ids(phones: Phones, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fanout, "FANOUT_BATCH", 3)
    ali = phones.join(ALI, "ali")
    for n in range(7):
        follows.follow_user(phones.redis, phones.live.subscriber(f"+98912800{n:04d}"), ali)
    post_id = posts.create(phones.redis, posts.NewPost(body="hello all", source="sms", author_id=ali))

    fanout.plan(Outbox(phones.redis, phones.live.queues, phones.live.url, 2), [post_id])

    jobs = rq.Queue(queues.FANOUT, connection=phones.live.rq_redis).get_jobs()
    assert [len(job.args[1]) for job in jobs] == [3, 3, 1]
    assert all(job.args[0] == post_id and "+98" not in job.description for job in jobs)


def test_follows_are_kept_both_ways_and_forgotten_both_ways(redis: Redis):
    follows.follow_user(redis, 1, 2)
    follows.follow_user(redis, 3, 1)
    follows.follow_tag(redis, 1, "#Tehran")
    assert follows.audience(redis, 2, ["TEHRAN"]) == [1]
    assert follows.counts(redis, 1) == follows.Counts(followers=1, following_users=1, following_tags=1)

    follows.forget(redis, 1)

    assert follows.audience(redis, 2, ["tehran"]) == []
    assert follows.counts(redis, 3) == follows.Counts(0, 0, 0)
    assert not redis.keys("kb:f*")


def everything_stored(redis: Redis) -> dict[str, str]:
    """Each key of ours and RQ's (not the simulator's: that is Twilio), with its values as text."""
    found = {}
    for key in redis.scan_iter(count=1000):
        if key.startswith(keys.SIMULATOR_PREFIX):
            continue
        kind = redis.type(key)
        if kind == "string":
            value = str(redis.get(key))
        elif kind == "hash":
            value = str(redis.hgetall(key))
        elif kind == "list":
            value = str(redis.lrange(key, 0, -1))
        elif kind == "set":
            value = str(redis.smembers(key))
        elif kind == "zset":
            value = str(redis.zrange(key, 0, -1))
        else:
            value = ""
        found[key] = value
    return found


def test_forget_me_leaves_nothing_of_them(phones: Phones):
    ali = phones.join(ALI, "vanishing-ali")
    sara = phones.join(SARA, "sara")
    phones.say(ALI, "BIO reporter in Tehran")
    phones.say(ALI, "FOLLOW @sara #tehran")
    phones.say(SARA, "FOLLOW @vanishing-ali")
    phones.say(ALI, "my words from #tehran")
    phones.say(ALI, "D @sara this is private")
    assert phones.received(SARA)[-2:] == [
        "@vanishing-ali: my words from #tehran",
        "D @vanishing-ali: this is private",
    ]

    [question] = phones.say(ALI, "FORGET ME")  # issue 13 item 11: it asks first
    assert "reply YES within 10 minutes" in question
    assert phones.say(ALI, "YES") == []  # nothing left to answer to

    stored = everything_stored(phones.redis)
    assert [k for k, v in stored.items() if "vanishing-ali" in k + v] == []
    assert [k for k, v in stored.items() if "my words" in v or "reporter" in v or "private" in v] == []
    for key in [keys.subscriber(ali), keys.following(ali), keys.following_tags(ali), keys.followers(ali)]:
        assert key not in stored
    assert keys.timeline_user(ali) not in stored
    assert str(ali) not in phones.redis.hvals(keys.PHONE_INDEX) + phones.redis.hvals(keys.HANDLE_INDEX)
    assert not phones.redis.sismember(keys.followers(sara), ali)
    assert not phones.redis.sismember(keys.tag_followers("tehran"), ali)
    messages = [k for k in stored if k.startswith(keys.outbound_message(""))]
    assert all(phones.redis.hget(k, "r") == str(sara) for k in messages)

    [welcome] = phones.say(ALI, "I am back")  # a stranger again: a new handle, nothing linked
    assert welcome.startswith("Welcome to Kabootar!") and "vanishing-ali" not in welcome
    assert phones.sub_id(ALI) not in (None, ali)
