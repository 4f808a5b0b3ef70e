"""The Android phone as a provider (SMS Gateway for Android): its signed webhooks, its
send API through the vendor's client, and whole conversations through it, alone and
beside Twilio."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from gateway.microblog import posts
from gateway.ops import accounts
from gateway.outbox import outbound, routes
from gateway.outbox import sender as outbox_sender
from gateway.providers.android import webhooks as android
from gateway.providers.android.api import AndroidSender
from gateway.providers.android.simulator import reports
from gateway.providers.android.simulator import store as phone_store
from gateway.providers.records import RETRY, SendError
from gateway.providers.simulated import handsets
from gateway.store import keys, queues
from tests.live import Processes, start_gateway
from tests.phones import ALI, REZA, SARA, Phones, phones_on
from tests.privacy import leaks, redis_leaks, url_of
from tests.simulated import wait_until
from tests.test_ops import PASSWORD, csrf_of, log_in
from tests.test_web_replies import reply

KEY = "test-signing-key"


def documented_signature(key: str, payload: str, timestamp: str) -> str:
    """The verification the app's documentation gives (its Python example), written out here
    independently of gateway/providers/android/webhooks.py."""
    return hmac.new(key.encode(), (payload + timestamp).encode(), hashlib.sha256).hexdigest()


def webhook(event: str, payload: dict[str, object], event_id: str = "Ey6ECgOkVVFjz3CL48B8C") -> bytes:
    doc = {"deviceId": "dev1", "event": event, "id": event_id, "payload": payload, "webhookId": "wh1"}
    return json.dumps(doc).encode()


def post_signed(client: FlaskClient, body: bytes, key: str, at: float | None = None):
    timestamp = str(int(time.time() if at is None else at))
    signature = documented_signature(key, body.decode(), timestamp)
    headers = {"Content-Type": "application/json", "X-Timestamp": timestamp, "X-Signature": signature}
    return client.post(android.PATH, data=body, headers=headers)


def deliver(client: FlaskClient, key: str, payload: dict[str, object], event_id: str) -> int:
    """The status the webhook answers a signed "sms:received" with `payload` and `event_id`."""
    return post_signed(client, webhook("sms:received", payload, event_id), key).status_code


def feed(redis: Redis) -> list[str]:
    return [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 100)[0]]


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("body", "timestamp", "expected"),
    [
        # The documented algorithm (hex HMAC-SHA256 of the body followed by the timestamp),
        # computed outside Python: printf '%s' BODYTIMESTAMP | openssl dgst -sha256 -hmac test-signing-key
        (
            b'{"event":"sms:received"}',
            "1700000000",
            "a5d6455ae644eeca4cd2cf6b8c0dfebf2f03aebd845dcc60fa1f510323e1b362",
        ),
        (
            '{"message":"سلام"}'.encode(),
            "1733300000",
            "45a98dcdcb3316a39deaee924b0a92f387aa8cf8f15d4cb28e69ab629f96bd60",
        ),
        (b"", "0", "3d9829d1dbbbdc15fe76f82aaa37e130d8361dd0e8a649262af9bb600def8ff6"),
    ],
    ids=["ascii", "persian-utf8", "empty"],
)
def test_our_signature_is_the_documented_one(body: bytes, timestamp: str, expected: str):
    assert documented_signature(KEY, body.decode(), timestamp) == expected  # the docs' own example agrees
    assert android.sign(KEY, body, timestamp) == expected
    assert android.verify(KEY, body, timestamp, expected, now=float(timestamp))
    assert android.verify(KEY, body, timestamp, expected.upper(), now=float(timestamp))  # hex of either case


def test_a_signature_is_refused_for_another_key_body_time_or_outside_five_minutes():
    body, at = b'{"a":1}', "1700000000"
    good = documented_signature(KEY, body.decode(), at)
    now = float(at)
    assert not android.verify("other-key", body, at, good, now=now)
    assert not android.verify(KEY, b'{"a":2}', at, good, now=now)
    assert not android.verify(KEY, body, "1700000001", good, now=now)
    assert android.verify(KEY, body, at, good, now=now + 300)
    assert not android.verify(KEY, body, at, good, now=now + 301)  # a replay, later
    assert not android.verify(KEY, body, at, good, now=now - 301)  # a clock far ahead
    assert not android.verify(KEY, body, "17e8", good, now=now)
    assert not android.verify("", body, at, good, now=now)


def test_the_simulated_phone_signs_as_the_documentation_says():
    body = reports.body("sms:sent", {"messageId": "abc"})
    headers = reports.headers(KEY, body)
    assert headers["X-Signature"] == documented_signature(KEY, body.decode(), headers["X-Timestamp"])
    assert abs(int(headers["X-Timestamp"]) - time.time()) < 5


# ---------------------------------------------------------------- the webhook


@pytest.fixture
def signing_key(app: Flask) -> str:
    return str(app.config["KABOOTAR"].android_webhook_signing_key)


def test_a_text_from_the_phone_becomes_a_post_once_however_often_it_is_delivered(
    client: FlaskClient, signing_key: str, drain, redis: Redis
):
    body = webhook("sms:received", {"messageId": "m1", "message": "from the phone", "sender": ALI})
    assert post_signed(client, body, signing_key).status_code == 200
    assert post_signed(client, body, signing_key).status_code == 200  # the app retries
    drain()
    assert post_signed(client, body, signing_key).status_code == 200  # …even after the post
    drain()
    assert feed(redis) == ["from the phone"]


def test_two_texts_alike_share_the_apps_message_id_and_still_make_two_posts(
    client: FlaskClient, signing_key: str, drain, redis: Redis
):
    payload = {"messageId": "same-content-id", "message": "we are here", "sender": ALI}
    assert deliver(client, signing_key, payload, "eventAAAAAAAAAAAAAAAA1") == 200
    assert deliver(client, signing_key, payload, "eventAAAAAAAAAAAAAAAA2") == 200
    drain()
    assert feed(redis) == ["we are here", "we are here"]


def test_a_number_the_phone_reports_without_its_country_is_read_in_the_phones_country(
    client: FlaskClient, signing_key: str, drain, redis: Redis, runtime
):
    national = {"messageId": "m", "message": "first", "sender": "09121234567", "recipient": "+989350000000"}
    international = {"messageId": "m", "message": "second", "sender": ALI}
    assert deliver(client, signing_key, national, "nationalAAAAAAAAAAAA1") == 200
    assert deliver(client, signing_key, international, "internationalAAAAAA1") == 200
    drain()
    [p1, p2] = posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]
    assert p1.author_id == p2.author_id  # one person, however the phone wrote the number


def test_a_sender_that_is_no_phone_number_is_refused_without_saying_it(
    client: FlaskClient, signing_key: str, redis: Redis, caplog: pytest.LogCaptureFixture
):
    national = "0912 555 0199"  # national, and the phone gives no country
    answers = []
    for sender in ("abc", "12", national):
        body = webhook(
            "sms:received", {"messageId": "m", "message": "x", "sender": sender}, f"bad{len(sender):018d}"
        )
        response = post_signed(client, body, signing_key)
        assert response.status_code == 400
        answers.append(response.get_data(as_text=True))
        assert sender not in caplog.text and sender not in answers[-1]
    assert leaks("\n".join([caplog.text, *answers]), [national]) == []  # in no shape: digits only, dashed…
    assert redis.llen(keys.INBOX) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"event": "sms:received"}',
        b'{"event": "sms:received", "id": "x", "payload": 3}',
        b'{"event": "sms:received", "id": "x", "payload": {"message": "no sender"}}',
    ],
    ids=["not-json", "array", "no-id", "payload-not-object", "no-sender"],
)
def test_a_malformed_signed_webhook_is_400_and_stores_nothing(
    client: FlaskClient, signing_key: str, redis: Redis, body
):
    assert post_signed(client, body, signing_key).status_code == 400
    assert redis.llen(keys.INBOX) == 0


def test_an_event_kabootar_does_not_use_is_acknowledged_and_ignored(
    client: FlaskClient, signing_key: str, redis: Redis
):
    for event in ("system:ping", "app:started", "mms:received", "sms:data-received"):
        assert post_signed(client, webhook(event, {"health": "pass"}), signing_key).status_code == 200
    assert redis.llen(keys.INBOX) == 0


def test_the_webhook_is_not_served_when_the_phone_is_not_a_provider(config, runtime):
    from dataclasses import replace

    from gateway.web import create_app

    app = create_app(replace(config, sms_providers=("twilio",), android_simulated=False), {"TESTING": True})
    body = webhook("sms:received", {"messageId": "m1", "message": "hi", "sender": ALI})
    assert post_signed(app.test_client(), body, config.android_webhook_signing_key).status_code == 404


# ---------------------------------------------------------------- conversations through the phone


@pytest.fixture
def phone_only(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    """A gateway whose only provider is the (simulated) Android phone."""
    channels = {ALI: "android", SARA: "android", REZA: "android"}
    with phones_on(redis_server, tmp_path, channels, SMS_PROVIDERS="android") as p:
        yield p


def test_a_whole_conversation_goes_through_the_phone_alone(phone_only: Phones):
    phones = phone_only
    welcome = phones.say(ALI, "hello from Tehran")
    assert welcome and welcome[0].startswith("Welcome to Kabootar!")
    phones.join(SARA, "sara")
    ali = phones.sub_id(ALI)
    assert ali is not None
    phones.say(ALI, "NAME ali")
    assert phones.say(SARA, "FOLLOW @ali") == ["You follow @ali now: new posts come to you by SMS."]

    phones.say(ALI, "crowds at Azadi square")
    assert phones.received(SARA)[-1] == "@ali: crowds at Azadi square"
    assert phones.say(SARA, "@ali stay safe") == []
    assert phones.received(ALI)[-1] == "@sara: @ali stay safe"
    web_reply(phones, phones.timeline().index("crowds at Azadi square"), "Mina", "we hear you")
    assert phones.received(ALI)[-1] == "Mina (web): we hear you"

    # STOP: the phone confirms nothing itself, so Kabootar does; then nothing until START.
    assert phones.say(SARA, "STOP") == ["You will get no more SMS from Kabootar. Text START to come back."]
    phones.say(ALI, "news nobody may hear")
    assert phones.received(SARA)[-1] == "You will get no more SMS from Kabootar. Text START to come back."
    assert phones.say(SARA, "START")[0].startswith("Welcome back")

    assert "reply YES" in phones.say(ALI, "FORGET ME")[0]  # it asks first (issue 13 item 11)
    assert phones.say(ALI, "YES") == []
    assert phones.sub_id(ALI) is None
    assert phones.channels_received(SARA) == {"android"} and phones.channels_received(ALI) == {"android"}
    assert phone_store.requests_received(phones.redis) >= 7  # every SMS went through the phone's API


@pytest.fixture
def mixed(redis_server: str, tmp_path: Path) -> Iterator[Phones]:
    """Twilio and the phone both on: Ali texts through the phone, Sara through Twilio."""
    with phones_on(redis_server, tmp_path, {ALI: "android"}) as p:
        yield p


def test_each_texter_gets_the_others_posts_through_their_own_channel(mixed: Phones):
    phones = mixed
    phones.join(ALI, "ali")
    phones.join(SARA, "sara")
    phones.say(SARA, "FOLLOW @ali")
    phones.say(ALI, "FOLLOW @sara")

    phones.say(ALI, "from the phone's side")
    phones.say(SARA, "from Twilio's side")

    assert "@ali: from the phone's side" in phones.received(SARA)
    assert "@sara: from Twilio's side" in phones.received(ALI)
    assert phones.channels_received(ALI) == {"android"}
    assert phones.channels_received(SARA) == {"twilio"}


def test_one_number_is_one_texter_whichever_channel_it_texts_through(mixed: Phones):
    phones = mixed
    phones.join(REZA, "reza")  # through Twilio
    phones.channels[REZA] = "android"
    answer = phones.say(REZA, "STATS")  # now through the phone

    assert answer == ["Followers: 0. Following: 0 people, 0 tags. Posts: 1."]
    assert [m["channel"] for m in handsets.inbox_for(phones.redis, REZA)][-1] == "android"


def web_reply(phones: Phones, newest: int, name: str, body: str) -> None:
    """Reply on the web to the `newest`-th newest post, and let the workers run."""
    post = posts.page(phones.redis, keys.TIMELINE_ALL, None, 100)[0][newest]
    assert reply(phones.live.app.test_client(), post.id, name, body).status_code == 303
    phones.run()


def test_a_web_reply_reaches_a_phone_texter_through_the_phone(mixed: Phones):
    phones = mixed
    phones.join(ALI, "ali")
    web_reply(phones, 0, "Mina", "we hear you")
    assert phones.received(ALI)[-1] == "Mina (web): we hear you"
    assert handsets.inbox_for(phones.redis, ALI)[-1]["channel"] == "android"


def test_reports_from_the_phone_settle_our_sms_in_any_order(mixed: Phones):
    phones = mixed
    ali = phones.live.subscriber(ALI)
    phones.live.queue([(ali, "hello")], intent="order", kind="answer")
    mid = outbound.message_id("order", ali)
    key = phones.live.config.android_webhook_signing_key
    client = phones.live.app.test_client()
    for n, event in enumerate(("sms:delivered", "sms:sent", "sms:delivered")):
        body = webhook(event, {"messageId": mid, "recipient": ALI}, f"report{n:016d}")
        assert post_signed(client, body, key).status_code == 200
    assert outbound.message_status(phones.redis, mid) == "delivered"  # a late "sent" never moves it back

    failed = webhook(
        "sms:failed", {"messageId": outbound.message_id("x", ali), "reason": "Invalid phone number"}
    )
    assert post_signed(client, failed, key).status_code == 200  # not ours: nothing to settle, still 200


def test_a_report_on_an_sms_sent_through_the_phones_own_api_logs_no_id(mixed: Phones, caplog):
    """Such an id is whatever its sender chose: here, a number."""
    caplog.set_level("DEBUG")
    body = webhook("sms:delivered", {"messageId": f"to {SARA}", "recipient": SARA}, "notours000000001")
    assert (
        post_signed(
            mixed.live.app.test_client(), body, mixed.live.config.android_webhook_signing_key
        ).status_code
        == 200
    )
    assert "not ours" in caplog.text and leaks(caplog.text, [SARA]) == []


def test_a_number_the_phone_cannot_send_to_fails_with_the_phones_reason(mixed: Phones):
    phones = mixed
    phones.channels["+982100000000"] = "android"  # a landline in Tehran: the app refuses it when sending
    landline = phones.live.subscriber("+982100000000")
    phones.live.redis.hset(keys.subscriber(landline), "ch", "android")
    phones.live.queue([(landline, "hello")], intent="landline", kind="answer")
    phones.live.send_all()
    mid = outbound.message_id("landline", landline)
    wait_until(lambda: outbound.message_status(phones.redis, mid) == "failed")
    stored = outbound.get(phones.redis, mid)
    assert stored is not None and stored.status == "failed"
    assert phones.redis.hget(keys.OUTBOUND_STATS, "failed:INVALID_PHONE_NUMBER@android") == "1"


def test_a_failure_reason_naming_the_number_keeps_only_its_code(mixed: Phones, caplog):
    phones = mixed
    ali = phones.live.subscriber(ALI)
    phones.live.queue([(ali, "hello")], intent="reason", kind="answer")
    mid = outbound.message_id("reason", ali)
    reason = f"Invalid phone number {ALI} (could not be parsed: {ALI[1:]})"
    body = webhook("sms:failed", {"messageId": mid, "recipient": ALI, "reason": reason}, "reason0000000001")
    assert (
        post_signed(
            phones.live.app.test_client(), body, phones.live.config.android_webhook_signing_key
        ).status_code
        == 200
    )

    stored = outbound.get(phones.redis, mid)
    assert stored is not None and stored.status == "failed" and stored.error == "INVALID_PHONE_NUMBER"
    assert phones.redis.hget(keys.OUTBOUND_STATS, "failed:INVALID_PHONE_NUMBER@android") == "1"
    scanned, found = redis_leaks(url_of(phones.redis), [ALI], skip_prefix=keys.SIMULATOR_PREFIX)
    assert found == {}
    assert leaks(caplog.text, [ALI]) == []


# ---------------------------------------------------------------- the phone's API (the vendor's client)


def test_sending_the_same_sms_again_is_safe_the_phone_already_holds_it(mixed: Phones):
    sender = AndroidSender(mixed.live.config)
    first = sender.send(SARA, "once", "abc123")
    again = sender.send(SARA, "once", "abc123")  # the answer to the first was lost, say
    sender.close()
    assert first.provider_id == again.provider_id == "abc123"
    assert handsets.received_count(mixed.redis, SARA) == 1


def test_an_offline_phone_is_a_retry_and_never_an_unknown_outcome(mixed: Phones):
    mixed.live.control("offline", provider="android", seconds="60")
    sender = AndroidSender(mixed.live.config)
    with pytest.raises(SendError) as caught:
        sender.send(SARA, "hello", "def456")
    sender.close()
    assert caught.value.outcome == RETRY and not caught.value.outcome_unknown
    assert handsets.received_count(mixed.redis, SARA) == 0


def test_the_simulated_phone_answers_as_the_app_does(mixed: Phones):
    client = mixed.live.app.test_client()
    config = mixed.live.config
    auth = (config.android_gateway_user, config.android_gateway_password)

    def call(doc: object, credentials: tuple[str, str] | None = auth):
        return client.post("/dev/android/message", json=doc, auth=credentials)

    good = {"id": "sim-1", "textMessage": {"text": "hi"}, "phoneNumbers": [SARA]}
    assert call(good, None).status_code == 401
    assert call(good, (auth[0], "wrong")).status_code == 401
    assert call({"textMessage": {"text": ""}, "phoneNumbers": [SARA]}).status_code == 400
    assert call({"textMessage": {"text": "hi"}, "phoneNumbers": []}).status_code == 400
    accepted = call(good)
    assert accepted.status_code == 202
    assert accepted.get_json()["state"] == "Pending" and accepted.get_json()["id"] == "sim-1"
    assert call(good).status_code == 409


# ---------------------------------------------------------------- failover


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.outbox import sender

    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(sender, "RETRY_CAP_SECONDS", 0.05)


@pytest.mark.parametrize("failover", ["on", "off"])
def test_an_offline_phone_hands_its_sms_to_twilio_only_with_failover_on(
    redis_server: str, tmp_path: Path, fast_retries: None, failover: str
):
    settings = {"SMS_FAILOVER": "1" if failover == "on" else "0", "SMS_FAILOVER_AFTER": "0"}
    with phones_on(redis_server, tmp_path, {ALI: "android"}, **settings) as phones:
        ali = phones.live.subscriber(ALI)
        phones.live.redis.hset(keys.subscriber(ali), "ch", "android")  # Ali texts through the phone
        phones.live.control("offline", provider="android", seconds="600")
        phones.live.queue([(ali, "news 0")], intent="news", kind="fanout")
        mid = outbound.message_id("news", ali)

        if failover == "on":
            phones.live.send_all(budget=3.0)
        else:  # the SMS is still waiting for the phone: that is the point
            with pytest.raises(AssertionError, match="still waiting"):
                phones.live.send_all(budget=3.0)

        inbox = handsets.inbox_for(phones.redis, ALI)
        if failover == "on":
            assert [(m["body"], m["channel"]) for m in inbox] == [("news 0", "twilio")]  # once, by Twilio
            assert phones.redis.hget(keys.outbound_message(mid), "via") == "twilio"
        else:
            assert inbox == []
            assert outbound.message_status(phones.redis, mid) == "queued"  # kept, to try again:
            retry_due = phones.redis.zscore(keys.outbound_delayed("fanout"), mid) is not None
            lined_up = mid in phones.redis.lrange(keys.outbound_lane("fanout"), 0, -1)  # its retry came due
            assert retry_due or lined_up
        assert phone_store.requests_received(phones.redis) >= 1  # the phone was tried first

        # The phone comes back: what waited goes through it; nothing already sent goes again.
        phones.live.control("offline", provider="android", seconds="0")
        phones.live.send_all()
        inbox = handsets.inbox_for(phones.redis, ALI)
        assert [(m["body"], m["channel"]) for m in inbox] == [
            ("news 0", "twilio" if failover == "on" else "android")
        ]


@pytest.fixture
def out_of_credit(
    redis_server: str, tmp_path: Path, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Phones, int]]:
    """Failover on (after 0.5 s), Ali texting through the phone, whose SIM has no credit:
    its API takes every SMS, then reports each failed (retried 0.2 s later)."""
    monkeypatch.setattr(outbound, "REPORTED_RETRY_SECONDS", 0.2)
    settings = {"SMS_FAILOVER": "1", "SMS_FAILOVER_AFTER": "0.5"}
    with phones_on(redis_server, tmp_path, {ALI: "android"}, **settings) as phones:
        ali = phones.live.subscriber(ALI)
        phones.live.redis.hset(keys.subscriber(ali), "ch", "android")
        phones.live.control("credit", provider="android", credit="0")
        yield phones, ali


def sent_until_delivered(phones: Phones, recipient: int, intent: str) -> None:
    """Send (what the phone's reports queued again too) until `intent`'s SMS is delivered."""

    def delivered() -> bool:
        phones.live.send_all()
        return outbound.message_status(phones.redis, outbound.message_id(intent, recipient)) == "delivered"

    wait_until(delivered, timeout=10.0)


def test_a_phone_that_takes_sms_but_cannot_send_them_hands_them_to_twilio_with_failover_on(
    out_of_credit: tuple[Phones, int],
):
    """Without credit the phone's API still takes every SMS (202), then reports each failed:
    those reports count towards failing over, however often the API says yes."""
    phones, ali = out_of_credit
    phones.live.queue([(ali, "news 0")], intent="news", kind="fanout")
    sent_until_delivered(phones, ali, "news")
    inbox = handsets.inbox_for(phones.redis, ALI)
    assert [(m["body"], m["channel"]) for m in inbox] == [("news 0", "twilio")]
    assert phone_store.requests_received(phones.redis) >= 2  # the phone took it, and failed it


def test_a_phone_topped_up_after_failing_over_carries_its_texters_sms_again(
    out_of_credit: tuple[Phones, int], monkeypatch: pytest.MonkeyPatch
):
    """Failed over, the phone carries no SMS that could clear its marks: every TRIAL_SECONDS
    it is given one to try, and once one is sent its texters' SMS go through it again."""
    monkeypatch.setattr(routes, "TRIAL_SECONDS", 0.5)
    phones, ali = out_of_credit
    phones.live.queue([(ali, "news 0")], intent="news 0", kind="fanout")
    sent_until_delivered(phones, ali, "news 0")
    phones.live.control("credit", provider="android", credit="1")
    for n in range(1, 6):  # one every 0.3 s: the phone gets a trial, then everything
        time.sleep(0.3)
        phones.live.queue([(ali, f"news {n}")], intent=f"news {n}", kind="fanout")
        sent_until_delivered(phones, ali, f"news {n}")

    channels = [m["channel"] for m in handsets.inbox_for(phones.redis, ALI)]
    assert channels[0] == "twilio"  # failed over while the phone had no credit
    assert channels[-3:] == ["android"] * 3  # back on the phone for good
    assert routes.read_health(phones.redis, ["android"]).failing_since == {}


def test_marking_a_failed_over_provider_up_forgets_its_failures(redis: Redis):
    redis.hset(keys.provider("android"), mapping={"failing": "1", "reports_failing": "2", "down": "1"})
    routes.set_down(redis, "android", False)
    health = routes.read_health(redis, ["android"])
    assert health.failing_since == {} and health.down == frozenset()
    assert health.state("android") == "up"


# ---------------------------------------------------------------- privacy


def test_after_a_mixed_run_no_number_is_in_redis_the_logs_or_job_data(
    mixed: Phones, caplog: pytest.LogCaptureFixture, report
):
    caplog.set_level("DEBUG")
    phones = mixed
    phones.channels[REZA] = "android"
    phones.join(ALI, "ali")  # through the phone
    phones.join(SARA, "sara")  # through Twilio
    phones.join(REZA, "reza")  # through the phone
    for texter, words in ((SARA, "FOLLOW @ali"), (REZA, "FOLLOW @sara"), (ALI, "news #tehran"),
                          (SARA, "D @reza are you safe?"), (REZA, "@sara yes"), (ALI, "STOP"),
                          (ALI, "START"), (REZA, "FORGET ME"), (REZA, "YES")):  # fmt: skip
        phones.say(texter, words)
    # A number the phone reports in its national form is still the same secret.
    numbers = [ALI, SARA, REZA, "09121234567", "9121234567", "9351112233"]

    scanned, found = redis_leaks(url_of(phones.redis), numbers, skip_prefix=keys.SIMULATOR_PREFIX)
    assert found == {}
    assert leaks(caplog.text, numbers) == []
    report("mixed run, Twilio and the phone", {"Redis keys scanned": scanned, "leaks": len(found)})


# ---------------------------------------------------------------- real processes


@pytest.mark.e2e
def test_kabootar_web_and_worker_carry_a_conversation_across_both_channels(
    redis_server: str, redis: Redis, processes: Processes, tmp_path: Path
):
    gateway = start_gateway(redis_server, processes, tmp_path / "var", SMS_PROVIDERS="twilio,android")
    assert gateway.text_by_phone(ALI, "hello from the phone") == 200
    assert gateway.text(SARA, "hello from Twilio") == 200
    gateway.wait_for_posts(2)

    def arrived(number: str, count: int) -> list[dict[str, object]]:
        deadline = time.monotonic() + 20
        while len(found := handsets.inbox_for(redis, number)) < count:
            assert time.monotonic() < deadline, (found, gateway.procs.output()[-3000:])
            time.sleep(0.1)
        return found

    welcomes = {ALI: arrived(ALI, 1), SARA: arrived(SARA, 1)}
    assert [m["channel"] for m in welcomes[ALI]] == ["android"]  # the welcome went back the way Ali came
    assert [m["channel"] for m in welcomes[SARA]] == ["twilio"]
    ali = str(welcomes[ALI][0]["body"]).split("You are @", 1)[1].split(".", 1)[0]
    assert gateway.text(SARA, f"FOLLOW @{ali}") == 200
    arrived(SARA, 2)
    assert gateway.text_by_phone(ALI, "crowds at the square") == 200
    # Ali's first post reaches Sara too if its fan-out ran after her FOLLOW (followers are
    # those at fan-out time); the one she must get, by Twilio, is the post made after it.
    crowds = (f"@{ali}: crowds at the square", "twilio")
    deadline = time.monotonic() + 20
    while crowds not in (got := [(m["body"], m["channel"]) for m in handsets.inbox_for(redis, SARA)]):
        assert time.monotonic() < deadline, (got, gateway.procs.output()[-3000:])
        time.sleep(0.1)


# ---------------------------------------------------------------- operators see channels


def test_readyz_says_degraded_not_down_while_the_phone_does_not_answer(mixed: Phones):
    phones, config = mixed, mixed.live.config
    phones.redis.zadd(keys.WORKER_HEARTBEAT, {"worker-1": time.time()})  # a worker is alive
    client = phones.live.app.test_client()
    routes.probe(phones.redis, config)
    assert client.get("/readyz").get_json()["status"] == "ok"

    phones.live.control("offline", provider="android", seconds="600")
    phones.redis.delete(keys.provider_probe("android"))  # the next probe is due
    routes.probe(phones.redis, config)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "degraded"
    assert ready.get_json()["providers"] == {"twilio": "up", "android": "unreachable"}

    phones.live.control("offline", provider="android", seconds="0")
    phones.redis.delete(keys.provider_probe("android"))
    routes.probe(phones.redis, config)
    assert client.get("/readyz").get_json()["providers"]["android"] == "up"


def test_the_console_shows_each_channels_traffic_and_state(mixed: Phones):
    phones = mixed
    phones.join(ALI, "ali")  # through the phone: a text in, a welcome out
    phones.join(SARA, "sara")  # through Twilio
    phones.say(SARA, "FOLLOW @ali")
    accounts.add_user(phones.redis, "ana", PASSWORD)
    client = phones.live.app.test_client()
    log_in(client, "ana")

    health = client.get("/ops/api/health")
    found = health.get_json()["providers"]
    assert (found["android"]["received"], found["twilio"]["received"]) == (1, 2)
    assert (found["android"]["sent"], found["twilio"]["sent"]) == (1, 2)  # welcomes; the FOLLOW answer
    assert found["android"]["state"] == found["twilio"]["state"] == "up"
    assert found["android"]["last_ok"] is not None and found["android"]["simulated"] is True
    page = client.get("/ops").get_data(as_text=True)
    assert 'id="provider-android"' in page and 'id="provider-twilio"' in page
    assert leaks(page + health.get_data(as_text=True), [ALI, SARA]) == []


def test_an_sms_the_phone_could_not_send_for_lack_of_credit_is_sent_again_once_topped_up(
    mixed: Phones, fast_retries: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(outbound, "REPORTED_RETRY_SECONDS", 0.0)
    phones = mixed
    ali = phones.live.subscriber(ALI)
    phones.live.redis.hset(keys.subscriber(ali), "ch", "android")
    phones.live.control("credit", provider="android", credit="0")
    phones.live.queue([(ali, "the square is quiet now")], intent="credit", kind="answer")
    mid = outbound.message_id("credit", ali)

    phones.live.send_all()
    # The phone took it, then reports the failure.
    wait_until(lambda: phones.redis.hget(keys.outbound_message(mid), "gen") is not None)
    assert outbound.message_status(phones.redis, mid) == "queued"  # kept, to try again
    assert outbound.get(phones.redis, mid).error == "RESULT_ERROR_GENERIC_FAILURE"  # type: ignore[union-attr]
    assert handsets.inbox_for(phones.redis, ALI) == []

    phones.live.control("credit", provider="android", credit="1")
    phones.live.send_all()
    wait_until(lambda: outbound.message_status(phones.redis, mid) == "delivered")
    assert [m["body"] for m in handsets.inbox_for(phones.redis, ALI)] == ["the square is quiet now"]
    assert outbound.message_status(phones.redis, mid) == "delivered"
    assert phones.redis.hget(keys.outbound_message(mid), "sid") == f"{mid}.1"  # the second send of it


def test_a_failure_reported_while_the_batch_still_sends_is_still_sent_again(
    redis_server: str, tmp_path: Path, fast_retries: None, monkeypatch: pytest.MonkeyPatch
):
    """The phone reports a failure moments after taking an SMS; a batch settles its SMS only
    when all its calls are answered. The report's retry must not be overwritten by "sent"."""
    monkeypatch.setattr(outbound, "REPORTED_RETRY_SECONDS", 1.0)
    with phones_on(redis_server, tmp_path, {ALI: "android"}) as phones:
        ali = phones.live.subscriber(ALI)
        phones.live.redis.hset(keys.subscriber(ali), "ch", "android")
        phones.live.control("credit", provider="android", credit="0")
        phones.live.control("delay", provider="android", seconds="0.3")  # one recipient's calls: in turn
        texts = ["first", "second", "third"]
        for n, text in enumerate(texts):
            phones.live.queue([(ali, text)], intent=f"paced{n}", kind="answer")
        mids = [outbound.message_id(f"paced{n}", ali) for n in range(3)]
        outbox_sender.drain(phones.live.runtime, phones.live.senders, queues.LANES, budget=5)  # one batch
        wait_until(lambda: all(phones.redis.hget(keys.outbound_message(m), "gen") for m in mids))
        assert handsets.inbox_for(phones.redis, ALI) == []

        phones.live.control("credit", provider="android", credit="1")
        phones.live.control("delay", provider="android", seconds="0")
        phones.live.send_all()
        wait_until(lambda: all(outbound.message_status(phones.redis, m) == "delivered" for m in mids))
        assert [m["body"] for m in handsets.inbox_for(phones.redis, ALI)] == texts


def test_each_failure_the_phone_reports_waits_twice_as_long_before_the_next_try(
    mixed: Phones, fast_retries: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(outbound, "REPORTED_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(outbound, "REPORTED_RETRY_CAP_SECONDS", 0.4)
    phones = mixed
    ali = phones.live.subscriber(ALI)
    phones.live.redis.hset(keys.subscriber(ali), "ch", "android")
    phones.live.control("credit", provider="android", credit="0")
    phones.live.queue([(ali, "still no credit")], intent="backoff", kind="answer")
    mid = outbound.message_id("backoff", ali)
    waits = []
    for generation in range(1, 5):
        phones.live.send_all()
        wait_until(lambda g=generation: phones.redis.hget(keys.outbound_message(mid), "gen") == str(g))
        due = phones.redis.zscore(keys.outbound_delayed("replies"), mid)
        updated = phones.redis.hget(keys.outbound_message(mid), "updated")
        assert due is not None and updated is not None
        waits.append(round(due - float(updated), 2))
    assert waits == [0.1, 0.2, 0.4, 0.4]  # doubling, up to the cap


def test_an_operator_marks_the_phone_down_and_its_sms_go_through_twilio(redis_server: str, tmp_path: Path):
    with phones_on(redis_server, tmp_path, {ALI: "android"}, SMS_FAILOVER="1") as phones:
        accounts.add_user(phones.redis, "ana", PASSWORD)
        client = phones.live.app.test_client()
        log_in(client, "ana")
        token = csrf_of(client.get("/ops").get_data(as_text=True))
        down = client.post("/ops/api/providers/android/down", data={"csrf_token": token})
        assert down.status_code == 303
        assert "marked down" in client.get(down.headers["Location"]).get_data(as_text=True)
        assert client.get("/ops/api/health").get_json()["providers"]["android"]["state"] == "down"

        phones.join(ALI, "ali")  # texts through the phone; the welcome goes back through Twilio
        assert [m["channel"] for m in handsets.inbox_for(phones.redis, ALI)] == ["twilio"]

        assert client.post("/ops/api/providers/android/up", data={"csrf_token": token}).status_code == 303
        phones.say(ALI, "STATS")
        assert [m["channel"] for m in handsets.inbox_for(phones.redis, ALI)] == ["twilio", "android"]
        unknown = client.post(
            "/ops/api/providers/pigeon/down",
            data={"csrf_token": token},
            headers={"Accept": "application/json"},
        )
        assert unknown.status_code == 404


def test_marking_the_phone_down_with_failover_off_says_its_sms_still_go_through_it(
    redis_server: str, tmp_path: Path
):
    with phones_on(redis_server, tmp_path, {ALI: "android"}) as phones:
        accounts.add_user(phones.redis, "ana", PASSWORD)
        client = phones.live.app.test_client()
        log_in(client, "ana")
        token = csrf_of(client.get("/ops").get_data(as_text=True))
        down = client.post("/ops/api/providers/android/down", data={"csrf_token": token})
        page = client.get(down.headers["Location"]).get_data(as_text=True)
        assert "SMS_FAILOVER is off: its SMS still go through it" in page

        phones.join(ALI, "ali")
        assert [m["channel"] for m in handsets.inbox_for(phones.redis, ALI)] == ["android"]  # as it said


def test_each_provider_is_paced_at_its_own_rate(redis_server: str, tmp_path: Path):
    with phones_on(
        redis_server, tmp_path, {}, SMS_PROVIDERS="twilio,android", SMS_MPS="twilio:0,android:2"
    ) as phones:
        by_phone = [phones.live.subscriber(f"+98912{n:07d}") for n in range(6)]
        by_twilio = [phones.live.subscriber(f"+98935{n:07d}") for n in range(6)]
        for sub in by_phone:
            phones.redis.hset(keys.subscriber(sub), "ch", "android")
        phones.live.queue([(s, "hi") for s in by_phone + by_twilio], intent="pace", kind="fanout")
        started = time.monotonic()
        phones.live.send_all()
        took = time.monotonic() - started

        arrived = sorted(phone_store.arrivals(phones.redis))
        assert len(arrived) == 6
        busiest = max(sum(1 for u, _ in arrived if t <= u < t + 1) for t, _ in arrived)
        assert busiest <= 2  # the SIM's 2 a second, however many wait
        assert took >= 2.0  # six SMS at 2 a second: the sixth leaves 2.5 s after the first
        assert sum(handsets.received_count(phones.redis, f"+98935{n:07d}") for n in range(6)) == 6  # unpaced
