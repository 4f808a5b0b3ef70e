"""Phone numbers stay secret: not in Redis (except encrypted), logs, job data or pages."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import InvalidToken
from redis import Redis

from gateway import phones
from gateway.phones import PhoneVault
from gateway.store import keys
from tests.privacy import leaks, redis_dump

NUMBERS = ["+989121234567", "+989350001122", "+14155550123"]


def test_numbers_appear_nowhere_in_redis_logs_or_output(twilio, drain, redis: Redis, client, caplog):
    caplog.set_level(logging.DEBUG)
    for i, number in enumerate(NUMBERS):
        twilio.text(sender=number, body=f"post {i} #tag")
        twilio.text(sender=number, body=f"again {i}")
    drain()
    assert redis.zcard(keys.TIMELINE_ALL) == 2 * len(NUMBERS)
    pages = [client.get(path) for path in ["/", "/api/v1/posts", "/feed.atom"]]
    everything = "\n".join([redis_dump(redis), caplog.text, *(p.get_data(as_text=True) for p in pages)])
    assert leaks(everything, NUMBERS) == []


def test_stored_number_is_encrypted_and_found_by_keyed_hash(twilio, drain, redis: Redis, runtime):
    twilio.text(sender="+98 912 123 4567", body="hi")
    drain()
    vault: PhoneVault = runtime.vault
    sub_id = redis.hget(keys.PHONE_INDEX, vault.lookup_key("+989121234567"))
    assert sub_id is not None
    assert vault.decrypt(redis.hget(keys.subscriber(sub_id), "phone")) == "+989121234567"


def test_a_different_secret_key_cannot_read_or_find_numbers(runtime):
    ours, theirs = runtime.vault, PhoneVault("another-key")
    token = ours.encrypt("+989121234567")
    assert ours.lookup_key("+989121234567") != theirs.lookup_key("+989121234567")
    with pytest.raises(InvalidToken):
        theirs.decrypt(token)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("+989121234567", "+98•••67"),
        ("call +98 912 123 4567 now", "call +98•••67 now"),
        ("Twilio error 21610 for SM123", "Twilio error 21610 for SM123"),
        (
            "The 'To' number +15551234567 is not a valid phone number.",
            "The 'To' number +1•••67 is not a valid phone number.",
        ),
        ("call 0912 123 4567", "call •••67"),
        ("to 989121234567", "to •••67"),
        ("+3612345678", "+36•••78"),
    ],
    ids=[
        "bare",
        "inside-text",
        "error-codes-untouched",
        "twilio-21211",
        "national",
        "no-plus",
        "short-number",
    ],
)
def test_masking(text: str, shown: str):
    assert phones.redact(text) == shown
