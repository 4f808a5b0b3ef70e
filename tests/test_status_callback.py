"""POST /twilio/status: delivery reports, signed, repeated and out of order."""

from __future__ import annotations

import pytest
from flask import Flask
from redis import Redis

from gateway.microblog import subscribers
from gateway.outbox import outbound, sender
from gateway.providers.records import SendResult
from gateway.runtime import Runtime
from gateway.store import keys, queues
from tests.conftest import Twilio

SID = "SM" + "ab" * 16


def queued_message(app: Flask, runtime: Runtime, intent: str = "reply:1") -> tuple[int, str]:
    """A subscriber and the id of an SMS queued for them."""
    vault = runtime.vault
    sub = subscribers.register(
        runtime.redis, vault.lookup_key("+989121234567"), vault.encrypt("+989121234567")
    )
    queues = app.extensions["kabootar"].queues
    outbound.queue(runtime.redis, queues, [(sub.id, "hi")], intent=intent, kind="direct")
    return sub.id, outbound.message_id(intent, sub.id)


def callback(twilio: Twilio, mid: str, status: str, **extra: str):
    form = {"MessageSid": SID, "SmsSid": SID, "AccountSid": "AC" + "0" * 32, "MessageStatus": status, **extra}
    return twilio.post(form, path=f"/twilio/status?m={mid}")


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["sent", "delivered"], "delivered"),
        (["delivered", "sent"], "delivered"),
        (["queued", "sent", "undelivered", "sent"], "undelivered"),
        (["failed", "delivered"], "failed"),
        (["sending", "queued"], "sent"),
        (["delivered", "delivered", "delivered"], "delivered"),
    ],
    ids=[
        "in-order",
        "late-sent",
        "late-sent-after-undelivered",
        "first-final-wins",
        "twilio-queued",
        "repeats",
    ],
)
def test_status_only_moves_forward(
    app: Flask, runtime: Runtime, twilio: Twilio, reports: list[str], final: str
):
    _, mid = queued_message(app, runtime)
    for report in reports:
        assert callback(twilio, mid, report).status_code == 200
    assert outbound.message_status(runtime.redis, mid) == final
    if final != "sent":  # each final outcome is counted once, however often it is reported
        assert runtime.redis.hget(keys.OUTBOUND_STATS, final) == "1"


def test_delivery_error_code_is_recorded(app: Flask, runtime: Runtime, twilio: Twilio):
    _, mid = queued_message(app, runtime)
    callback(twilio, mid, "sent")
    callback(twilio, mid, "undelivered", ErrorCode="30006")

    stored = outbound.get(runtime.redis, mid)
    assert stored is not None and (stored.status, stored.error, stored.provider_id) == (
        "undelivered",
        "30006",
        SID,
    )
    assert runtime.redis.hget(keys.OUTBOUND_STATS, "undelivered:30006") == "1"


def test_a_21610_report_stops_the_recipient(app: Flask, runtime: Runtime, twilio: Twilio):
    sub, mid = queued_message(app, runtime)
    callback(twilio, mid, "failed", ErrorCode="21610")
    assert runtime.redis.hget(keys.subscriber(sub), "stopped") == "1"


def test_a_dm_reported_refused_because_they_opted_out_tells_its_sender_once(
    app: Flask, runtime: Runtime, twilio: Twilio
):
    vault = runtime.vault
    ali = subscribers.register(
        runtime.redis, vault.lookup_key("+989121110000"), vault.encrypt("+989121110000")
    )
    sara = subscribers.register(
        runtime.redis, vault.lookup_key("+989122220000"), vault.encrypt("+989122220000")
    )
    rq_queues = app.extensions["kabootar"].queues
    notice = (ali.id, "Your DM to @sara was not delivered.")
    outbound.queue(runtime.redis, rq_queues, [(sara.id, "hi")], intent="dm:1", kind="direct", notice=notice)
    mid = outbound.message_id("dm:1", sara.id)

    callback(twilio, mid, "sent")
    callback(twilio, mid, "undelivered", ErrorCode="21610")  # the carrier's word, after the API took it
    callback(twilio, mid, "undelivered", ErrorCode="21610")  # and again

    told = outbound.get(runtime.redis, outbound.message_id(f"undelivered:{mid}", ali.id))
    assert told is not None and told.body == notice[1] and told.status == "queued"
    assert len(list(runtime.redis.scan_iter(keys.outbound_message("*")))) == 2  # the DM, one notice


class WorkerKilled(BaseException):
    """A worker dying mid-job: not an error the sender could catch."""


class Vanishes:
    """A worker that died after starting the API call: the outcome is unknown."""

    def send(self, to: str, body: str, message_id: str) -> SendResult:
        raise WorkerKilled


def test_a_callback_settles_a_message_whose_worker_died_mid_call(
    app: Flask, runtime: Runtime, twilio: Twilio
):
    _, mid = queued_message(app, runtime)
    with pytest.raises(WorkerKilled):
        sender.drain(runtime, {"twilio": Vanishes()}, queues.LANES)
    assert outbound.message_status(runtime.redis, mid) == "sending"

    callback(twilio, mid, "sent")

    assert outbound.message_status(runtime.redis, mid) == "sent"
    assert outbound.get(runtime.redis, mid).provider_id == SID  # type: ignore[union-attr]
    assert runtime.redis.zscore(keys.OUTBOUND_SENDING, mid) is None
    assert sender.reap_unconfirmed(runtime.redis, grace=0) == 0


def test_bad_signature_is_refused(app: Flask, runtime: Runtime, twilio: Twilio):
    _, mid = queued_message(app, runtime)
    form = {"MessageSid": SID, "MessageStatus": "delivered"}
    assert twilio.post(form, path=f"/twilio/status?m={mid}", signature="bogus").status_code == 403
    # A signature made without our message id in the URL does not cover the request either.
    unsigned_query = twilio.signer.sign("/twilio/status", form)
    assert twilio.post(form, path=f"/twilio/status?m={mid}", signature=unsigned_query).status_code == 403
    assert outbound.message_status(runtime.redis, mid) == "queued"


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_a_report_without_sid_or_status_is_malformed(
    app: Flask, runtime: Runtime, twilio: Twilio, missing: str
):
    _, mid = queued_message(app, runtime)
    form = {"MessageSid": SID, "MessageStatus": "delivered"}
    del form[missing]
    assert twilio.post(form, path=f"/twilio/status?m={mid}").status_code == 400


def test_reports_about_unknown_messages_are_acknowledged(twilio: Twilio, redis: Redis):
    assert callback(twilio, "0" * 32, "delivered").status_code == 200
    assert twilio.post({"MessageSid": SID, "MessageStatus": "sent"}, path="/twilio/status").status_code == 200
    # Nothing stored (RQ's own heartbeats, from another test's worker winding down, aside).
    assert [k for k in redis.scan_iter() if not k.startswith("rq:")] == []


def test_a_failure_twilio_reports_with_a_retryable_code_queues_the_sms_again_as_a_new_send(
    app: Flask, runtime: Runtime, twilio: Twilio
):
    _, mid = queued_message(app, runtime)
    runtime.redis.hset(keys.outbound_message(mid), "status", "sent")  # Twilio took it
    assert callback(twilio, mid, "failed", ErrorCode="30001").status_code == 200  # its queue overflowed

    stored = outbound.get(runtime.redis, mid)
    assert stored is not None and (stored.status, stored.error) == ("queued", "30001")
    assert runtime.redis.zscore(keys.outbound_delayed("replies"), mid) is not None  # due again soon
    assert runtime.redis.hget(keys.outbound_message(mid), "gen") == "1"

    # Reports on the first send, however late, change nothing now; the second send's do.
    assert callback(twilio, mid, "delivered").status_code == 200
    assert outbound.message_status(runtime.redis, mid) == "queued"
    runtime.redis.hset(keys.outbound_message(mid), "status", "sent")
    assert callback(twilio, f"{mid}.1", "delivered").status_code == 200
    assert outbound.message_status(runtime.redis, mid) == "delivered"


def test_a_permanent_failure_twilio_reports_stays_failed(app: Flask, runtime: Runtime, twilio: Twilio):
    _, mid = queued_message(app, runtime)
    runtime.redis.hset(keys.outbound_message(mid), "status", "sent")
    assert callback(twilio, mid, "failed", ErrorCode="21211").status_code == 200  # not a valid number
    assert outbound.message_status(runtime.redis, mid) == "failed"
    assert runtime.redis.zcard(keys.outbound_delayed("replies")) == 0
