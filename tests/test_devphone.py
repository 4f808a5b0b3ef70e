"""The dev phone texts the gateway through the real, signed webhook."""

from __future__ import annotations

from dataclasses import replace

from redis import Redis

from gateway.microblog import posts
from gateway.store import keys
from gateway.web import create_app
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
    real = replace(
        config,
        sms_providers=("twilio",),
        android_simulated=False,
        twilio_simulated=False,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="real",
    )
    app = create_app(real, {"TESTING": True})
    assert app.test_client().get("/dev/phone").status_code == 404
