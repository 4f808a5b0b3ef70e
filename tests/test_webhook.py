"""POST /twilio/sms: what Twilio (and so a texter) sees when it delivers a text."""

from __future__ import annotations

from redis import Redis

from gateway import keys, posts


def test_signed_text_becomes_a_post(twilio, drain, redis: Redis):
    response = twilio.text(body="crowds at Azadi square #IranElection")
    assert response.status_code == 200
    assert b"<Response" in response.data
    drain()
    latest, _ = posts.page(redis, keys.TIMELINE_ALL, None, 10)
    assert [p.body for p in latest] == ["crowds at Azadi square #IranElection"]
    assert latest[0].tags == ["IranElection"]
    assert latest[0].handle
