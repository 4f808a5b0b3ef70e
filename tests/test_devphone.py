"""The dev phone texts the gateway through the real, signed webhook."""

from __future__ import annotations

from redis import Redis

from gateway.microblog import posts
from gateway.providers.simulated import handsets
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import real_twilio
from tests.test_ops import csrf_of


def test_text_from_dev_phone_appears_on_the_feed(client, drain, redis: Redis):
    page = client.get("/dev/phone")
    assert page.status_code == 200
    assert b'name="body"' in page.data
    form = {
        "number": "+15555550123",
        "body": "from the dev phone",
        "csrf_token": csrf_of(page.get_data(as_text=True)),
    }
    sent = client.post("/dev/phone/send", data=form)
    assert sent.status_code == 303
    assert client.get(sent.headers["Location"]).get_data(as_text=True).count("Accepted") == 1
    drain()
    [post] = posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]
    assert post.body == "from the dev phone"


def test_empty_message_is_not_sent(client, redis: Redis):
    token = csrf_of(client.get("/dev/phone").get_data(as_text=True))
    sent = client.post("/dev/phone/send", data={"number": "+15555550123", "body": "  ", "csrf_token": token})
    assert "status=empty" in sent.headers["Location"]
    assert redis.llen(keys.INBOX) == 0


def test_dev_phone_is_absent_with_real_twilio_credentials(config):
    app = create_app(real_twilio(config), {"TESTING": True})
    assert app.test_client().get("/dev/phone").status_code == 404


def test_the_dev_phone_texts_through_the_channel_picked(client, drain, redis: Redis):
    page = client.get("/dev/phone").get_data(as_text=True)
    assert '<option value="android">' in page  # both providers simulated: the choice is offered
    token = csrf_of(page)
    form = {"number": "+15555550123", "body": "from a phone's SIM", "channel": "android", "csrf_token": token}
    sent = client.post("/dev/phone/send", data=form)
    assert "channel=android" in sent.headers["Location"] and "status=200" in sent.headers["Location"]
    drain()
    [post] = posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]
    assert post.body == "from a phone's SIM"
    [texted] = handsets.conversation(redis, "+15555550123")
    assert (texted["direction"], texted["channel"]) == ("out", "android")
    assert redis.hget(keys.subscriber(post.author_id or 0), "ch") == "android"  # answers go back that way


def test_a_channel_the_gateway_does_not_simulate_is_refused(client, redis: Redis):
    token = csrf_of(client.get("/dev/phone").get_data(as_text=True))
    form = {"number": "+15555550123", "body": "hi", "channel": "carrier-pigeon", "csrf_token": token}
    assert "status=channel" in client.post("/dev/phone/send", data=form).headers["Location"]
    assert redis.llen(keys.INBOX) == 0
