"""The Twilio simulator speaks Twilio's Messages API: auth, request fields, response shape, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.config import SIMULATOR_ACCOUNT_SID, SIMULATOR_FROM, Config
from gateway.outbox import outbound
from gateway.providers.simulated import handsets
from gateway.providers.twilio.simulator import store as simulator
from gateway.store import queues
from tests.privacy import leaks, redis_dump
from tests.simulated import Live, dev_session, running, wait_until

URL = f"/dev/twilio/2010-04-01/Accounts/{SIMULATOR_ACCOUNT_SID}/Messages.json"
TO = "+989121234567"
# The properties of api.v2010.account.message in Twilio's OpenAPI description.
MESSAGE_FIELDS = {
    "body", "num_segments", "direction", "from", "to", "date_updated", "price", "error_message", "uri",
    "account_sid", "num_media", "status", "messaging_service_sid", "sid", "date_sent", "date_created",
    "error_code", "price_unit", "api_version", "subresource_uris",
}  # fmt: skip


@pytest.fixture
def auth(config: Config) -> tuple[str, str]:
    """The simulator's account sid and this installation's token (made from SECRET_KEY)."""
    return (config.twilio_account_sid, config.twilio_auth_token)


def send(client: FlaskClient, auth: tuple[str, str] | None, url: str = URL, **form: str | None):
    fields = {"To": TO, "From": SIMULATOR_FROM, "Body": "salaam", **form}
    return client.post(url, data={k: v for k, v in fields.items() if v is not None}, auth=auth)


@pytest.mark.parametrize("wrong", ["no-credentials", "wrong-token", "other-account"])
def test_requests_without_the_account_credentials_get_401(client: FlaskClient, auth, wrong: str):
    given, url = {
        "no-credentials": (None, URL),
        "wrong-token": ((SIMULATOR_ACCOUNT_SID, "wrong-token"), URL),
        "other-account": (auth, URL.replace(SIMULATOR_ACCOUNT_SID, "AC" + "f" * 32)),
    }[wrong]
    response = send(client, auth=given, url=url)
    assert response.status_code == 401
    assert response.get_json()["code"] == 20003
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_a_message_is_answered_in_twilios_shape(client: FlaskClient, redis: Redis, auth):
    response = send(client, auth, StatusCallback="https://kabootar.test/twilio/status?m=1")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == MESSAGE_FIELDS
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["account_sid"] == SIMULATOR_ACCOUNT_SID
    assert (body["to"], body["from"], body["body"]) == (TO, SIMULATOR_FROM, "salaam")
    assert (body["status"], body["direction"], body["num_segments"]) == ("queued", "outbound-api", "1")
    assert (body["price"], body["error_code"], body["api_version"]) == (None, None, "2010-04-01")
    assert parsedate_to_datetime(body["date_created"]).tzinfo is not None
    assert body["uri"] == f"/2010-04-01/Accounts/{SIMULATOR_ACCOUNT_SID}/Messages/{body['sid']}.json"
    assert handsets.inbox_for(redis, TO)[0]["sid"] == body["sid"]


@pytest.mark.parametrize("given", [("AC" + "0" * 32, "wrong"), None], ids=["wrong-token", "no-credentials"])
def test_the_fast_path_and_flask_answer_alike(client: FlaskClient, redis: Redis, auth, given):
    """A urlencoded request (Twilio's client) is answered before Flask (simulator/fast.py);
    a multipart one goes through Flask: the same status, JSON and headers either way."""
    fields = {"To": TO, "From": SIMULATOR_FROM, "Body": "سلام salaam"}
    answers = []
    for encoding in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for credentials in (auth, given):
            response = client.post(URL, data=fields, auth=credentials, content_type=encoding)
            body = response.get_json()
            body.pop("sid", None), body.pop("uri", None), body.pop("subresource_uris", None)
            body.pop("date_created", None), body.pop("date_updated", None)
            answers.append((response.status_code, body, response.headers["Content-Type"]))
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers.get("WWW-Authenticate", "").startswith("Basic") == (credentials != auth)
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert [a[0] for a in answers] == [201, 401, 201, 401]
    assert answers[0][1]["body"] == "سلام salaam" and answers[0][2] == "application/json"
    assert handsets.received_count(redis, TO) == 2


def test_segments_are_counted_like_twilio(client: FlaskClient, auth):
    assert send(client, auth, Body="س" * 71).get_json()["num_segments"] == "2"


def test_a_messaging_service_picks_the_sender_later(client: FlaskClient, auth):
    body = send(client, auth, From=None, MessagingServiceSid="MG" + "0" * 32).get_json()
    assert (body["status"], body["from"], body["num_segments"]) == ("accepted", None, "0")


@pytest.mark.parametrize(
    ("form", "code"),
    [({"To": "not-a-number"}, 21211), ({"To": ""}, 21604), ({"Body": ""}, 21602), ({"From": ""}, 21603)],
    ids=["bad-to", "no-to", "no-body", "no-sender"],
)
def test_bad_input_gets_twilios_error(
    client: FlaskClient, redis: Redis, auth, form: dict[str, str], code: int
):
    response = send(
        client,
        auth,
        To=form.get("To", TO),
        From=form.get("From", SIMULATOR_FROM),
        Body=form.get("Body", "hi"),
    )
    assert response.status_code == 400
    error = response.get_json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert handsets.sent_count_by_recipient(redis) == {}


def control(client: FlaskClient, action: str, **form: str) -> int:
    """POST a control hook from the dev phone's browser; its HTTP status."""
    return client.post(f"/dev/twilio/control/{action}", data={**form, **dev_session(client)}).status_code


def test_told_to_fail_it_fails_the_next_requests_then_recovers(client: FlaskClient, redis: Redis, auth):
    assert control(client, "fail", count="2", status="429") == 200
    assert [send(client, auth).status_code for _ in range(3)] == [429, 429, 201]
    control(client, "fail", count="1", code="21610")
    response = send(client, auth)
    assert (response.status_code, response.get_json()["code"]) == (400, 21610)
    assert simulator.requests_received(redis) == 4
    assert handsets.received_count(redis, TO) == 1

    control(client, "fail", count="5", status="500")
    assert control(client, "reset") == 200
    assert send(client, auth).status_code == 201
    assert simulator.requests_received(redis) == 1


@pytest.fixture
def live(redis_server: str, tmp_path: Path) -> Iterator[Live]:
    with running(redis_server, tmp_path) as gateway:
        yield gateway


def test_twilio_client_sends_and_signed_callbacks_come_back(live: Live):
    sub = live.subscriber(TO)
    live.queue([(sub, "hello")], intent="sim")
    mid = outbound.message_id("sim", sub)

    result = live.sender.send(TO, "hello from kabootar", mid)

    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_id)
    assert result.segments == 1
    # Our /twilio/status accepts only correctly signed callbacks: these move the message on.
    wait_until(lambda: outbound.message_status(live.redis, mid) == "delivered")
    assert outbound.get(live.redis, mid).provider_id == result.provider_id  # type: ignore[union-attr]
    assert handsets.inbox_for(live.redis, TO)[0]["status"] == "delivered"
    live.queues[queues.REPLIES].empty()  # the send job we did not run (RQ's data is pickled)
    assert leaks(redis_dump(live.redis), [TO]) == []
