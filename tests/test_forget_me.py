"""FORGET ME by SMS, confirmed with YES, erases the texter, and a diff of all of Redis proves
nothing of them remains.

A live gateway (web app on a real port, the Twilio simulator over HTTP, real RQ workers)
takes a texter through everything: posts, tags, replies, a deleted post, follows both
ways, direct messages both ways, a web reader's reply, throttled texts, an SMS to them
queued and one in flight. Redis is snapshotted before their first text and after
FORGET ME; every key that is new or changed must be explained (a counter, a dedupe
marker, another person's data), and their number, its keyed hash, any ciphertext of it,
their handle, subscriber id, post ids and words must be found nowhere else.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.microblog import handles, posts
from gateway.outbox import outbound, sender
from gateway.pipeline import inbox, throttle
from gateway.providers.simulated import handsets
from gateway.store import keys, queues
from tests.conftest import Twilio, run_workers
from tests.privacy import leaks, redis_values_url, unkeyed_hashes, url_of
from tests.report import Report
from tests.simulated import Live, running, wait_until

ALI, SARA, REZA = "+989121234567", "+989351112233", "+14155550123"
LIMIT = 6  # SENDER_POSTS_PER_MINUTE here: the burst below is throttled whatever the minute
BURST = LIMIT + 3
HANDLE = "vanishing-ali"
SARAS_REPLY = "hello back"
FINAL = ("delivered", "undelivered", "failed", "cancelled")


class Texters:
    """Phones texting the live gateway; the workers run only when asked (`run`, `drain`)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.redis: Redis = live.redis
        self.twilio = Twilio(live.app.test_client(), live.config)
        self.forms: list[dict[str, str]] = []
        self.commands: Counter[str] = Counter()

    def text(self, number: str, body: str) -> str:
        form = self.twilio.form(sender=number, body=body)
        assert self.twilio.post(form).status_code == 200
        self.forms.append(form)
        self.commands[body.split()[0] if body.split()[0].isupper() else "(post)"] += 1
        return form["MessageSid"]

    def drain(self) -> None:
        """Only the inbound queue: texts become posts and commands; no SMS leaves."""
        run_workers(self.live.runtime, [queues.INBOUND])

    def run(self) -> None:
        """Every queue, then every SMS sent and every status callback in."""
        run_workers(self.live.runtime)
        self.live.send_all()
        wait_until(self.settled, timeout=10)

    def settled(self) -> bool:
        if any(self.redis.llen(keys.outbound_lane(lane)) for lane in queues.LANES):
            return False
        statuses = [self.redis.hget(k, "status") for k in self.redis.scan_iter(keys.outbound_message("*"))]
        return all(s in FINAL for s in statuses)

    def received(self, number: str) -> list[str]:
        return [m["body"] for m in handsets.inbox_for(self.redis, number)]

    def sub_id(self, number: str) -> int | None:
        found = self.redis.hget(keys.PHONE_INDEX, self.live.runtime.vault.lookup_key(number))
        return int(found) if found else None


@pytest.fixture
def texters(redis_server: str, tmp_path: Path) -> Iterator[Texters]:
    with running(redis_server, tmp_path, SENDER_POSTS_PER_MINUTE=str(LIMIT)) as live:
        yield Texters(live)


def _members(redis: Redis, key: str) -> set[str]:
    return set(redis.zrange(key, 0, -1)) if redis.type(key) == "zset" else set(redis.smembers(key))


def web_reply(client: FlaskClient, post_id: int, name: str, body: str) -> None:
    """A reader replies from the post page's form, with the page's CSRF token."""
    page = client.get(f"/posts/{post_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no reply form"
    data = {"name": name, "body": body, "csrf_token": token.group(1)}
    assert client.post(f"/posts/{post_id}/replies", data=data).status_code == 303


def explain(key: str, others: set[int], ali_sids: set[str]) -> str | None:
    """Why a key new or changed since before Ali's first text may stay; None if it may not."""
    if key.startswith("rq:"):
        return "RQ's own bookkeeping (queues, workers, registries)"
    if key.startswith(keys.seen_message("")):
        mine = key.removeprefix(keys.seen_message("")) in ali_sids
        return "Ali's MessageSid dedupe markers (7 days)" if mine else "others' MessageSid markers"
    if key.startswith(keys.command_done("")):
        return "DELETE's once-only marker of a MessageSid (7 days)"
    if key in (keys.POST_SEQ, keys.SUBSCRIBER_SEQ, keys.OUTBOUND_STATS, keys.STATS_TOTAL) or key.startswith(
        keys.PREFIX + "stats:"
    ):
        return "counters"
    if key == keys.FEED_GENERATION:
        return "the feed's generation (a random token: posts showed differently, no one's)"
    if key.startswith(keys.PREFIX + "web:replies:"):
        return "a web reader's reply rate counter (keyed hash of an address)"
    if key.startswith(keys.PREFIX + "prov:"):
        return "a provider's health (when it last took an SMS)"
    if key in (keys.INBOX_DRAIN_SCHEDULED, keys.PHONE_INDEX, keys.HANDLE_INDEX, keys.TIMELINE_ALL):
        return "indexes and flags, Ali's entries gone (checked below)"
    if key.startswith(
        (keys.PREFIX + "out:drain-scheduled", keys.PREFIX + "out:lane:", keys.OUTBOUND_SENDING)
    ):
        return "outbound bookkeeping, no id of Ali's SMS (checked below)"
    owner = re.fullmatch(
        rf"{keys.PREFIX}(?:sub|tl:user|fol|fans:user|rate:posts|rate:dms):?(\d+)(?::.*)?", key
    )
    if owner:
        return "others' own records" if int(owner.group(1)) in others else None
    if key.startswith(keys.timeline_tag("")) or key.startswith(keys.tag_followers("")):
        return "tag timelines and followers: others' posts and ids only (checked below)"
    if re.fullmatch(rf"{keys.PREFIX}post:\d+(:replies)?", key):
        return "others' posts and replies (Ali's erased: checked below)"
    if key.startswith(keys.outbound_message("")):
        return "SMS to others, none about Ali (checked below)"
    if key.startswith(keys.handle_hold("")):
        return "freed handles held 30 days for no one, named by a digest (checked below)"
    return _explain_history(key, others, ali_sids)


def _explain_history(key: str, others: set[int], ali_sids: set[str]) -> str | None:
    """The message history's keys (gateway/store/history.py): others' only."""
    if key.startswith(keys.history_inbound("")):
        return None if key.removeprefix(keys.history_inbound("")) in ali_sids else "others' texts' history"
    if key.startswith(keys.history_sms_of("")):
        kind, _, rest = key.removeprefix(keys.history_sms_of("")).partition(":")
        if rest.rsplit(":", 1)[-1] in ali_sids or (kind == "welcome" and int(rest) not in others):
            return None
        return "the SMS of others' texts and posts, by intent, none to Ali (checked below)"
    index = re.fullmatch(rf"{keys.PREFIX}hist:ix:\d+:(.*)", key)
    if index and index.group(1).startswith("h:"):
        return "others' history indexes" if int(index.group(1)[2:]) in others else None
    if index:
        return "history indexes of a day, none of Ali's texts or SMS (checked below)"
    return None


def test_forget_me_erases_the_texter_and_leaves_nothing_of_them(texters: Texters, report: Report):
    t, redis, vault = texters, texters.redis, texters.live.runtime.vault
    url = url_of(redis)
    client = t.live.app.test_client()
    for number, first in [(SARA, "سلام from Sara #tehran"), (REZA, "Reza here")]:
        t.text(number, first)
    t.run()
    sara, reza = t.sub_id(SARA), t.sub_id(REZA)
    assert sara and reza
    t.text(SARA, "NAME sara")
    t.text(REZA, "NAME reza")
    t.text(REZA, "FOLLOW #tehran")
    t.run()
    before = redis_values_url(url)

    # Ali's whole life on Kabootar.
    t.text(ALI, "hello from ali")
    t.run()
    ali = t.sub_id(ALI)
    assert ali and ali not in (sara, reza)
    for body in [f"NAME {HANDLE}", "BIO reporter in Tehran", "FOLLOW @sara #tehran", "OFF", "ON"]:
        t.text(ALI, body)
    t.text(SARA, f"FOLLOW @{HANDLE}")
    t.run()
    t.text(ALI, "my words from #tehran and #shiraz @sara")
    t.run()
    t.text(ALI, "@sara I saw it too")
    t.text(ALI, "regret this one")
    t.run()
    t.text(ALI, "DELETE")
    t.text(ALI, "D @sara private words")
    t.text(ALI, "STATS")
    t.text(SARA, f"@{HANDLE} {SARAS_REPLY}")  # Sara's words name Ali: hers to keep
    t.run()
    [words] = [p for p in posts.page(redis, keys.timeline_user(ali), None, 10)[0] if "#tehran" in p.body]
    web_reply(client, words.id, "Mina in Hamburg", "stay safe, Ali")
    t.run()
    assert "@vanishing-ali: my words from #tehran and #shiraz @sara" in t.received(SARA)
    assert "D @vanishing-ali: private words" in t.received(SARA)
    assert "Mina in Hamburg (web): stay safe, Ali" in t.received(ALI)
    ali_posts = [int(x) for x in redis.zrange(keys.timeline_user(ali), 0, -1)]
    assert len(ali_posts) == 3  # hello, my words, the reply (the regretted one is deleted)

    # Throttled texts, waiting for the next minute when FORGET ME comes.
    for n in range(BURST):
        t.text(ALI, f"waiting words {n}")
    t.drain()
    ali_sids = {f["MessageSid"] for f in t.forms if f["From"] == ALI}
    held = [s for s in redis.zrange(keys.INBOX_DEFERRED, 0, -1) if s in ali_sids]
    assert len(held) >= 3

    # An SMS to Ali in flight (Twilio answers slowly) and one queued, when FORGET ME comes.
    t.text(SARA, f"D @{HANDLE} secret for ali")
    t.drain()
    received_before = len(t.received(ALI))
    t.live.control("delay", seconds=1.5)
    in_flight = threading.Thread(
        target=sender.drain, args=(t.live.runtime, {"twilio": t.live.sender}, queues.LANES, 0.3), daemon=True
    )
    in_flight.start()
    dm_sid = t.forms[-1]["MessageSid"]
    dm_id = outbound.message_id(f"dm:{sara}:{dm_sid}", ali)
    wait_until(lambda: outbound.message_status(redis, dm_id) == "sending")
    t.text(REZA, f"D @{HANDLE} queued for ali")
    t.drain()
    queued_id = outbound.message_id(f"dm:{reza}:{t.forms[-1]['MessageSid']}", ali)
    assert outbound.message_status(redis, queued_id) == "queued"
    ciphertexts = {
        v for k in redis.scan_iter(keys.PREFIX + "*") if redis.type(k) == "hash" for v in redis.hvals(k)
    }
    ciphertexts = {c for c in ciphertexts if c.startswith("gAAAAA") and vault.decrypt(c) == ALI}

    t.text(ALI, "last words before forgetting")
    t.text(ALI, "FORGET ME")  # asks to confirm (issue 13 item 11); YES in the same batch erases
    t.text(ALI, "YES")
    t.drain()
    in_flight.join(timeout=10)
    assert not in_flight.is_alive()
    t.live.control("delay", seconds=0)
    t.run()

    # What Ali's phone got after FORGET ME: only the SMS Twilio had already taken.
    assert t.received(ALI)[received_before:] == ["D @sara: secret for ali"]
    assert outbound.message_status(redis, queued_id) is None  # cancelled, then erased
    assert int(redis.hget(keys.OUTBOUND_STATS, "cancelled") or 0) >= 1

    # Twilio repeating an old text, and the throttled texts' minute passing, bring nothing back.
    first = next(f for f in t.forms if f["From"] == ALI)
    assert t.twilio.post(first).status_code == 200
    assert throttle.promote_due(redis, now=time.time() + 3600) == 0
    t.run()
    assert t.sub_id(ALI) is None
    assert redis.zcard(keys.INBOX_DEFERRED) == 0 and redis.llen(keys.INBOX) == 0

    # The public side: every page and feed, and each of Ali's posts.
    bodies = [f["Body"] for f in t.forms if f["From"] == ALI and not f["Body"].isupper()]
    bodies = [b for b in bodies if not b.startswith(("NAME", "BIO", "FOLLOW", "D @", "FORGET"))]
    bodies += ["reporter in Tehran", "private words"]
    pages = ["/", "/feed.atom", "/tags/tehran", "/tags/tehran/feed.atom", "/api/v1/posts?limit=100"]
    pages += [f"/@{HANDLE}", f"/@{HANDLE}/feed.atom", "/@sara", "/tags/shiraz"]
    deleted = ali_posts[-1] + 1  # "regret this one", posted with the reply and deleted by DELETE
    assert not redis.exists(keys.post(deleted))
    ali_posts.append(deleted)
    pages += [f"/posts/{p}" for p in ali_posts]
    pages += [f"/api/v1/posts/{p}" for p in ali_posts]
    pages += [f"/api/v1/posts?handle={HANDLE}", "/api/v1/posts?tag=tehran"]
    sara_posts = [int(x) for x in redis.zrange(keys.timeline_user(sara), 0, -1)]
    pages += [f"/posts/{p}" for p in sara_posts] + [f"/api/v1/posts/{p}" for p in sara_posts]
    statuses: dict[str, int] = {}
    for path in pages:
        response = client.get(path)
        statuses[path] = response.status_code
        text = response.get_data(as_text=True)
        assert [b for b in bodies if b in text] == [] and leaks(text, [ALI]) == [], path
        # The handle only inside Sara's reply (a post, an Atom entry, a JSON post of hers).
        pieces = re.split(r"(?=<article|<entry|\{\"id\")", text)
        assert [p for p in pieces if HANDLE in p and SARAS_REPLY not in p] == [], path
    gone = [p for p in pages if "vanishing" in p or any(p.endswith(f"/{i}") for i in ali_posts)]
    assert {statuses[p] for p in gone} == {404}, statuses
    assert statuses["/"] == statuses["/@sara"] == 200

    # Redis: their records, follows both ways, queued SMS, throttle entries, handle, number.
    assert not redis.exists(keys.subscriber(ali), keys.timeline_user(ali), keys.following(ali))
    assert not redis.exists(keys.following_tags(ali), keys.followers(ali))
    assert str(ali) not in redis.smembers(keys.following(sara)) | redis.smembers(keys.followers(sara))
    assert not any(redis.sismember(keys.tag_followers(tag), ali) for tag in ("tehran", "shiraz"))
    assert not list(redis.scan_iter(keys.post_rate(ali, "*")))
    assert redis.hget(keys.HANDLE_INDEX, handles.key(HANDLE)) is None
    held = [redis.get(k) for k in redis.scan_iter(keys.handle_hold("*"))]
    assert "" in held and str(ali) not in held  # Ali's old handles, held for no one
    assert str(ali) not in redis.hvals(keys.PHONE_INDEX) + redis.hvals(keys.HANDLE_INDEX)
    for post_id in ali_posts:
        assert not redis.exists(keys.post(post_id), keys.replies(post_id))
    timelines = [k for k in redis.scan_iter(keys.PREFIX + "tl:*")] + list(redis.scan_iter(keys.replies("*")))
    listed = {int(m) for k in timelines for m in redis.zrange(k, 0, -1)}
    assert listed.isdisjoint(ali_posts)
    messages = list(redis.scan_iter(keys.outbound_message("*")))
    for key in messages:
        r, intent, body = redis.hmget(key, "r", "intent", "body")
        assert r != str(ali) and not intent.startswith((f"dm:{ali}:", *(f"post:{p}" for p in ali_posts)))
        assert HANDLE not in body
    waiting = {m for lane in queues.LANES for m in redis.lrange(keys.outbound_lane(lane), 0, -1)}
    assert {dm_id, queued_id}.isdisjoint(waiting | set(redis.zrange(keys.OUTBOUND_SENDING, 0, -1)))
    history_keys = list(redis.scan_iter(keys.PREFIX + "hist:*"))
    listed = {m for k in history_keys if redis.type(k) in ("zset", "set") for m in _members(redis, k)}
    assert listed.isdisjoint({f"in-{sid}" for sid in ali_sids} | {dm_id, queued_id, f"out-{dm_id}"})

    after = redis_values_url(url)
    lookup_key = vault.lookup_key(ALI)
    kabootar = {k: v for k, v in after.items() if not k.startswith(keys.SIMULATOR_PREFIX)}
    traces = {
        "number": [k for k, v in kabootar.items() if leaks(v, [ALI])],
        "keyed hash": [k for k, v in kabootar.items() if lookup_key in v],
        "unkeyed hash": [k for k, v in kabootar.items() if any(h in v for h in unkeyed_hashes(ALI))],
        "ciphertext": [k for k, v in kabootar.items() if any(c in v for c in ciphertexts)],
        "words": [k for k, v in kabootar.items() if any(b in v for b in bodies)],
    }
    fernet = {m for v in kabootar.values() for m in re.findall(r"gAAAAA[\w=-]{40,}", v)}
    traces["decrypts to the number"] = [c for c in fernet if vault.decrypt(c) == ALI]
    # The handle stays only inside others' words (Sara's reply starts with it).
    traces["handle"] = [
        k
        for k, v in kabootar.items()
        if HANDLE in v and not (k.startswith(keys.post("")) and redis.hget(k, "sub") == str(sara))
    ]
    assert traces == {name: [] for name in traces}, traces

    changed = sorted(k for k, v in kabootar.items() if before.get(k) != v)
    reasons = {k: explain(k, {sara, reza}, ali_sids) for k in changed}
    assert [k for k, why in reasons.items() if why is None] == []

    sim_keys = [k for k in after if k.startswith(keys.SIMULATOR_PREFIX)]
    report("numbers", f"forgotten {ALI} (Iran); others {SARA}, {REZA}")
    report("commands run", dict(sorted(t.commands.items())))
    report("keys", f"{len(before)} before Ali's first text, {len(kabootar)} after FORGET ME")
    report("new or changed keys, each explained", dict(Counter(reasons.values()).most_common()))
    report("simulator's keys (Twilio's records, by SHA-256 of a number), not Kabootar's", len(sim_keys))
    report(
        "erased",
        f"{len(ali_posts)} posts, {len(held)} throttled texts, {len(ciphertexts)} ciphertexts of the number",
    )
    report("pages and API answers checked", len(pages))
    report("leaks found", sum(len(v) for v in traces.values()))
    report("kept by design", "MessageSid dedupe markers, 7 days (a Twilio retry must not post again)")
    report("kept, not Ali's", "others' words naming @handle; others' replies to an erased post (now a 404)")


def test_texts_waiting_from_before_forget_me_are_erased_and_later_ones_start_afresh(
    twilio, drain, redis: Redis, runtime, monkeypatch: pytest.MonkeyPatch, report: Report
):
    monkeypatch.setattr(inbox, "BATCH", 1)  # one text per batch: FORGET ME meets the rest still waiting
    twilio.text(sender=ALI, body="hello")
    drain()
    ali = redis.hget(keys.PHONE_INDEX, runtime.vault.lookup_key(ALI))
    for n in range(runtime.config.sender_posts_per_minute + 2):
        twilio.text(sender=ALI, body=f"burst {n}")
    drain()
    held = redis.zcard(keys.INBOX_DEFERRED)
    assert held >= 2  # throttled: waiting for the next minute

    twilio.text(sender=ALI, body="FORGET ME")
    drain()  # asks to confirm (issue 13 item 11); the burst still waits, throttled
    late = twilio.form(sender=ALI, body="sent before, promoted late")
    twilio.post(late)
    twilio.text(sender=SARA, body="Sara's words, not Ali's")
    forget = twilio.form(sender=ALI, body="YES")
    twilio.post(forget)
    # A text sent before the YES but queued behind it (as a throttled text promoted is).
    redis.lrem(keys.INBOX, 0, late["MessageSid"])
    redis.rpush(keys.INBOX, late["MessageSid"])
    time.sleep(0.01)
    twilio.text(sender=ALI, body="after forget: a new start")
    drain()
    throttle.promote_due(redis, now=time.time() + 3600)
    drain()

    feed = [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 100)[0]]
    assert feed == ["after forget: a new start", "Sara's words, not Ali's"]
    [new_start] = posts.page(redis, keys.TIMELINE_ALL, None, 1)[0]
    assert new_start.author_id not in (None, int(ali))  # a stranger again, under a new handle
    assert redis.zcard(keys.INBOX_DEFERRED) == 0 and not list(redis.scan_iter(keys.inbound_message("*")))
    burst = runtime.config.sender_posts_per_minute + 2
    report("erased waiting texts", f"{held} throttled of a burst of {burst}, 1 queued behind FORGET ME")
    report("kept", "1 text sent after FORGET ME: posted under a new handle")
