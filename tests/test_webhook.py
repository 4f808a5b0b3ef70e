"""POST /twilio/sms: what Twilio (and so a texter) sees when it delivers a text."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis import Redis

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.microblog import posts
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import Twilio


def feed(redis: Redis) -> list[posts.Post]:
    latest, _ = posts.page(redis, keys.TIMELINE_ALL, None, 100)
    return latest


def test_signed_text_becomes_a_post(twilio: Twilio, drain, redis: Redis):
    response = twilio.text(body="crowds at Azadi square #IranElection")
    assert response.status_code == 200
    assert response.content_type.startswith("application/xml")
    assert b"<Response" in response.data
    drain()
    [post] = feed(redis)
    assert post.body == "crowds at Azadi square #IranElection"
    assert post.tags == ["IranElection"]
    assert post.source == "sms"


def test_first_text_registers_a_pronounceable_handle_not_derived_from_the_number(twilio, drain, redis):
    twilio.text(sender="+989121234567", body="one")
    twilio.text(sender="+989121234567", body="two")
    twilio.text(sender="+989350000001", body="three")
    drain()
    by_body = {p.body: p.handle for p in feed(redis)}
    assert by_body["one"] == by_body["two"]
    assert by_body["three"] != by_body["one"]
    for handle in by_body.values():
        adjective, animal, number = handle.split("-")
        assert adjective.isalpha() and animal.isalpha() and number.isdigit()
        assert "1234" not in handle and "4567" not in handle


@pytest.mark.parametrize(
    "signature",
    ["", "bm90IGEgc2lnbmF0dXJl", None],
    ids=["missing", "wrong", "signed-for-other-body"],
)
def test_bad_signature_is_refused_and_stores_nothing(twilio: Twilio, drain, redis: Redis, signature):
    form = twilio.form(body="forged")
    if signature is None:
        signature = twilio.signer.sign("/twilio/sms", {**form, "Body": "original"})
    response = twilio.post(form, signature=signature)
    assert response.status_code == 403
    drain()
    assert feed(redis) == []
    assert redis.llen(keys.INBOX) == 0


def test_signature_is_checked_against_public_url_not_the_proxy_address(twilio: Twilio, config: Config):
    # The test client calls http://localhost/...; Twilio signed https://kabootar.test/...
    form = twilio.form()
    behind_proxy = Twilio(twilio.client, replace(config, public_url="http://localhost"))
    assert twilio.post(form, signature=behind_proxy.signer.sign("/twilio/sms", form)).status_code == 403
    assert twilio.post(form).status_code == 200


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_missing_required_field_is_a_400(twilio: Twilio, missing: str):
    form = twilio.form()
    del form[missing]
    assert twilio.post(form).status_code == 400


def test_body_over_64_kib_is_a_413(twilio: Twilio, redis: Redis):
    response = twilio.text(body="x" * (65 * 1024))
    assert response.status_code == 413
    assert redis.llen(keys.INBOX) == 0


def test_duplicate_message_sid_makes_one_post(twilio: Twilio, drain, redis: Redis):
    form = twilio.form(body="said once")
    assert twilio.post(form).status_code == 200
    assert twilio.post(form).status_code == 200  # Twilio repeats; it must still hear 200
    drain()
    assert twilio.post(form).status_code == 200  # …even after the post was made
    drain()
    assert [p.body for p in feed(redis)] == ["said once"]


def test_a_drain_job_run_twice_makes_one_post(twilio: Twilio, drain, redis: Redis, runtime):
    from gateway.pipeline import batch

    twilio.text(body="only once")
    sids = redis.lrange(keys.INBOX, 0, -1)
    batch.process(runtime, sids)
    # A worker killed before it dropped its claim: the same sids come round again.
    redis.rpush(keys.INBOX, *sids)
    drain()
    assert [p.body for p in feed(redis)] == ["only once"]


def test_mms_media_urls_become_the_posts_media(twilio: Twilio, drain, redis: Redis):
    urls = [f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME{i}" for i in range(2)]
    twilio.text(
        body="photo from the square",
        NumMedia="2",
        MediaUrl0=urls[0],
        MediaContentType0="image/jpeg",
        MediaUrl1=urls[1],
        MediaContentType1="image/png",
    )
    drain()
    [post] = feed(redis)
    assert post.media == urls


@pytest.mark.parametrize(
    "body",
    [
        "سلام، خیابان آزادی شلوغ است #انتخابات",
        "emoji 🕊️✊🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "mixed: Azadi آزادی 2009 \u200fRLM\u200e",
        "zero\u200cwidth non-joiner می‌خواهم",
    ],
    ids=["persian", "emoji", "mixed-direction", "zwnj"],
)
def test_text_is_kept_byte_for_byte(twilio: Twilio, drain, redis: Redis, body: str):
    twilio.text(body=body)
    drain()
    [post] = feed(redis)
    assert post.body.encode() == body.encode()


def test_redis_down_is_a_503_never_a_200(config: Config, runtime):
    port = embedded_redis.free_port()  # nothing listens here
    down = replace(config, redis_url=f"redis://127.0.0.1:{port}/0")
    app = create_app(down, {"TESTING": True})
    twilio = Twilio(app.test_client(), down)
    assert twilio.text(body="nobody stores this").status_code == 503


def test_texts_wait_safely_when_no_worker_runs(twilio: Twilio, redis: Redis, drain):
    for i in range(5):
        twilio.text(body=f"queued {i}")
    assert redis.llen(keys.INBOX) == 5
    assert feed(redis) == []
    drain()
    assert [p.body for p in feed(redis)] == [f"queued {i}" for i in reversed(range(5))]
